//! `audiosae extract` end to end on the tiny Qwen2-Audio fixture: valid frames only, long clips
//! in 30 s windows, bad files logged, resume after SIGKILL, `--shard i/N` + merge.

mod common;
use common::write_wav;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use audiosae::corpus::{Corpus, CorpusItem, Split};
use audiosae::store::StoreReader;
use tch::{Device, Kind, Tensor};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(rel)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-extract-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn speech() -> Vec<f32> {
    audiosae::audio::load_audio(&fixture("speech/61-70968-0000.flac")).unwrap().samples
}

/// A corpus of `n` short clips (the fixture speech, shifted so they differ), one 39 s clip and,
/// optionally, one corrupt file.
fn make_corpus(dir: &Path, n: usize, with_bad: bool) -> Corpus {
    let sp = speech();
    let mut files = Vec::new();
    for i in 0..n {
        let p = dir.join(format!("clip{i:03}.wav"));
        write_wav(&p, &sp[i * 160..]);
        files.push(p);
    }
    let long: Vec<f32> = sp.iter().cycle().take(39 * 16000).copied().collect();
    let p = dir.join("long.wav");
    write_wav(&p, &long);
    files.push(p);
    let mut corpus = Corpus::from_audio_files(&files, dir).unwrap();
    if with_bad {
        std::fs::write(dir.join("bad.wav"), b"RIFF\x10\x00\x00\x00WAVEjunk").unwrap();
        corpus.manifest.items.push(CorpusItem {
            id: "bad".into(),
            audio: "bad.wav".into(),
            transcript: String::new(),
            textgrid: None,
            duration_s: 1.0,
            split: Split::Train,
            speaker: String::new(),
            source: "test".into(),
        });
    }
    corpus.save().unwrap();
    corpus
}

fn extract(corpus: &Path, out: &Path, extra: &[&str]) -> Output {
    let model = fixture("qwen2_audio_tiny");
    let mut args = vec!["extract", "--model", s(&model), "--corpus", s(corpus), "--out", s(out), "--device", "cpu"];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_audiosae")).args(&args).output().unwrap()
}

/// (id, frames) of every item, sorted by id.
fn contents(store: &Path) -> Vec<(String, Vec<f32>)> {
    let r = StoreReader::open(store).unwrap();
    let mut v: Vec<(String, Vec<f32>)> = r
        .items()
        .iter()
        .map(|it| (it.meta.id.clone(), r.item(&it.meta.id).unwrap().frames.iter().copied().collect()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Same items with the same frame counts, values equal up to float summation order (clips batched
/// with different neighbours are trimmed to a different length in fast mode).
fn assert_same_contents(got: &[(String, Vec<f32>)], want: &[(String, Vec<f32>)], what: &str) {
    let ids = |v: &[(String, Vec<f32>)]| v.iter().map(|(id, f)| (id.clone(), f.len())).collect::<Vec<_>>();
    assert_eq!(ids(got), ids(want), "{what}: items or frame counts differ");
    for ((id, a), (_, b)) in got.iter().zip(want) {
        let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(max <= 1e-5, "{what}: item {id} differs by {max}");
    }
}

fn verify(store: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_audiosae")).args(["store", "verify", s(store)]).output().unwrap();
    assert!(out.status.success(), "verify {}: {}", store.display(), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn extracts_valid_frames_windows_long_clips_and_logs_bad_files() {
    let dir = tmp("basic");
    make_corpus(&dir, 2, true);
    let out = dir.join("stores");
    let r = extract(&dir, &out, &["--layer", "projector,encoder.0"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "a skipped file must make the exit status non-zero");
    assert!(err.contains("1 clip(s) skipped") && err.contains("bad.wav"), "{err}");
    let log = std::fs::read_to_string(out.join("errors.jsonl")).unwrap();
    assert!(log.contains("\"id\":\"bad\"") && log.contains("bad.wav"), "{log}");

    let proj = StoreReader::open(&out.join("projector")).unwrap();
    let enc0 = StoreReader::open(&out.join("encoder.0")).unwrap();
    assert_eq!(proj.items().len(), 3);
    assert_eq!(proj.config().timing, audiosae::FrameTiming::POOLED);
    assert_eq!(enc0.config().timing, audiosae::FrameTiming::ENCODER);
    // The first clip is the fixture speech minus 0 samples: exactly transformers' projector rows.
    let clip0 = proj.item("clip000").unwrap();
    let want = audiosae::npy::read_f32(&fixture("qwen2_audio_ref/a_speech_projector.npy")).unwrap();
    let want: Vec<f32> = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
    let got: Vec<f32> = clip0.frames.iter().copied().collect();
    assert_eq!(got.len(), want.len(), "only the valid 123 frames are stored");
    let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max <= 1e-4, "{max}");
    // 39 s: a full 30 s window (750 pooled / 1500 encoder frames) plus 9 s (225 / 450).
    assert_eq!(proj.item("long").unwrap().frames.nrows(), 750 + 225);
    assert_eq!(enc0.item("long").unwrap().frames.nrows(), 1500 + 450);
    // Frame times follow FrameTiming across the window boundary.
    let t = enc0.item("long").unwrap().timing;
    assert!((t.center(1500) - 30.0).abs() < 1e-9);
    verify(&out.join("projector"));
    verify(&out.join("encoder.0"));

    // A rerun skips what is done and retries only the bad file.
    let r = extract(&dir, &out, &["--layer", "projector,encoder.0"]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("extracted 0 clips"));
    assert_eq!(contents(&out.join("projector")).len(), 3);
}

#[test]
fn resumes_after_sigkill_to_the_same_store() {
    let dir = tmp("kill");
    make_corpus(&dir, 40, false);
    let reference = dir.join("reference");
    assert!(extract(&dir, &reference, &["--shard-rows", "300", "--batch-size", "2"]).status.success());
    let want = contents(&reference);
    assert_eq!(want.len(), 41);

    let out = dir.join("killed");
    let model = fixture("qwen2_audio_tiny");
    // Each round kills the job right after it commits something new, so every round interrupts
    // a running extraction whatever the machine's speed.
    let committed = |dir: &Path| audiosae::store::Manifest::load(dir).map(|m| m.items.len()).unwrap_or(0);
    for round in 0..3 {
        let before = committed(&out);
        let mut child = Command::new(env!("CARGO_BIN_EXE_audiosae"))
            .args(["extract", "--model", s(&model), "--corpus", s(&dir), "--out", s(&out), "--device", "cpu"])
            .args(["--shard-rows", "300", "--batch-size", "2"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while committed(&out) == before && child.try_wait().unwrap().is_none() && started.elapsed().as_secs() < 120 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        eprintln!("round {round}: killed with {} items committed", committed(&out));
    }
    let partial = StoreReader::open(&out).map(|r| r.items().len()).unwrap_or(0);
    assert!(partial < 41, "the kills came too late to interrupt anything");
    let r = extract(&dir, &out, &["--shard-rows", "300", "--batch-size", "2"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let resumed = String::from_utf8_lossy(&r.stderr);
    assert!(resumed.contains(&format!("{partial} already done")), "{resumed}");
    verify(&out);
    assert_same_contents(&contents(&out), &want, "resumed store vs uninterrupted");
}

#[test]
fn shard_jobs_merge_into_the_single_job_store() {
    let dir = tmp("shards");
    make_corpus(&dir, 5, false);
    let single = dir.join("single");
    assert!(extract(&dir, &single, &[]).status.success());
    let mut parts = Vec::new();
    for i in 0..3 {
        let p = dir.join(format!("part{i}"));
        let r = extract(&dir, &p, &["--shard", &format!("{i}/3")]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        parts.push(p);
    }
    let merged = dir.join("merged");
    let mut args = vec!["store".to_string(), "merge".into(), s(&merged).into()];
    args.extend(parts.iter().map(|p| s(p).to_string()));
    let r = Command::new(env!("CARGO_BIN_EXE_audiosae")).args(&args).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    verify(&merged);
    assert_same_contents(&contents(&merged), &contents(&single), "merged shard jobs vs single job");
}

#[test]
fn a_bad_file_in_a_plain_directory_does_not_stop_the_run() {
    let dir = tmp("dir");
    write_wav(&dir.join("good.wav"), &speech());
    std::fs::write(dir.join("junk.wav"), b"definitely not audio").unwrap();
    // A well-formed WAV whose header declares a sample rate of 0 (bytes 24..28 of the fmt chunk).
    write_wav(&dir.join("rate0.wav"), &speech()[..1600]);
    let mut rate0 = std::fs::read(dir.join("rate0.wav")).unwrap();
    rate0[24..28].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(dir.join("rate0.wav"), &rate0).unwrap();
    // And one that declares 4 GHz (once reported as "contains no audio samples").
    let mut huge = rate0;
    huge[24..28].copy_from_slice(&4_000_000_000u32.to_le_bytes());
    std::fs::write(dir.join("rate-huge.wav"), huge).unwrap();
    let out = dir.join("store");
    let r = extract(&dir, &out, &[]);
    assert!(!r.status.success());
    let log = std::fs::read_to_string(out.join("errors.jsonl"))
        .unwrap_or_else(|e| panic!("no errors.jsonl ({e}): {}", String::from_utf8_lossy(&r.stderr)));
    assert!(log.contains("junk.wav") && log.contains("rate0.wav") && log.contains("sample rate of 0 Hz"), "{log}");
    assert!(log.contains("rate-huge.wav") && log.contains("sample rate of 4000000000 Hz"), "{log}");
    assert_eq!(StoreReader::open(&out).unwrap().items().len(), 1);
}

const TRANSCRIPT: &str =
    "HE BEGAN A CONFUSED COMPLAINT AGAINST THE WIZARD WHO HAD VANISHED BEHIND THE CURTAIN ON THE LEFT";

/// `audiosae extract-text --layer LAYER` on a one-clip corpus of the fixture transcript.
fn extract_text(name: &str, layer: &str) -> StoreReader {
    let dir = tmp(name);
    write_wav(&dir.join("clip.wav"), &speech());
    std::fs::write(dir.join("clip.lab"), TRANSCRIPT).unwrap();
    let out = dir.join("text-store");
    let model = fixture("qwen2_audio_tiny");
    let r = Command::new(env!("CARGO_BIN_EXE_audiosae"))
        .args(["extract-text", "--model", s(&model), "--corpus", s(&dir), "--out", s(&out), "--layer", layer])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    StoreReader::open(&out).unwrap()
}

fn transcript_token_ids() -> Vec<i64> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("qwen2_audio_ref/meta.json")).unwrap()).unwrap();
    meta["transcript_token_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect()
}

#[test]
fn extract_text_stores_one_row_per_transcript_token() {
    let transcript = TRANSCRIPT;
    let store = extract_text("text", "1");
    assert_eq!(store.config().layer, "lm.1");
    let item = store.item("clip").unwrap();
    let tokens = item.meta.tokens.clone().expect("token strings in the manifest");
    assert_eq!(tokens.concat(), transcript);
    // The same ids as transformers' tokenizer (recorded by the fixture script).
    assert_eq!(transcript_token_ids().len(), tokens.len());
    assert_eq!(item.frames.nrows(), tokens.len());
    assert_eq!(item.frames.ncols(), 32);
}

#[test]
fn extract_text_embed_stores_the_input_token_embeddings() {
    let store = extract_text("text-embed", "embed");
    assert_eq!(store.config().layer, "lm.embed");
    let item = store.item("clip").unwrap();
    let model =
        audiosae::models::AudioModel::load(s(&fixture("qwen2_audio_tiny")), Device::Cpu, Kind::Float, true).unwrap();
    let lm = model.qwen2_audio().unwrap().language_model.as_ref().unwrap();
    let want = lm.embed(&Tensor::from_slice(&transcript_token_ids()).view([1, -1])).get(0);
    let got = Tensor::from_slice(item.frames.as_slice().unwrap()).view([item.frames.nrows() as i64, -1]);
    assert_eq!(got.size(), want.size());
    assert_eq!((got - want).abs().max().double_value(&[]), 0.0);
}
