//! `audiosae analyze --plugin interventions` on the tiny Qwen2-Audio fixture (a store of the
//! clip's projector frames, d = 32) and on the tiny random Whisper generator (a store of its
//! `encoder.1` frames, d = 64, edits spliced in below the last encoder layer), each with a ReLU
//! SAE built on them. Masking nothing must reproduce the baseline exactly (same tokens, KL 0, zero
//! edit); masking units must change the logits; the controls must run with matched sizes and code
//! mass; a wrong SAE width and a run without a model are handled.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use audiosae::models::{load_clip, AudioModel, LayerSpec};
use audiosae::npy::read_i64;
use audiosae::sae::checkpoint::save_sae;
use audiosae::sae::{Arch, Sae, SaeConfig, TrainConfig};
use audiosae::store::{ItemMeta, ModelRef, StoreConfig, StoreDType, StoreWriter};
use audiosae::FrameTiming;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const D_SAE: usize = 64;

fn fixture(rel: &str) -> PathBuf {
    Path::new(WORKSPACE).join("tests/fixtures").join(rel)
}

fn clip() -> PathBuf {
    fixture("speech/61-70968-0000.flac")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-interventions-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A ReLU SAE with random unit-norm atoms as encoder and decoder rows and zero biases, so that
/// about half of the units fire on any frame.
fn save_relu_sae(dir: &Path, d_in: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let w: Vec<f32> = (0..D_SAE * d_in).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
    let w = Tensor::from_slice(&w).view([D_SAE as i64, d_in as i64]);
    let w = &w / w.norm_scalaropt_dim(2, [1], true);
    let cfg = SaeConfig { arch: Arch::Relu, d_in, d_sae: D_SAE, k: None, ..Default::default() };
    let zeros = |n: usize| Tensor::zeros([n as i64], (Kind::Float, Device::Cpu));
    let sae = Sae {
        cfg,
        dec: w.copy(),
        enc: w,
        b_enc: zeros(D_SAE),
        b_dec: zeros(d_in),
        threshold: Tensor::full([D_SAE as i64], -1.0, (Kind::Float, Device::Cpu)),
    };
    save_sae(dir, &sae, &TrainConfig::default(), 1.0, None).unwrap();
}

/// A one-item store of `audio` at `layer` of `model`.
fn save_model_store(dir: &Path, model: &str, layer: LayerSpec, audio: &Path) -> usize {
    let m = AudioModel::load(fixture(model).to_str().unwrap(), Device::Cpu, Kind::Float, false).unwrap();
    let f = m.features(&load_clip(audio).unwrap(), layer).unwrap();
    let d = f.frames.size()[1] as usize;
    let config = StoreConfig::new(
        ModelRef { id: model.into(), revision: None },
        layer.to_string(),
        f.timing,
        StoreDType::F32,
        d,
    );
    let mut writer = StoreWriter::create(dir, config).unwrap();
    let frames = Vec::<f32>::try_from(f.frames.flatten(0, -1)).unwrap();
    writer.append_item(ItemMeta::new("clip", audio, 4.9), &frames).unwrap();
    writer.finish().unwrap();
    d
}

/// A one-item store of the clip: its projector frames, or (`d` given) random frames of width `d`.
fn save_store(dir: &Path, d: Option<usize>) {
    let frames: Vec<f32> = match d {
        None => {
            let m = AudioModel::load(fixture("qwen2_audio_tiny").to_str().unwrap(), Device::Cpu, Kind::Float, false)
                .unwrap();
            let f = m.features(&load_clip(&clip()).unwrap(), LayerSpec::Projector).unwrap();
            Vec::<f32>::try_from(f.frames.flatten(0, -1)).unwrap()
        }
        Some(d) => (0..10 * d).map(|i| (i as f32).sin()).collect(),
    };
    let d = d.unwrap_or(32);
    let config = StoreConfig::new(
        ModelRef { id: "qwen2_audio_tiny".into(), revision: None },
        "projector",
        FrameTiming::POOLED,
        StoreDType::F32,
        d,
    );
    let mut writer = StoreWriter::create(dir, config).unwrap();
    writer.append_item(ItemMeta::new("clip", clip(), 4.9), &frames).unwrap();
    writer.finish().unwrap();
}

/// Builds the plugin once per test binary and returns its folder.
fn plugin_dir() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "audiosae-plugin-interventions"])
            .current_dir(WORKSPACE)
            .status()
            .unwrap();
        assert!(status.success(), "building the interventions plugin failed");
    });
    PathBuf::from(WORKSPACE).join("target/debug")
}

struct Setup {
    dir: PathBuf,
    store: PathBuf,
    sae: PathBuf,
}

fn setup(name: &str, width: Option<usize>) -> Setup {
    let dir = tmp(name);
    let (store, sae) = (dir.join("store"), dir.join("sae"));
    save_store(&store, width);
    save_relu_sae(&sae, width.unwrap_or(32));
    Setup { dir, store, sae }
}

fn analyze(s: &Setup, with_model: bool, params: &[&str]) -> (Output, PathBuf) {
    let model = with_model.then(|| fixture("qwen2_audio_tiny"));
    analyze_with(s, model.as_deref(), None, &clip(), params)
}

fn analyze_with(
    s: &Setup,
    model: Option<&Path>,
    labels: Option<&Path>,
    clip: &Path,
    params: &[&str],
) -> (Output, PathBuf) {
    // A new report folder per call: the CLI refuses to write over an earlier report.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let out = s.dir.join(format!("out-{}", CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_audiosae"));
    cmd.args(["analyze", "--plugin", "interventions", "--device", "cpu", "--out"]).arg(&out);
    cmd.arg("--sae").arg(&s.sae).arg("--store").arg(&s.store);
    if let Some(model) = model {
        cmd.arg("--model").arg(model);
    }
    if let Some(labels) = labels {
        cmd.arg("--labels").arg(labels);
    }
    cmd.arg("--param").arg(format!("clip={}", clip.display()));
    for p in params {
        cmd.args(["--param", p]);
    }
    let o = cmd.env("AUDIOSAE_PLUGIN_PATH", plugin_dir()).output().unwrap();
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    (o, out)
}

fn summary(out: &Path) -> serde_json::Value {
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    r["summary"].clone()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn tokens(v: &serde_json::Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

#[test]
fn masking_nothing_reproduces_the_baseline_exactly() {
    let s = setup("none", None);
    let (o, out) = analyze(&s, true, &["units=", "prompt=Transcribe the audio.", "max_new_tokens=24"]);
    assert!(o.status.success());
    let sum = summary(&out);
    let base = tokens(&sum["baseline"]["tokens"]);
    let want = Vec::<i64>::try_from(read_i64(&fixture("qwen2_audio_ref/a_speech_greedy.npy")).unwrap()).unwrap();
    assert_eq!(base, want, "baseline is not the transformers greedy output");
    let edit = &sum["conditions"]["edit"];
    assert_eq!(tokens(&edit["tokens"]), base);
    assert_eq!(edit["edit_norm"].as_f64(), Some(0.0));
    let kl = floats(&edit["kl_per_step"]);
    assert_eq!(kl.len(), base.len());
    assert!(kl.iter().all(|&k| k == 0.0), "{kl:?}");
    assert_eq!(edit["tokens_changed"].as_u64(), Some(0));
}

#[test]
fn masking_units_changes_the_logits_and_the_controls_run() {
    let s = setup("mask", None);
    let units = "0,1,2,3,4,5,6,7";
    let (o, out) = analyze(&s, true, &[&format!("units={units}"), "max_new_tokens=16", "seed=5"]);
    assert!(o.status.success());
    let sum = summary(&out);
    let n_steps = tokens(&sum["baseline"]["tokens"]).len();
    let c = &sum["conditions"];
    assert!(floats(&c["edit"]["kl_per_step"]).iter().any(|&k| k > 0.0), "masking did not change the logits");
    let edit_norm = c["edit"]["edit_norm"].as_f64().unwrap();
    assert!(edit_norm > 0.0);
    let random: Vec<i64> = tokens(&c["random_units"]["units"]);
    assert_eq!(random.len(), 8);
    assert!(random.iter().all(|&u| u >= 8 && u < D_SAE as i64), "{random:?}");
    check_control_mass(&sum);
    let noise_norm = c["noise"]["edit_norm"].as_f64().unwrap();
    assert!((noise_norm - edit_norm).abs() <= 1e-3 * edit_norm, "noise {noise_norm} vs edit {edit_norm}");
    for name in ["random_units", "noise"] {
        let kl = floats(&c[name]["kl_per_step"]);
        assert_eq!(kl.len(), n_steps, "{name}");
        assert!(kl.iter().any(|&k| k > 0.0), "{name} changed nothing");
    }
    for file in ["conditions.csv", "kl_per_step.csv", "token_diff.csv", "frames.csv", "kl_per_step.png"] {
        assert!(out.join(file).exists(), "{file}");
    }

    // A time range edits only the frames whose centre lies in it.
    let (o, out) = analyze(&s, true, &[&format!("units={units}"), "mode=boost", "scale=3", "t0=1.0", "t1=2.0"]);
    assert!(o.status.success());
    let sum = summary(&out);
    assert_eq!(sum["frames_edited"].as_u64(), Some(25));
    let frames = std::fs::read_to_string(out.join("frames.csv")).unwrap();
    for line in frames.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (centre, norm): (f64, f64) = (f[1].parse().unwrap(), f[3].parse().unwrap());
        if !(1.0..2.0).contains(&centre) {
            assert_eq!(norm, 0.0, "frame at {centre} s edited");
        }
    }
}

#[test]
fn sae_width_must_match_the_audio_embeddings() {
    let s = setup("width", Some(16));
    let (o, _) = analyze(&s, true, &["units=1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("d_in 16") && err.contains("32 wide"), "{err}");
}

#[test]
fn without_a_model_the_frames_and_codes_change() {
    let s = setup("frames", None);
    let (o, out) = analyze(&s, false, &["units=0,1,2,3"]);
    assert!(o.status.success());
    let sum = summary(&out);
    assert!(sum["generation"].as_str().unwrap().starts_with("unavailable"), "{}", sum["generation"]);
    let edit = &sum["conditions"]["edit"];
    assert!(edit["code_change_norm"].as_f64().unwrap() > 0.0);
    let (before, after) = (edit["target_code_before"].as_f64().unwrap(), edit["target_code_after"].as_f64().unwrap());
    assert!(after < before, "masked units still fire: {before} -> {after}");
    assert!(out.join("code_change.png").exists());
}

/// The random-unit control moves as much code mass as the chosen units (within 10%).
fn check_control_mass(sum: &serde_json::Value) {
    let control = &sum["random_units_control"];
    let ratio = control["mass_ratio"].as_f64().unwrap();
    assert!((0.9..=1.1).contains(&ratio), "control code mass ratio {ratio}: {control}");
    let chosen = sum["conditions"]["edit"]["code_mass"].as_f64().unwrap();
    assert_eq!(Some(chosen), control["chosen_code_mass"].as_f64());
    assert!(chosen > 0.0);
}

#[test]
fn whisper_interventions_splice_below_the_last_layer_and_score_against_the_reference() {
    let dir = tmp("whisper");
    // A labelled copy of the clip: its transcript in a .lab file and its TextGrid beside it.
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let audio = corpus.join("clip.flac");
    std::fs::copy(clip(), &audio).unwrap();
    let reference = "HE BEGAN A CONFUSED COMPLAINT AGAINST THE WIZARD WHO HAD VANISHED BEHIND THE CURTAIN ON THE LEFT";
    std::fs::write(corpus.join("clip.lab"), reference).unwrap();
    std::fs::copy(fixture("speech/61-70968-0000.TextGrid"), corpus.join("clip.TextGrid")).unwrap();
    let (store, sae) = (dir.join("store"), dir.join("sae"));
    let d = save_model_store(&store, "whisper_tiny_gen", LayerSpec::EncoderLayer(0), &audio);
    save_relu_sae(&sae, d);
    let s = Setup { dir, store, sae };
    let model = fixture("whisper_tiny_gen");

    // Nothing masked: the clean transcription, scored against the reference.
    let (o, out) = analyze_with(&s, Some(&model), Some(&corpus), &audio, &["units=", "max_new_tokens=30"]);
    assert!(o.status.success());
    let sum = summary(&out);
    assert_eq!(sum["reference"].as_str(), Some(reference));
    let base = tokens(&sum["baseline"]["tokens"]);
    assert!(!base.is_empty());
    assert!(sum["baseline"]["wer_vs_reference"].as_f64().is_some());
    let edit = &sum["conditions"]["edit"];
    assert_eq!((tokens(&edit["tokens"]), edit["wer_vs_clean"].as_f64()), (base.clone(), Some(0.0)));

    // Masking 8 units changes the logits; the controls match the edit's mass and norm.
    let units: Vec<String> = (0..8).map(|u| u.to_string()).collect();
    let units = format!("units={}", units.join(","));
    let (o, out) = analyze_with(&s, Some(&model), Some(&corpus), &audio, &[&units, "max_new_tokens=30"]);
    assert!(o.status.success());
    let sum = summary(&out);
    assert!(floats(&sum["conditions"]["edit"]["kl_per_step"]).iter().any(|&k| k > 0.0));
    check_control_mass(&sum);
    let table = std::fs::read_to_string(out.join("conditions.csv")).unwrap();
    assert!(table.lines().next().unwrap().contains("wer_vs_reference"), "{table}");

    // The seed's additive boost runs, and its mass is v per unit and frame.
    let (o, out) = analyze_with(&s, Some(&model), None, &audio, &["units=1,2", "mode=boost", "add=0.5"]);
    assert!(o.status.success());
    let sum = summary(&out);
    let frames = sum["frames_edited"].as_f64().unwrap();
    assert!((sum["conditions"]["edit"]["code_mass"].as_f64().unwrap() - frames).abs() < 1e-3);
    assert!(sum["reference"].is_null(), "no labels, no reference");
}
