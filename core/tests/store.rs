//! The activation store: numpy-compatible shards, crash-safe resume (a child process is killed
//! mid-write), merge, verify, seeded uniform sampling and item times.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use audiosae::store::{
    merge, verify, EpochSampler, IidSampler, InvalidItem, ItemMeta, ModelRef, StoreConfig, StoreDType, StoreReader,
    StoreWriter,
};
use audiosae::FrameTiming;
use half::f16;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(dtype: StoreDType, d: usize, shard_rows: usize) -> StoreConfig {
    StoreConfig {
        model: ModelRef { id: "test/model".into(), revision: Some("abc123".into()) },
        layer: "encoder.3".into(),
        timing: FrameTiming::ENCODER,
        dtype,
        d,
        shard_rows,
    }
}

/// Rows of synthetic item `k`: 0 to 96, so some items are empty and many straddle shards.
fn item_rows(k: usize) -> usize {
    (k * 7919 + 13) % 97
}

fn item_id(k: usize) -> String {
    format!("clip{k:04}")
}

fn item_meta(k: usize) -> ItemMeta {
    ItemMeta::new(item_id(k), format!("audio/{k}.wav"), item_rows(k) as f64 * 0.02)
        .with_time_offset((k % 3) as f64 * 30.0)
}

fn item_frames(k: usize, d: usize) -> Vec<f32> {
    (0..item_rows(k) * d).map(|i| ((k * 131 + i) as f32 * 0.37).sin() * 10.0).collect()
}

/// Writes items `0..n` (skipping those already present), pausing after each, then finishes.
fn write_items(dir: &Path, cfg: StoreConfig, n: usize, pause: Duration) {
    let d = cfg.d;
    let mut w = StoreWriter::open_or_create(dir, cfg).unwrap();
    println!("store-writer-ready");
    for k in 0..n {
        if !w.contains(&item_id(k)) {
            w.append_item(item_meta(k), &item_frames(k, d)).unwrap();
            std::thread::sleep(pause);
        }
    }
    w.finish().unwrap();
}

fn audiosae(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_audiosae")).args(args).output().unwrap();
    eprintln!(
        "$ audiosae {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn shards_are_npy_files_numpy_reads() {
    let rows = [3usize, 5, 0, 4];
    for dtype in [StoreDType::F32, StoreDType::F16] {
        let dir = tmp(&format!("npy-{dtype}"));
        let (d, shard_rows) = (3, 4);
        let mut w = StoreWriter::create(&dir, config(dtype, d, shard_rows)).unwrap();
        let mut all = Vec::new();
        for (k, &n) in rows.iter().enumerate() {
            let frames: Vec<f32> = (0..n * d).map(|i| (all.len() + i) as f32 * 0.5 - 3.0).collect();
            w.append_item(ItemMeta::new(item_id(k), "a.wav", 1.0), &frames).unwrap();
            all.extend(frames);
        }
        let m = w.finish().unwrap();
        assert_eq!(m.shards.iter().map(|s| s.rows).collect::<Vec<_>>(), [4, 4, 4]);
        for (i, s) in m.shards.iter().enumerate() {
            let bytes = std::fs::read(dir.join(&s.file)).unwrap();
            assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "magic and format 1.0");
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0, "data starts on a 64-byte boundary");
            let dict = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
            let descr = if dtype == StoreDType::F32 { "<f4" } else { "<f2" };
            let expected = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (4, 3), }}");
            assert_eq!(dict.trim_end_matches('\n').trim_end_matches(' '), expected);
            assert!(dict.ends_with('\n') && dict[expected.len()..dict.len() - 1].bytes().all(|b| b == b' '));
            let data = &bytes[10 + header_len..];
            let values = &all[i * 12..(i + 1) * 12];
            let want: Vec<u8> = match dtype {
                StoreDType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                StoreDType::F16 => values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
            };
            assert_eq!(data, want.as_slice());
            assert_eq!(bytes.len() as u64, s.bytes);
            if dtype == StoreDType::F32 {
                let arr: Array2<f32> = ndarray_npy::read_npy(dir.join(&s.file)).unwrap();
                assert_eq!(arr, Array2::from_shape_vec((4, 3), values.to_vec()).unwrap());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// The Python snippet of docs/activation-store.md, run on a store with windows and items that
/// straddle shards, must give the Rust reader's frames and times.
#[test]
fn python_snippet_loads_the_store() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/venv-fixtures/bin/python");
    if !python.exists() {
        eprintln!("skipped: no {}", python.display());
        return;
    }
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/activation-store.md")).unwrap();
    let snippet = doc.split("```python\n").nth(1).unwrap().split("```").next().unwrap();
    let check = "\nOUT = sys.argv[2]\nassert all(isinstance(s, np.memmap) for s in shards)\n\
        for k, item in enumerate(manifest['items']):\n    x, t = item_frames(manifest, shards, item)\n    \
        np.save(os.path.join(OUT, f'{k}.npy'), np.asarray(x, dtype=np.float32))\n    \
        np.save(os.path.join(OUT, f'{k}.t.npy'), t)\n";
    let script = format!("import sys\nSTORE = sys.argv[1]\n{snippet}{check}");
    for dtype in [StoreDType::F32, StoreDType::F16] {
        let dir = tmp(&format!("py-{dtype}"));
        let out = tmp(&format!("py-out-{dtype}"));
        std::fs::create_dir_all(&out).unwrap();
        write_items(&dir, config(dtype, 5, 64), 12, Duration::ZERO);
        let run = Command::new(&python).arg("-c").arg(&script).arg(&dir).arg(&out).output().unwrap();
        assert!(run.status.success(), "python failed:\n{}", String::from_utf8_lossy(&run.stderr));
        let store = StoreReader::open(&dir).unwrap();
        for k in 0..store.items().len() {
            let item = store.item_at(k);
            let x: Array2<f32> = ndarray_npy::read_npy(out.join(format!("{k}.npy"))).unwrap();
            let t: Array1<f64> = ndarray_npy::read_npy(out.join(format!("{k}.t.npy"))).unwrap();
            assert_eq!(x, item.frames, "item {k}");
            let want: Vec<f64> = (0..item.frames.nrows()).map(|i| item.timing.start(i)).collect();
            assert_eq!(t.len(), want.len());
            assert!(t.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-9), "item {k} times");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn item_read_returns_frames_and_absolute_times() {
    let dir = tmp("items");
    let d = 4;
    let mut cfg = config(StoreDType::F32, d, 50);
    cfg.timing = FrameTiming::POOLED;
    let mut w = StoreWriter::create(&dir, cfg).unwrap();
    // A 75 s clip cut into 30 s windows of 750, 750 and 375 pooled frames.
    let windows = [(0.0, 750usize), (30.0, 750), (60.0, 375)];
    for (k, &(offset, rows)) in windows.iter().enumerate() {
        let frames: Vec<f32> = (0..rows * d).map(|i| (k * 10_000 + i) as f32).collect();
        let meta = ItemMeta::new(format!("long@{offset}"), "long.wav", rows as f64 * 0.04).with_time_offset(offset);
        w.append_item(meta, &frames).unwrap();
    }
    w.finish().unwrap();
    let store = StoreReader::open(&dir).unwrap();
    assert_eq!(store.rows(), 1875);
    for (k, &(offset, rows)) in windows.iter().enumerate() {
        let item = store.item(&format!("long@{offset}")).unwrap();
        assert_eq!(item.frames.dim(), (rows, d));
        assert!(item.frames.iter().enumerate().all(|(i, &v)| v == (k * 10_000 + i) as f32));
        for i in [0, 1, rows / 2, rows - 1] {
            let absolute = offset + i as f64 * 0.04 - 0.01;
            assert!((item.timing.start(i) - absolute).abs() < 1e-9);
            assert_eq!(item.timing.frame_at(item.timing.center(i)), i);
        }
    }
    // Consecutive windows continue one frame grid: frame 750 of the clip starts at 30 s - 10 ms.
    let second = store.item("long@30").unwrap();
    assert!((second.timing.start(0) - FrameTiming::POOLED.start(750)).abs() < 1e-9);
    assert!(store.item("missing").unwrap_err().to_string().contains("no item \"missing\""));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Pearson chi-square of observed counts against equal expected counts.
fn chi_square(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum()
}

/// Upper bound for a chi-square with `dof` degrees of freedom: mean + 5 standard deviations.
fn chi_square_bound(dof: usize) -> f64 {
    dof as f64 + 5.0 * (2.0 * dof as f64).sqrt()
}

#[test]
fn sampling_is_uniform_seeded_and_respects_item_subsets() {
    let dir = tmp("sampling");
    let (d, n_items) = (3, 40);
    let mut w = StoreWriter::create(&dir, config(StoreDType::F32, d, 128)).unwrap();
    let mut row = 0;
    for k in 0..n_items {
        // Column 0 holds the global row index, so a batch shows which rows it got.
        let frames: Vec<f32> = (0..item_rows(k)).flat_map(|r| [(row + r) as f32, k as f32, 1.0]).collect::<Vec<_>>();
        w.append_item(item_meta(k), &frames).unwrap();
        row += item_rows(k);
    }
    w.finish().unwrap();
    let store = StoreReader::open(&dir).unwrap();
    let n = store.rows();
    assert_eq!(n, row);

    // I.i.d.: the batch holds the rows it claims, and every row is equally likely.
    let mut iid = IidSampler::new(store.all_rows(), 7).unwrap();
    let mut counts = vec![0usize; n];
    for _ in 0..100 {
        let rows = iid.next_rows(2000);
        let batch = store.gather(&rows);
        assert_eq!((batch.rows, batch.d), (2000, d));
        for (r, frame) in rows.iter().zip(batch.data.chunks(d)) {
            assert_eq!(frame[0], *r as f32);
            counts[*r] += 1;
        }
    }
    let chi = chi_square(&counts);
    assert!(chi < chi_square_bound(n - 1), "i.i.d. counts not uniform: chi-square {chi:.0} over {n} rows");

    // Epoch: each epoch is a permutation; over seeds, the first batch is uniform over rows.
    let mut epoch = EpochSampler::new(store.all_rows(), 3).unwrap();
    for e in 0..2 {
        let mut rows = epoch.next_rows(n);
        assert_eq!(epoch.epoch(), e);
        rows.sort_unstable();
        assert_eq!(rows, (0..n).collect::<Vec<_>>());
    }
    let mut first = vec![0usize; n];
    for seed in 0..400 {
        for r in EpochSampler::new(store.all_rows(), seed).unwrap().next_rows(n / 8) {
            first[r] += 1;
        }
    }
    let chi = chi_square(&first);
    assert!(chi < chi_square_bound(n - 1), "epoch first batches not uniform: chi-square {chi:.0}");

    // Same seed, same rows; another seed or epoch, other rows.
    let draw = |seed| EpochSampler::new(store.all_rows(), seed).unwrap().next_rows(64);
    assert_eq!(draw(11), draw(11));
    assert_ne!(draw(11), draw(12));
    let mut s = EpochSampler::new(store.all_rows(), 11).unwrap();
    assert_ne!(s.next_rows(n)[..64], s.next_rows(n)[..64]);
    let iid_draw = |seed| IidSampler::new(store.all_rows(), seed).unwrap().next_batch(&store, 64);
    assert_eq!(iid_draw(5), iid_draw(5));
    assert_ne!(iid_draw(5), iid_draw(6));

    // A split by item: only the chosen items' rows, each once per epoch.
    let is_test = |k: usize| k.is_multiple_of(4);
    let subset = store.rows_of(|it| is_test(store.item_index(&it.meta.id).unwrap()));
    let want: Vec<usize> =
        store.items().iter().enumerate().filter(|(k, _)| is_test(*k)).flat_map(|(_, it)| it.start..it.end).collect();
    assert_eq!(subset.len(), want.len());
    let mut sampler = EpochSampler::new(subset.clone(), 1).unwrap();
    let batch = sampler.next_batch(&store, want.len());
    let mut got: Vec<usize> = batch.data.chunks(d).map(|f| f[0] as usize).collect();
    assert!(batch.data.chunks(d).all(|f| is_test(f[1] as usize)));
    got.sort_unstable();
    assert_eq!(got, want);
    let t = IidSampler::new(subset, 2).unwrap().next_batch(&store, 500).to_tensor(tch::Device::Cpu);
    assert_eq!(t.size(), [500, d as i64]);
    assert_eq!(t.kind(), tch::Kind::Float);
    std::fs::remove_dir_all(&dir).unwrap();
}

const CRASH_CHILD_ENV: &str = "AUDIOSAE_STORE_CRASH_CHILD";
const CRASH_ITEMS: usize = 400;

fn crash_config() -> StoreConfig {
    config(StoreDType::F16, 16, 300)
}

/// Entry point of the child process of `resume_after_kill_9_equals_an_uninterrupted_store`;
/// does nothing in a normal test run.
#[test]
fn crash_child() {
    if let Ok(dir) = std::env::var(CRASH_CHILD_ENV) {
        write_items(Path::new(&dir), crash_config(), CRASH_ITEMS, Duration::from_millis(1));
    }
}

fn spawn_child(dir: &Path) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while !lines.next().expect("child exited before opening the store").unwrap().contains("store-writer-ready") {}
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// Every committed item of the store at `dir` equals the same item of `reference`.
fn assert_committed_items_match(dir: &Path, reference: &StoreReader) -> usize {
    let store = StoreReader::open(dir).unwrap();
    for (k, item) in store.items().iter().enumerate() {
        let want = &reference.items()[k];
        assert_eq!(item, want, "item {k} after a kill");
        assert_eq!(store.item_at(k).frames, reference.item_at(k).frames);
    }
    store.items().len()
}

#[test]
fn resume_after_kill_9_equals_an_uninterrupted_store() {
    let reference_dir = tmp("crash-reference");
    write_items(&reference_dir, crash_config(), CRASH_ITEMS, Duration::ZERO);
    let reference = StoreReader::open(&reference_dir).unwrap();
    let dir = tmp("crash");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("kill-delay seed {seed}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut interrupted, mut committed) = (0, Vec::new());
    for _ in 0..8 {
        let mut child = spawn_child(&dir);
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..120)));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        committed.push(assert_committed_items_match(&dir, &reference));
    }
    eprintln!("items committed after each kill: {committed:?}");
    assert!(interrupted >= 4, "only {interrupted} of 8 kills hit a running writer");
    assert!(committed.windows(2).all(|w| w[0] <= w[1]), "committed items went backwards: {committed:?}");
    assert!(committed[0] < CRASH_ITEMS, "the first kill came too late to test anything");

    let status = spawn_child(&dir).wait().unwrap();
    assert!(status.success());
    let resumed = StoreReader::open(&dir).unwrap();
    assert_eq!(resumed.items(), reference.items());
    let shard_sums =
        |s: &StoreReader| s.manifest().shards.iter().map(|x| (x.rows, x.sha256.clone())).collect::<Vec<_>>();
    assert_eq!(shard_sums(&resumed), shard_sums(&reference));
    let report = verify(&dir, false).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&reference_dir).unwrap();
}

#[test]
fn merge_joins_job_stores_into_one() {
    let (d, n) = (6, 90);
    let reference_dir = tmp("merge-reference");
    write_items(&reference_dir, config(StoreDType::F32, d, 100), n, Duration::ZERO);
    // Two `--shard i/2` jobs: items k % 2 == i.
    let jobs: Vec<PathBuf> = (0..2).map(|i| tmp(&format!("merge-job{i}"))).collect();
    for (i, job) in jobs.iter().enumerate() {
        let mut w = StoreWriter::create(job, config(StoreDType::F32, d, 100)).unwrap();
        for k in (i..n).step_by(2) {
            w.append_item(item_meta(k), &item_frames(k, d)).unwrap();
        }
        w.finish().unwrap();
    }
    let out = tmp("merge-out");
    let summary = merge(&out, &jobs, false).unwrap();
    assert_eq!((summary.copied, summary.resumed), (n, 0));
    let report = verify(&out, false).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    let merged = StoreReader::open(&out).unwrap();
    let reference = StoreReader::open(&reference_dir).unwrap();
    assert_eq!(merged.rows(), reference.rows());
    assert_eq!(merged.items().len(), n);
    let shards = &merged.manifest().shards;
    assert!(shards[..shards.len() - 1].iter().all(|s| s.rows == 100));
    for (k, item) in reference.items().iter().enumerate() {
        let got = merged.item(&item.meta.id).unwrap();
        assert_eq!(got.meta, item.meta);
        assert_eq!(got.frames, reference.item_at(k).frames);
    }
    let batch = IidSampler::new(merged.all_rows(), 0).unwrap().next_batch(&merged, 10);
    assert_eq!(batch.rows, 10);

    let err = |out: &str, inputs: &[PathBuf]| merge(&tmp(out), inputs, false).unwrap_err().to_string();
    assert!(merge(&out, &jobs, false).unwrap_err().to_string().contains("already a finished store"));
    let e = err("merge-dup", &[jobs[0].clone(), jobs[0].clone()]);
    assert!(e.contains("is in both"), "{e}");
    let other_d = tmp("merge-other-d");
    write_items(&other_d, config(StoreDType::F32, d + 1, 100), 3, Duration::ZERO);
    let e = err("merge-d", &[jobs[0].clone(), other_d.clone()]);
    assert!(e.contains("d: 6 vs 7"), "{e}");
    let unfinished = tmp("merge-unfinished");
    let mut w = StoreWriter::create(&unfinished, config(StoreDType::F32, d, 100)).unwrap();
    w.append_item(item_meta(1000), &item_frames(1000, d)).unwrap();
    drop(w);
    let e = err("merge-unf", &[jobs[0].clone(), unfinished.clone()]);
    assert!(e.contains("not a finished store"), "{e}");

    // The CLI form.
    let cli_out = tmp("merge-cli");
    let args = [
        &["store", "merge"][..],
        &[cli_out.to_str().unwrap()],
        &[jobs[0].to_str().unwrap(), jobs[1].to_str().unwrap()],
    ]
    .concat();
    assert!(audiosae(&args).status.success());
    assert_eq!(StoreReader::open(&cli_out).unwrap().items(), merged.items());
    for p in [&out, &cli_out, &other_d, &unfinished, &reference_dir].into_iter().chain(&jobs) {
        std::fs::remove_dir_all(p).unwrap();
    }
}

#[test]
fn verify_catches_corrupted_and_truncated_shards() {
    let dir = tmp("verify");
    write_items(&dir, config(StoreDType::F32, 8, 64), 20, Duration::ZERO);
    let ok = audiosae(&["store", "verify", dir.to_str().unwrap()]);
    assert!(ok.status.success());
    let info = audiosae(&["store", "info", dir.to_str().unwrap()]);
    assert!(info.status.success() && String::from_utf8_lossy(&info.stdout).contains("encoder.3"));

    let shard = dir.join(&StoreReader::open(&dir).unwrap().manifest().shards[1].file);
    let original = std::fs::read(&shard).unwrap();
    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 0x10;
    std::fs::write(&shard, &flipped).unwrap();
    let out = audiosae(&["store", "verify", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&shard.display().to_string()) && stderr.contains("sha256"), "{stderr}");

    std::fs::write(&shard, &original[..original.len() - 10]).unwrap();
    let out = audiosae(&["store", "verify", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&shard.display().to_string()) && stderr.contains("truncated"), "{stderr}");
    assert!(StoreReader::open(&dir).err().unwrap().to_string().contains("truncated"));

    std::fs::write(&shard, &original).unwrap();
    assert!(verify(&dir, false).unwrap().is_ok());
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["items"][3]["start"] = serde_json::json!(manifest["items"][3]["start"].as_u64().unwrap() + 1);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let problems = verify(&dir, false).unwrap().problems;
    assert!(problems.iter().any(|p| p.contains("overlap or gap")), "{problems:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_name_the_store_or_the_item() {
    let not_store = tmp("not-a-store");
    std::fs::create_dir_all(&not_store).unwrap();
    std::fs::write(not_store.join("notes.txt"), "hi").unwrap();
    let e = StoreReader::open(&not_store).err().unwrap().to_string();
    assert!(e.contains("is not an activation store"), "{e}");
    let out = audiosae(&["store", "verify", not_store.to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not an activation store"));
    let e = StoreWriter::create(&not_store, config(StoreDType::F32, 4, 8)).err().unwrap().to_string();
    assert!(e.contains("notes.txt"), "{e}");

    let dir = tmp("errors");
    let mut w = StoreWriter::create(&dir, config(StoreDType::F16, 4, 8)).unwrap();
    let invalid = |r: anyhow::Result<()>| r.unwrap_err().downcast::<InvalidItem>().unwrap();
    let e = invalid(w.append_item(ItemMeta::new("wrong-d", "a.wav", 1.0), &[0.0; 6]));
    assert!(e.id == "wrong-d" && e.to_string().contains("d = 4"), "{e}");
    let mut frames = vec![0.5f32; 12];
    frames[6] = f32::NAN;
    let e = invalid(w.append_item(ItemMeta::new("nan", "a.wav", 1.0), &frames));
    assert!(e.to_string().contains("\"nan\"") && e.to_string().contains("row 1 column 2 is NaN"), "{e}");
    frames[6] = f32::INFINITY;
    assert!(invalid(w.append_item(ItemMeta::new("inf", "a.wav", 1.0), &frames)).to_string().contains("inf"));
    frames[6] = 1e6;
    let e = invalid(w.append_item(ItemMeta::new("big", "a.wav", 1.0), &frames));
    assert!(e.to_string().contains("overflows f16"), "{e}");
    frames[6] = 0.25;
    w.append_item(ItemMeta::new("good", "a.wav", 1.0), &frames).unwrap();
    let e = invalid(w.append_item(ItemMeta::new("good", "a.wav", 1.0), &frames));
    assert!(e.to_string().contains("already in the store"), "{e}");
    w.finish().unwrap();
    let store = StoreReader::open(&dir).unwrap();
    assert_eq!(store.items().len(), 1);
    assert_eq!(store.item("good").unwrap().frames.as_slice().unwrap(), frames.as_slice());
    assert!(verify(&dir, false).unwrap().is_ok());

    let e = StoreWriter::open_or_create(&dir, config(StoreDType::F32, 4, 8)).err().unwrap().to_string();
    assert!(e.contains("dtype: f16 vs f32"), "{e}");
    let e = StoreWriter::create(&dir, config(StoreDType::F16, 4, 8)).err().unwrap().to_string();
    assert!(e.contains("already holds an activation store"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&not_store).unwrap();
}

/// Rewrites `dir/manifest.json` through `edit`.
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, manifest.to_string()).unwrap();
}

/// Counts, lengths and offsets in a manifest are input: a lying one is refused with a message
/// by every reader, and listed by `store verify`, without a panic or an allocation it dictates.
#[test]
fn a_manifest_whose_numbers_lie_is_refused_not_trusted() {
    let src = tmp("lying-src");
    write_items(&src, config(StoreDType::F32, 4, 64), 12, Duration::ZERO);
    let huge = 1u64 << 60;
    type Edit = fn(&mut serde_json::Value, u64);
    let cases: [(&str, Edit, &str); 5] = [
        ("item-end", |m, huge| m["items"][11]["end"] = huge.into(), "beyond the shards"),
        ("item-start", |m, huge| m["items"][5]["start"] = huge.into(), "overlap or gap"),
        ("shard-rows", |m, huge| m["shards"][0]["rows"] = huge.into(), "shards hold 64 rows"),
        ("shard-bytes", |m, _| m["shards"][0]["bytes"] = u64::MAX.into(), "bytes"),
        ("d", |m, huge| m["d"] = huge.into(), "larger than memory can address"),
    ];
    for (name, edit, expected) in cases {
        let dir = tmp(&format!("lying-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        edit_manifest(&dir, |m| edit(m, huge));
        let opened = StoreReader::open(&dir).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(opened.contains(expected), "{name}: StoreReader::open said {opened:?}");
        let verified = match verify(&dir, false) {
            Ok(report) => report.problems.join("\n"),
            Err(e) => format!("{e:#}"),
        };
        assert!(verified.contains(expected), "{name}: verify said {verified:?}");
        let merged = merge(&tmp(&format!("lying-{name}-merged")), std::slice::from_ref(&dir), false);
        assert!(merged.is_err(), "{name}: merge accepted the store");
        for cmd in ["verify", "info"] {
            let out = audiosae(&["store", cmd, dir.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success() && !stderr.contains("panicked"), "{name}: {cmd:?}: {stderr}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::remove_dir_all(&src).unwrap();
}
