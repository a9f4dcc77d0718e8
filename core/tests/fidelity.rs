//! Downstream fidelity (`eval --model`) on the tiny random Whisper generator: an SAE that
//! reconstructs its layer exactly recovers all of the cross-entropy (1.0, KL 0, the same greedy
//! transcription), an SAE that outputs zeros recovers none of it against the zero ablation (0.0),
//! and the CLI writes the metrics into eval.json and sweep.csv.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use audiosae::models::{load_clip, AudioModel, LayerSpec};
use audiosae::sae::fidelity::downstream_fidelity;
use audiosae::sae::store_source::SplitStore;
use audiosae::sae::{Arch, Sae, SaeConfig};
use audiosae::store::{ItemMeta, ModelRef, StoreConfig, StoreDType, StoreWriter};
use tch::{Device, Kind, Tensor};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn fixture(rel: &str) -> PathBuf {
    Path::new(WORKSPACE).join("tests/fixtures").join(rel)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("audiosae-fidelity-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A store of two clips (the fixture clip and its first 2.5 s) at `layer` of the generator.
fn store(dir: &Path, layer: LayerSpec) -> usize {
    store_of(dir, "whisper_tiny_gen", layer)
}

fn store_of(dir: &Path, model: &str, layer: LayerSpec) -> usize {
    let m = AudioModel::load(fixture(model).to_str().unwrap(), Device::Cpu, Kind::Float, false).unwrap();
    let speech = load_clip(&fixture("speech/61-70968-0000.flac")).unwrap();
    let short = dir.join("short.wav");
    common::write_wav(&short, &speech[..40000]);
    let d = m.dim(layer).unwrap();
    let config = StoreConfig::new(
        ModelRef { id: model.into(), revision: None },
        layer.to_string(),
        m.timing(layer).unwrap(),
        StoreDType::F32,
        d,
    );
    let mut w = StoreWriter::create(&dir.join("store"), config).unwrap();
    for (id, path, samples) in
        [("long", fixture("speech/61-70968-0000.flac"), &speech[..]), ("short", short, &speech[..40000])]
    {
        let f = m.features(samples, layer).unwrap();
        let frames = Vec::<f32>::try_from(f.frames.flatten(0, -1)).unwrap();
        w.append_item(ItemMeta::new(id, path, samples.len() as f64 / 16000.0), &frames).unwrap();
    }
    w.finish().unwrap();
    d
}

/// A ReLU SAE with atoms +e_i and −e_i: relu(x) − relu(−x) = x, an exact reconstruction. With
/// `zero`, every weight is 0 and the reconstruction is 0.
fn sae(d: usize, zero: bool) -> Sae {
    let eye = Tensor::eye(d as i64, (Kind::Float, Device::Cpu));
    let w = Tensor::cat(&[&eye, &(-&eye)], 0) * if zero { 0.0 } else { 1.0 };
    let zeros = |n: usize| Tensor::zeros([n as i64], (Kind::Float, Device::Cpu));
    Sae {
        cfg: SaeConfig { arch: Arch::Relu, d_in: d, d_sae: 2 * d, k: None, ..Default::default() },
        enc: w.copy(),
        dec: w,
        b_enc: zeros(2 * d),
        b_dec: zeros(d),
        threshold: zeros(2 * d),
    }
}

#[test]
fn a_perfect_reconstruction_recovers_everything_and_a_zero_one_nothing() {
    let dir = tmp("planted");
    let layer = LayerSpec::EncoderLayer(0);
    let d = store(&dir, layer);
    let m = AudioModel::load(fixture("whisper_tiny_gen").to_str().unwrap(), Device::Cpu, Kind::Float, true).unwrap();
    let split = SplitStore::open(&dir.join("store"), 0.5).unwrap();
    let none = |_: &audiosae::store::ItemEntry| None;
    let perfect = downstream_fidelity(&m, layer, &sae(d, false), 1.0, &split, &none, 10).unwrap();
    println!("perfect: {perfect:?}");
    assert!(perfect.items >= 1 && perfect.tokens > 0);
    assert!((perfect.ce_loss_recovered.unwrap() - 1.0).abs() < 1e-6, "{:?}", perfect.ce_loss_recovered);
    assert!((perfect.ce_loss_recovered_mean_ablation.unwrap() - 1.0).abs() < 1e-6);
    assert!(perfect.kl.abs() < 1e-9, "{}", perfect.kl);
    assert_eq!(perfect.wer_sae_vs_clean, Some(0.0));
    assert!(perfect.ce_zero_ablation > perfect.ce_clean, "zeroing the layer must hurt");
    assert!(perfect.per_item.iter().all(|i| i.target == "clean greedy"));

    let zero = downstream_fidelity(&m, layer, &sae(d, true), 1.0, &split, &none, 10).unwrap();
    assert!(zero.ce_loss_recovered.unwrap().abs() < 1e-9, "{:?}", zero.ce_loss_recovered);
    assert!((zero.ce_sae - zero.ce_zero_ablation).abs() < 1e-9);
    assert!(zero.kl > 0.0);
}

#[test]
fn qwen2_audio_teacher_forces_the_transcript_through_the_instruct_template() {
    let dir = tmp("qwen");
    let layer = LayerSpec::Projector;
    let d = store_of(&dir, "qwen2_audio_tiny", layer);
    let m = AudioModel::load(fixture("qwen2_audio_tiny").to_str().unwrap(), Device::Cpu, Kind::Float, true).unwrap();
    let split = SplitStore::open(&dir.join("store"), 0.5).unwrap();
    let reference = |_: &audiosae::store::ItemEntry| Some("HE BEGAN A CONFUSED COMPLAINT".to_string());
    let perfect = downstream_fidelity(&m, layer, &sae(d, false), 1.0, &split, &reference, 10).unwrap();
    assert!((perfect.ce_loss_recovered.unwrap() - 1.0).abs() < 1e-6, "{perfect:?}");
    assert_eq!(perfect.items_with_reference, perfect.items);
    // No greedy transcription (and no WER) for Qwen2-Audio; the target is the reference.
    assert!(perfect.wer_sae_vs_clean.is_none() && perfect.per_item[0].text_clean.is_none());
    let zero = downstream_fidelity(&m, layer, &sae(d, true), 1.0, &split, &reference, 10).unwrap();
    assert!(zero.ce_loss_recovered.unwrap().abs() < 1e-9, "{zero:?}");
}

#[test]
fn eval_and_sweep_with_a_model_write_the_fidelity_columns() {
    let dir = tmp("cli");
    store(&dir, LayerSpec::Encoder);
    let bin = env!("CARGO_BIN_EXE_audiosae");
    let model = fixture("whisper_tiny_gen");
    let out = dir.join("sweep");
    let o = Command::new(bin)
        .args(["sweep", "--widths", "32", "--ks", "4", "--steps", "20", "--batch-size", "64", "--test-frac", "0.01"])
        .arg("--store")
        .arg(dir.join("store"))
        .arg("--out")
        .arg(&out)
        .arg("--model")
        .arg(&model)
        .args(["--fidelity-items", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    let recovered: f64 = col("ce_loss_recovered").parse().unwrap();
    assert!(recovered.is_finite(), "{csv}");
    assert!(col("kl").parse::<f64>().unwrap() >= 0.0);
    assert!(out.join("ce_recovered.png").exists());
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("w32-k4-s0/eval/eval.json")).unwrap()).unwrap();
    assert_eq!(eval["fidelity"]["layer"], "encoder");
    assert!(eval["fidelity"]["per_item"].as_array().is_some_and(|p| !p.is_empty()));
}

#[test]
fn an_item_whose_audio_is_gone_is_left_out_and_the_rest_is_scored() {
    let dir = tmp("missing");
    let layer = LayerSpec::Encoder;
    let d = store(&dir, layer);
    std::fs::remove_file(dir.join("short.wav")).unwrap();
    let m = AudioModel::load(fixture("whisper_tiny_gen").to_str().unwrap(), Device::Cpu, Kind::Float, true).unwrap();
    let split = SplitStore::open(&dir.join("store"), 0.5).unwrap();
    let none = |_: &audiosae::store::ItemEntry| None;
    let f = downstream_fidelity(&m, layer, &sae(d, false), 1.0, &split, &none, 10).unwrap();
    assert_eq!(f.items, 1);
    assert_eq!(f.per_item[0].item, "long");
}
