//! Mutation fuzzing, on stable Rust, of every parser that reads a user's file: WAV, FLAC, MP3 and
//! Ogg Vorbis (through our decoding layer), TextGrid, `.npy`, the activation store (manifest and
//! shards), corpus manifests, CTranslate2 `model.bin`, safetensors, the SAE `cfg.json` and what a
//! plugin hands back (its report wire form and `info` JSON). Each target starts from committed
//! fixtures (or files the library writes), mutates them (bit flips, interesting integers, cut,
//! repeated or deleted spans, truncation, splices of two seeds) and hands the result to the parser
//! and to what reads its output.
//!
//! Invariants, checked on every input:
//! - no panic (caught and reported with the input),
//! - no abort, and no single allocation over what the input justifies, [`allowed_allocation`]
//!   (a counting global allocator),
//! - no hang (a watchdog fails the target when one input takes over [`HANG_SECONDS`]).
//!
//! A bounded run is part of the test suite (`AUDIOSAE_FUZZ_SECONDS`, default 60 s in all, with a
//! fixed seed). A longer run, from a random seed:
//!
//! ```sh
//! AUDIOSAE_FUZZ_SECONDS=3600 AUDIOSAE_FUZZ_SEED=random cargo test --release -p audiosae --test fuzz_parsers -- --nocapture
//! ```
//!
//! A failing input is kept under `$TMPDIR/audiosae-fuzz-PID/` and its path printed.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use audiosae::corpus::Corpus;
use audiosae::store::{ItemMeta, ModelRef, StoreConfig, StoreDType, StoreReader, StoreWriter};
use audiosae::textgrid::{frame_labels, PhoneSet, TextGrid, TierName};
use audiosae::FrameTiming;
use audiosae_plugin_api::ffi::panic_message;
use common::{ct2_model, f32_bytes};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Past this, the counting allocator refuses outright (the process aborts, naming the size).
const ALLOCATION_LIMIT: usize = 256 << 20;

/// The largest single allocation an input of `len` bytes may cause: a fixed allowance for
/// tables and buffers that do not depend on the input (resampler filters, decoder state), plus
/// room for the input decoded into f32 samples many times over (8-bit audio at a low rate
/// resampled to 16 kHz grows about 100-fold).
fn allowed_allocation(len: usize) -> usize {
    (16 << 20) + 512 * len
}
const HANG_SECONDS: u64 = 20;

/// Counts the largest allocation of each thread since its last reset (targets run on threads of
/// their own, side by side); refuses (so the process aborts at once, naming the size) anything
/// past four times the limit, which no input here justifies.
struct CountingAllocator;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        if new_size > ALLOCATION_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(rel)
}

fn work_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("audiosae-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Seconds for one target: the total budget shared by the targets.
fn budget(targets: usize) -> Duration {
    let total: f64 = std::env::var("AUDIOSAE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60.0);
    Duration::from_secs_f64(total / targets as f64)
}

/// The run's seed, drawn once; printed with each target's result so a failure can be replayed
/// with `AUDIOSAE_FUZZ_SEED=N`.
fn seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| match std::env::var("AUDIOSAE_FUZZ_SEED").ok().as_deref() {
        None => 0x5eed,
        Some("random") => rand::random(),
        Some(s) => s.parse().expect("AUDIOSAE_FUZZ_SEED: a number or `random`"),
    })
}

const TARGETS: usize = 12;

/// Integers parsers tend to trust: sizes, counts, offsets.
const INTERESTING: [u64; 12] =
    [0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1 << 40, u64::MAX];

fn mutate(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.gen_range(0..seeds.len())].clone();
    for _ in 0..rng.gen_range(1..=4) {
        let len = data.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                data[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                data[i] = rng.gen();
            }
            2 if len >= 8 => {
                // An interesting integer, 1, 2, 4 or 8 bytes, little or big endian.
                let width = [1, 2, 4, 8][rng.gen_range(0..4)];
                let at = rng.gen_range(0..=len - width);
                let v = INTERESTING[rng.gen_range(0..INTERESTING.len())];
                let bytes = if rng.gen() { v.to_le_bytes() } else { v.to_be_bytes() };
                let bytes = if rng.gen() { &bytes[..width] } else { &bytes[8 - width..] };
                data[at..at + width].copy_from_slice(bytes);
            }
            3 if len > 0 => {
                data.truncate(rng.gen_range(0..len));
            }
            4 if len > 1 => {
                let a = rng.gen_range(0..len);
                let b = (a + rng.gen_range(1..=64.min(len - a))).min(len);
                data.drain(a..b);
            }
            5 if len > 1 => {
                let a = rng.gen_range(0..len);
                let b = (a + rng.gen_range(1..=64.min(len - a))).min(len);
                let span = data[a..b].to_vec();
                let at = rng.gen_range(0..=data.len());
                data.splice(at..at, span.iter().copied().cycle().take(span.len() * rng.gen_range(1..8)));
            }
            6 => {
                // Splice: the head of this input, the tail of another seed.
                let other = &seeds[rng.gen_range(0..seeds.len())];
                let cut = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => {
                // A decimal number in a text format replaced by an extreme one.
                let at = rng.gen_range(0..len);
                let text = ["-1", "1e308", "NaN", "18446744073709551616", "99999999999", "-0", "inf"];
                let t = text[rng.gen_range(0..text.len())].as_bytes();
                let end = (at + t.len()).min(len);
                data.splice(at..end, t.iter().copied());
            }
            _ => {}
        }
    }
    data
}

/// Runs `check` on mutated inputs for the target's share of the budget. Each input is written to
/// `name` in a scratch folder first (most parsers take a path); `check` may return an error (the
/// expected outcome for most inputs) but must not panic, abort, hang or allocate past the limit.
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, name: &str, check: impl Fn(&Path) + Send + 'static) {
    let dir = work_dir().join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let budget = budget(TARGETS);
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed() ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let (tx, rx) = mpsc::channel::<Result<usize, String>>();
    let worker_path = path.clone();
    let worker_target = target.to_string();
    let worker = std::thread::spawn(move || {
        let start = Instant::now();
        let mut cases = 0;
        // The seeds themselves first, then mutants.
        while cases < seeds.len() || start.elapsed() < budget {
            let input = if cases < seeds.len() { seeds[cases].clone() } else { mutate(&mut rng, &seeds) };
            std::fs::write(&worker_path, &input).unwrap();
            LARGEST.with(|l| l.set(0));
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(&worker_path)));
            let largest = LARGEST.with(Cell::get);
            let failure = match outcome {
                Err(panic) => Some(format!("panicked: {}", panic_message(panic.as_ref()).unwrap_or_default())),
                Ok(()) if largest > allowed_allocation(input.len()) => {
                    Some(format!("allocated {largest} bytes at once for {} bytes of input", input.len()))
                }
                Ok(()) => None,
            };
            if let Some(failure) = failure {
                let kept = worker_path.with_extension(format!("failing-{cases}"));
                std::fs::copy(&worker_path, &kept).unwrap();
                let _ = tx.send(Err(format!("{worker_target}: input {} (seed {}) {failure}", kept.display(), seed())));
                return;
            }
            cases += 1;
            if tx.send(Ok(cases)).is_err() {
                return;
            }
        }
    });
    let mut cases = 0;
    loop {
        match rx.recv_timeout(Duration::from_secs(HANG_SECONDS)) {
            Ok(Ok(n)) => cases = n,
            Ok(Err(failure)) => panic!("{failure}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let kept = path.with_extension("hanging");
                let _ = std::fs::copy(&path, &kept);
                panic!("{target}: one input ran past {HANG_SECONDS} s (kept as {})", kept.display());
            }
        }
    }
    worker.join().unwrap();
    eprintln!(
        "{target}: {cases} inputs (seed {}), no panic, abort, hang or allocation past 16 MiB + 512 x input",
        seed()
    );
}

/// Drops an error: most mutants are malformed, and an error is the expected answer.
fn ignore<T, E>(_: Result<T, E>) {}

fn wav_bytes(format: hound::SampleFormat, bits: u16, channels: u16) -> Vec<u8> {
    let path = work_dir().join(format!("seed-{bits}-{channels}.wav"));
    let spec = hound::WavSpec { channels, sample_rate: 22_050, bits_per_sample: bits, sample_format: format };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..2000 * channels as usize {
        let x = (i as f32 * 0.01).sin() * 0.5;
        match (format, bits) {
            (hound::SampleFormat::Float, _) => w.write_sample(x).unwrap(),
            (_, 8) => w.write_sample((x * 127.0) as i8).unwrap(),
            (_, 16) => w.write_sample((x * 32767.0) as i16).unwrap(),
            _ => w.write_sample((x * 8_388_607.0) as i32).unwrap(),
        }
    }
    w.finalize().unwrap();
    std::fs::read(path).unwrap()
}

#[test]
fn fuzz_wav() {
    let seeds = vec![
        wav_bytes(hound::SampleFormat::Int, 16, 1),
        wav_bytes(hound::SampleFormat::Int, 24, 2),
        wav_bytes(hound::SampleFormat::Int, 8, 1),
        wav_bytes(hound::SampleFormat::Float, 32, 2),
    ];
    fuzz("wav", seeds, "x.wav", |p| {
        ignore(audiosae::audio::load_audio(p));
        ignore(audiosae::corpus::audio_duration_s(p));
    });
}

#[test]
fn fuzz_flac() {
    // The fixture's first 16 kB: the header and a few frames keep each case fast.
    let flac = std::fs::read(fixture("speech/61-70968-0000.flac")).unwrap();
    fuzz("flac", vec![flac[..16_384].to_vec()], "x.flac", |p| ignore(audiosae::audio::load_audio(p)));
}

#[test]
fn fuzz_mp3() {
    let mp3 = std::fs::read(fixture("speech/common_voice_en_22058267.mp3")).unwrap();
    fuzz("mp3", vec![mp3], "x.mp3", |p| ignore(audiosae::audio::load_audio(p)));
}

#[test]
fn fuzz_ogg() {
    let ogg = std::fs::read(fixture("audio/sine.ogg")).unwrap();
    fuzz("ogg", vec![ogg], "x.ogg", |p| ignore(audiosae::audio::load_audio(p)));
}

#[test]
fn fuzz_textgrid() {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(fixture("textgrid"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "TextGrid"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    seeds.push(std::fs::read(fixture("speech/61-70968-0000.TextGrid")).unwrap());
    // UTF-16 with a BOM, as Praat writes non-ASCII grids.
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(String::from_utf8_lossy(&seeds[0]).encode_utf16().flat_map(|u| u.to_le_bytes()))
        .collect();
    seeds.push(utf16);
    fuzz("textgrid", seeds, "x.TextGrid", |p| {
        let Ok(grid) = TextGrid::read(p) else { return };
        ignore(grid.check_audio_end(5.0, audiosae::textgrid::AUDIO_END_TOLERANCE_S));
        for name in [TierName::Words, TierName::Phones] {
            if let Ok(tier) = grid.interval_tier(&name) {
                let mapped = PhoneSet::Arpabet39.map_tier(tier, &mut Default::default());
                let _ = frame_labels(&mapped, &FrameTiming::ENCODER, 400);
            }
        }
    });
}

#[test]
fn fuzz_npy() {
    let wave = std::fs::read(fixture("logmel/synth_wave.npy")).unwrap();
    let small = audiosae::store::npy_header("<f4", 3, 4).into_iter().chain([0u8; 48]).collect();
    fuzz("npy", vec![wave[..4096].to_vec(), small], "x.npy", |p| {
        ignore(audiosae::npy::read_f32(p));
        ignore(audiosae::store::parse_npy_header(&std::fs::read(p).unwrap()));
    });
}

/// A small finished store: 5 items over 3 shards of 16 rows.
fn small_store(dir: &Path) {
    let config = StoreConfig {
        model: ModelRef { id: "fuzz/model".into(), revision: None },
        layer: "encoder".into(),
        timing: FrameTiming::ENCODER,
        dtype: StoreDType::F32,
        d: 4,
        shard_rows: 16,
    };
    let mut w = StoreWriter::create(dir, config).unwrap();
    for k in 0..5 {
        let rows = 3 + 2 * k;
        let frames: Vec<f32> = (0..rows * 4).map(|i| i as f32 * 0.1).collect();
        w.append_item(ItemMeta::new(format!("clip{k}"), format!("{k}.wav"), rows as f64 * 0.02), &frames).unwrap();
    }
    w.finish().unwrap();
}

/// Everything a reader does with a store: open, read every item, sample, verify.
fn read_store(dir: &Path) {
    if let Ok(r) = StoreReader::open(dir) {
        for i in 0..r.items().len() {
            let _ = r.item_at(i);
        }
    }
    ignore(audiosae::store::verify(dir, false));
    ignore(audiosae::store::Manifest::load(dir).map(|m| m.summary(dir)));
}

#[test]
fn fuzz_store_manifest_and_shards() {
    let reference = work_dir().join("store-reference");
    let _ = std::fs::remove_dir_all(&reference);
    small_store(&reference);
    let manifest = std::fs::read(reference.join("manifest.json")).unwrap();
    let shard_name = StoreReader::open(&reference).unwrap().manifest().shards[0].file.clone();
    let shard = std::fs::read(reference.join(&shard_name)).unwrap();
    // One case in two mutates the manifest, the other the first shard.
    let store = work_dir().join("store");
    let _ = std::fs::remove_dir_all(&store);
    std::fs::create_dir_all(&store).unwrap();
    for e in std::fs::read_dir(&reference).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), store.join(e.file_name())).unwrap();
    }
    let seeds = vec![[b"M".as_slice(), &manifest].concat(), [b"S".as_slice(), &shard].concat()];
    fuzz("store", seeds, "input", move |p| {
        let input = std::fs::read(p).unwrap();
        let (which, bytes) = input.split_first().unwrap_or((&b'M', &[]));
        let (target, restore) = if *which == b'S' {
            (store.join(&shard_name), (store.join("manifest.json"), manifest.clone()))
        } else {
            (store.join("manifest.json"), (store.join(&shard_name), shard.clone()))
        };
        std::fs::write(&restore.0, &restore.1).unwrap();
        std::fs::write(&target, bytes).unwrap();
        read_store(&store);
    });
}

#[test]
fn fuzz_corpus_manifest() {
    let dir = work_dir().join("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("speech/61-70968-0000.flac"), dir.join("a.flac")).unwrap();
    std::fs::copy(fixture("speech/61-70968-0000.TextGrid"), dir.join("a.TextGrid")).unwrap();
    let manifest = serde_json::json!({"name": "fuzz", "phone_set": "arpabet39", "items": [
        {"id": "a", "audio": "a.flac", "transcript": "x", "textgrid": "a.TextGrid", "duration_s": 4.905,
         "split": "train", "speaker": "s", "source": "test"},
        {"id": "b", "audio": "a.flac", "transcript": "y", "textgrid": null, "duration_s": 0.0,
         "split": "test", "speaker": "t", "source": "test"}]});
    let seeds = vec![serde_json::to_vec_pretty(&manifest).unwrap()];
    fuzz("corpus", seeds, "manifest.json", move |p| {
        std::fs::copy(p, dir.join("manifest.json")).unwrap();
        if let Ok(c) = Corpus::open(dir.to_str().unwrap()) {
            ignore(audiosae::corpus::stats::compute(&c, PhoneSet::Arpabet39));
        }
    });
}

/// A CTranslate2 model.bin with a float matrix, an int8 one, a scalar and an alias.
fn ct2_bytes() -> Vec<u8> {
    let w = f32_bytes(&[1., 2., 3., 4., 5., 6.]);
    ct2_model(
        &[
            ("encoder/w", &[2, 3], 0, &w),
            ("encoder/q", &[4], 1, &[1, 2, 3, 4]),
            ("encoder/num_heads", &[], 3, &6i32.to_le_bytes()),
        ],
        &[("encoder/alias", "encoder/w")],
    )
}

#[test]
fn fuzz_ctranslate2() {
    fuzz("ct2", vec![ct2_bytes()], "model.bin", |p| {
        if let Ok(m) = audiosae::ctranslate2::Ct2Model::open(p) {
            ignore(audiosae::ctranslate2::whisper_encoder_tensors(&m));
            let names: Vec<String> = m.names().map(str::to_string).collect();
            for name in names {
                ignore(m.float(&name));
                let _ = m.scalar_i64(&name);
            }
        }
    });
}

#[test]
fn fuzz_safetensors() {
    let dir = work_dir().join("safetensors");
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..24u8).collect();
    let half: Vec<u8> = (0..8u8).collect();
    let views = vec![
        ("a.weight", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3], &data).unwrap()),
        ("b.bias", safetensors::tensor::TensorView::new(safetensors::Dtype::F16, vec![4], &half).unwrap()),
    ];
    let seed = safetensors::serialize(views, &None).unwrap();
    fuzz("safetensors", vec![seed], "input.bin", move |p| {
        std::fs::copy(p, dir.join("model.safetensors")).unwrap();
        ignore(audiosae::weights::Weights::from_safetensors_dir(
            &dir,
            |k| Some(k.to_string()),
            tch::Device::Cpu,
            tch::Kind::Float,
        ));
    });
}

#[test]
fn fuzz_sae_cfg() {
    use audiosae::sae::config::{Arch, SaeConfig, TrainConfig};
    use audiosae::sae::data::InMemorySource;
    use audiosae::sae::train::{train, TrainOptions};
    let dir = work_dir().join("sae");
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = TrainConfig {
        sae: SaeConfig { arch: Arch::TopK, d_in: 8, d_sae: 16, k: Some(2), ..Default::default() },
        steps: 5,
        batch_size: 32,
        log_every: 5,
        checkpoint_every: 5,
        device: "cpu".into(),
        ..Default::default()
    };
    let mut source =
        InMemorySource::new(tch::Tensor::randn([256, 8], (tch::Kind::Float, tch::Device::Cpu)), 0).unwrap();
    let opts = TrainOptions { out_dir: dir.clone(), resume: false, progress: false, stop_after: None };
    train(cfg, &mut source, &opts).unwrap();
    let seeds = vec![std::fs::read(dir.join("cfg.json")).unwrap()];
    fuzz("sae-cfg", seeds, "cfg.json", move |p| {
        std::fs::copy(p, dir.join("cfg.json")).unwrap();
        ignore(audiosae::sae::checkpoint::load_sae(&dir, tch::Device::Cpu));
    });
}

/// What a plugin hands back to the host: the report wire form (JSON, then figure bytes) and its
/// `info` JSON. The descriptor itself is pointers into the loaded library, checked by the plugin
/// tests rather than fuzzed.
#[test]
fn fuzz_plugin_report() {
    use audiosae_plugin_api::report::{Figure, FigureFormat, Report, Table};
    let mut table = Table::new("units", &["unit", "label", "score"]);
    table.push(vec![3usize.into(), "AA".into(), 0.25.into()]);
    let report = Report {
        summary: serde_json::json!({"units": 1, "note": "x"}),
        tables: vec![table],
        figures: vec![
            Figure { name: "a".into(), format: FigureFormat::Png, bytes: vec![1, 2, 3, 4] },
            Figure { name: "b".into(), format: FigureFormat::Svg, bytes: b"<svg/>".to_vec() },
        ],
    };
    let info = br#"{"name": "x", "version": "0.1.0", "description": "d"}"#.to_vec();
    fuzz("plugin-report", vec![report.to_bytes().unwrap(), info], "report.bin", |p| {
        let bytes = std::fs::read(p).unwrap();
        ignore(Report::from_bytes(&bytes));
        ignore(serde_json::from_slice::<audiosae_plugin_api::types::PluginInfo>(&bytes));
    });
}
