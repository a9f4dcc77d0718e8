//! `kill -9` during `audiosae train`, then `--resume`, must end where an uninterrupted run with
//! the same seed ends; a diverging run must stop with a message and write no SAE.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use audiosae::sae::config::{Arch, SaeConfig, TrainConfig};
use audiosae::sae::train::{train, TrainOptions};
use audiosae::sae::InMemorySource;
use tch::{Device, Kind, Tensor};

const ARGS: &[&str] = &[
    "train",
    "--synthetic",
    "24:64:3:6000",
    "--arch",
    "topk",
    "--d-sae",
    "64",
    "--k",
    "3",
    "--steps",
    "1500",
    "--batch-size",
    "128",
    "--lr",
    "3e-3",
    "--warmup-steps",
    "50",
    "--dead-window-frames",
    "3000",
    "--checkpoint-every",
    "20",
    "--log-every",
    "10",
    "--device",
    "cpu",
    "--no-progress",
];

fn audiosae(out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_audiosae"));
    c.args(ARGS).arg("--out").arg(out).args(extra).arg("--threads").arg("1");
    c
}

fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    let mut w = Tensor::read_safetensors(dir.join("sae_weights.safetensors")).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

fn checkpoint_step(dir: &Path) -> usize {
    let p = dir.join("training_state/state.json");
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0) as usize
}

#[test]
fn resume_after_kill_equals_an_uninterrupted_run() {
    let root = std::env::temp_dir().join(format!("audiosae-resume-{}", std::process::id()));
    let (full, killed) = (root.join("full"), root.join("killed"));
    assert!(audiosae(&full, &[]).status().unwrap().success());

    let mut child = audiosae(&killed, &[]).spawn().unwrap();
    let t0 = Instant::now();
    while checkpoint_step(&killed) < 200 {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint past step 200");
        assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at = checkpoint_step(&killed);
    assert!(at < 1500 && !killed.join("sae_weights.safetensors").exists(), "killed mid-run (checkpoint at {at})");

    let status = audiosae(&killed, &["--resume"]).status().unwrap();
    assert!(status.success());
    let (a, b) = (weights(&full), weights(&killed));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        let diff = (ta - tb).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{na} differs by {diff} after resuming from step {at}");
    }
    let log_a = std::fs::read_to_string(full.join("train_log.csv")).unwrap();
    let log_b = std::fs::read_to_string(killed.join("train_log.csv")).unwrap();
    assert_eq!(log_a.lines().count(), log_b.lines().count(), "the resumed log covers every step once");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn diverging_run_names_the_step_and_saves_nothing() {
    let frames = Tensor::randn([2000, 8], (Kind::Float, Device::Cpu));
    let mut source = InMemorySource::new(frames, 0).unwrap();
    let cfg = TrainConfig {
        sae: SaeConfig { arch: Arch::Relu, d_in: 8, d_sae: 16, k: None, l1_coef: 1.0, ..Default::default() },
        steps: 200,
        batch_size: 32,
        lr: 1e30,
        clip_grad_norm: 0.0,
        log_every: 10,
        checkpoint_every: 5,
        device: "cpu".into(),
        ..Default::default()
    };
    let out = std::env::temp_dir().join(format!("audiosae-nan-{}", std::process::id()));
    let opts = TrainOptions { out_dir: out.clone(), resume: false, progress: false, stop_after: None };
    let err = match train(cfg, &mut source, &opts) {
        Ok(_) => panic!("a run at lr 1e30 should diverge"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("non-finite") && err.contains("at step"), "{err}");
    assert!(!out.join("sae_weights.safetensors").exists());
    let _ = std::fs::remove_dir_all(out);
}
