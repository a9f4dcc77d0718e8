//! The CLI contract (exact command forms other tools rely on), run on the committed fixtures
//! and on Whisper tiny.en.

mod common;
use common::write_wav;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use audiosae::npy::{read_f32, read_i64};
use tch::{Kind, Tensor};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(rel)
}

fn clip() -> PathBuf {
    fixture("speech/61-70968-0000.flac")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_audiosae")).args(args).envs(envs.iter().copied()).output().unwrap();
    eprintln!("$ audiosae {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

fn ok(args: &[&str]) -> Output {
    let out = run(args, &[]);
    assert!(out.status.success(), "audiosae {} failed", args.join(" "));
    out
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn logmel_writes_the_exact_model_input() {
    let d = tmp("logmel");
    for n in [80, 128] {
        let out = d.join(format!("m{n}.npy"));
        ok(&["logmel", s(&clip()), "--n-mels", &n.to_string(), "-o", s(&out)]);
        let got = read_f32(&out).unwrap();
        assert_eq!(got.size(), [n, 3000]);
        assert!(max_diff(&got, &read_f32(&fixture(&format!("logmel/speech_logmel{n}.npy"))).unwrap()) <= 1e-4);
    }
}

#[test]
fn features_of_qwen2_audio_layers() {
    let d = tmp("qfeat");
    let model = fixture("qwen2_audio_tiny");
    let clip = clip();
    for (layer, reference, rows) in [
        (None, "a_speech_projector", 123),
        (Some("projector"), "a_speech_projector", 123),
        (Some("encoder"), "a_speech_encoder", 123),
        (Some("encoder.0"), "a_speech_layer0", 246),
    ] {
        let out = d.join("f.npy");
        let mut args = vec!["features", "--model", s(&model), s(&clip), "-o", s(&out), "--device", "cpu"];
        if let Some(l) = layer {
            args.extend(["--layer", l]);
        }
        ok(&args);
        let got = read_f32(&out).unwrap();
        assert_eq!(got.size()[0], rows);
        let diff = max_diff(&got, &read_f32(&fixture(&format!("qwen2_audio_ref/{reference}.npy"))).unwrap());
        assert!(diff <= 1e-4, "{layer:?}: {diff}");
    }
    let bad =
        run(&["features", "--model", s(&model), s(&clip), "-o", s(&d.join("x.npy")), "--layer", "encoder.7"], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("encoder has 2 layers"));
}

#[test]
fn features_of_whisper_tiny_en() {
    let d = tmp("wfeat");
    let model = audiosae::cli::default_model();
    let out = d.join("f.npy");
    let want = read_f32(&fixture("whisper_ref/tiny_en_hf_encoder.npy")).unwrap();
    ok(&["features", "--model", s(&model), s(&clip()), "-o", s(&out), "--attention", "eager"]);
    let got = read_f32(&out).unwrap();
    assert_eq!(got.size(), [246, 384]);
    assert!(max_diff(&got, &want) <= 1e-4);
    ok(&["features", "--model", s(&model), s(&clip()), "-o", s(&out)]);
    assert!(max_diff(&read_f32(&out).unwrap(), &want) <= 5e-4, "default (sdpa) attention drifted");
}

#[test]
fn generate_prints_transformers_greedy_tokens() {
    let out = ok(&[
        "generate",
        "--model",
        s(&fixture("qwen2_audio_tiny")),
        s(&clip()),
        "--prompt",
        "Transcribe the audio.",
        "--max-new-tokens",
        "24",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout must be JSON");
    let ids: Vec<i64> = json["token_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let want = Vec::<i64>::try_from(read_i64(&fixture("qwen2_audio_ref/a_speech_greedy.npy")).unwrap()).unwrap();
    assert_eq!(ids, want);
    assert!(json["text"].is_string());
}

#[test]
fn transcribe_prints_one_json_line_per_readable_file_and_fails_at_the_end_for_the_others() {
    let dir = tmp("transcribe");
    let bad = dir.join("bad.wav");
    std::fs::write(&bad, b"not audio").unwrap();
    let short = dir.join("short.wav");
    write_wav(&short, &audiosae::models::load_clip(&clip()).unwrap()[..40000]);
    let model = fixture("whisper_tiny_gen");
    let out = run(
        &[
            "transcribe",
            "--model",
            s(&model),
            "--language",
            "de",
            "--task",
            "translate",
            s(&clip()),
            s(&bad),
            s(&short),
        ],
        &[],
    );
    assert!(!out.status.success(), "a file that cannot be read must fail the run at the end");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.wav") && err.contains("1 of 3 files"), "{err}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "one line per readable file, in order");
    assert_eq!(lines[0]["audio"], s(&clip()));
    assert_eq!(lines[1]["audio"], s(&short));
    // The translate prompt of the reference generator (tests/fixtures/whisper_decoding_ref).
    let refs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("whisper_decoding_ref/refs.json")).unwrap()).unwrap();
    assert_eq!(lines[0]["token_ids"], refs["tiny_gen"]["cases"][1]["tokens"][0]);
    assert!(lines[0]["text"].is_string());
    // An English-only model refuses another language.
    let en_only = run(&["transcribe", "--language", "de", s(&clip())], &[]);
    assert!(String::from_utf8_lossy(&en_only.stderr).contains("English-only"));
}

#[test]
fn models_load_from_the_offline_hub_cache_by_repo_id() {
    let cache = tmp("hub");
    let snap = cache.join("models--audiosae--tiny-qwen2-audio/snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(cache.join("models--audiosae--tiny-qwen2-audio/refs")).unwrap();
    std::fs::write(cache.join("models--audiosae--tiny-qwen2-audio/refs/main"), "0123abcd").unwrap();
    for e in std::fs::read_dir(fixture("qwen2_audio_tiny_v5")).unwrap() {
        let p = e.unwrap().path();
        std::os::unix::fs::symlink(&p, snap.join(p.file_name().unwrap())).unwrap();
    }
    let out = cache.join("f.npy");
    let env = [("HF_HUB_CACHE", s(&cache)), ("HF_HUB_OFFLINE", "1")];
    let r = run(&["features", "--model", "audiosae/tiny-qwen2-audio", s(&clip()), "-o", s(&out)], &env);
    assert!(r.status.success());
    let diff =
        max_diff(&read_f32(&out).unwrap(), &read_f32(&fixture("qwen2_audio_ref/b_speech_projector.npy")).unwrap());
    assert!(diff <= 1e-4);
    let r = run(&["features", "--model", "audiosae/not-there", s(&clip()), "-o", s(&out)], &env);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("not found in the Hugging Face cache") && err.contains("audiosae/not-there"), "{err}");
}

#[test]
fn bad_inputs_fail_with_the_file_and_the_problem() {
    let d = tmp("bad");
    let model = fixture("qwen2_audio_tiny");
    // Corrupt audio.
    let junk = d.join("junk.flac");
    std::fs::write(&junk, b"fLaC but not really a flac file at all").unwrap();
    let r = run(&["features", "--model", s(&model), s(&junk), "-o", s(&d.join("x.npy"))], &[]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("junk.flac"));
    // A checkpoint whose config does not match its weights.
    let ckpt = d.join("mismatched");
    std::fs::create_dir_all(&ckpt).unwrap();
    for e in std::fs::read_dir(&model).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, ckpt.join(p.file_name().unwrap())).unwrap();
    }
    let cfg = std::fs::read_to_string(ckpt.join("config.json"))
        .unwrap()
        .replace("\"encoder_ffn_dim\": 64", "\"encoder_ffn_dim\": 96");
    std::fs::write(ckpt.join("config.json"), cfg).unwrap();
    let r = run(&["features", "--model", s(&ckpt), s(&clip()), "-o", s(&d.join("x.npy"))], &[]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("mismatched") && err.contains("fc1.weight") && err.contains("does not match its config.json"),
        "{err}"
    );
    // Not a model directory.
    let r = run(&["features", "--model", s(&d), s(&clip()), "-o", s(&d.join("x.npy"))], &[]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("not a model directory"));
}

#[test]
fn demo_writes_summary_and_plot() {
    let d = tmp("demo");
    let out = ok(&["demo", "--out", s(&d)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("246 frames x 384 dims"), "{text}");
    let png = std::fs::read(d.join("demo.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 50_000, "the plot looks empty");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["frames"], 246);
    assert_eq!(summary["frame_hop_s"], 0.02);
}

/// A thread count outside 1..=1024 is refused by the argument parser, naming the flag and the
/// range, before it reaches libtorch (where 0 or a negative count panics).
#[test]
fn thread_counts_are_validated_at_the_edge() {
    for bad in ["0", "-3", "100000"] {
        let flag = format!("--threads={bad}");
        let out = run(&[&flag, "info", "--model", s(&fixture("qwen2_audio_tiny"))], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--threads {bad}: {stderr}");
        assert!(
            stderr.contains("--threads") && stderr.contains("1..=1024") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    ok(&["--threads", "1", "info", "--model", s(&fixture("qwen2_audio_tiny"))]);
}

/// `features` runs a clip past 30 s as consecutive 30 s windows (as `extract` does) instead of
/// keeping the first 30 s; `logmel`, whose output is one model input, refuses it by name; a clip
/// too short for one frame is an error, not an empty array.
#[test]
fn long_and_tiny_clips_are_windowed_or_refused_never_cut_silently() {
    let d = tmp("lengths");
    let model = fixture("qwen2_audio_tiny");
    let speech = audiosae::audio::load_audio(&clip()).unwrap().samples;
    // 65 s: two full windows and a 5 s tail.
    let long: Vec<f32> = speech.iter().copied().cycle().take(65 * 16000).collect();
    let (long_wav, tail_wav) = (d.join("long.wav"), d.join("tail.wav"));
    write_wav(&long_wav, &long);
    write_wav(&tail_wav, &long[60 * 16000..]);
    ok(&["features", "--model", s(&model), s(&long_wav), "-o", s(&d.join("long.npy"))]);
    ok(&["features", "--model", s(&model), s(&tail_wav), "-o", s(&d.join("tail.npy"))]);
    let (all, tail) = (read_f32(&d.join("long.npy")).unwrap(), read_f32(&d.join("tail.npy")).unwrap());
    assert_eq!(all.size(), [2 * 750 + 125, tail.size()[1]], "40 ms projector frames of 30 + 30 + 5 s");
    assert!(max_diff(&all.narrow(0, 1500, 125), &tail) < 1e-5, "the tail window is the tail clip");

    let r = run(&["logmel", s(&long_wav), "-o", s(&d.join("mel.npy"))], &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("long.wav") && err.contains("65.0 s"), "{err}");
    assert!(!d.join("mel.npy").exists());

    let one = d.join("one.wav");
    write_wav(&one, &[0.1]);
    let r = run(&["features", "--model", s(&model), s(&one), "-o", s(&d.join("one.npy"))], &[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("one.wav") && err.contains("too short"), "{err}");
    assert!(!d.join("one.npy").exists());
    std::fs::remove_dir_all(d).unwrap();
}
