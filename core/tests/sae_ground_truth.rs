//! A TopK SAE trained on synthetic sparse combinations of a known dictionary must find it.

use audiosae::sae::config::{Arch, Decay, SaeConfig, TrainConfig};
use audiosae::sae::synth::{generate, matched_cosine, mcc};
use audiosae::sae::train::{train, TrainOptions};
use audiosae::sae::InMemorySource;

#[test]
fn topk_recovers_a_known_dictionary() {
    let (d, m, k) = (32, 64, 3);
    let data = generate(d, m, k, 40_000, 0.01, 1);
    let mut source = InMemorySource::new(data.frames.shallow_clone(), 2).unwrap();
    let cfg = TrainConfig {
        sae: SaeConfig {
            arch: Arch::TopK,
            d_in: d as usize,
            d_sae: m as usize,
            k: Some(k as usize),
            ..Default::default()
        },
        seed: 3,
        steps: 2000,
        batch_size: 256,
        lr: 4e-3,
        decay: Decay::Cosine,
        dead_window_frames: 50_000,
        log_every: 100,
        checkpoint_every: 100_000,
        device: "cpu".into(),
        ..Default::default()
    };
    let out = std::env::temp_dir().join(format!("audiosae-gt-{}", std::process::id()));
    let opts = TrainOptions { out_dir: out.clone(), resume: false, progress: false, stop_after: None };
    let result = train(cfg, &mut source, &opts).unwrap();
    let cos = matched_cosine(&data.dictionary, &result.sae.dec.detach()).unwrap();
    let codes = result.sae.encode(&data.frames.narrow(0, 0, 10_000));
    let corr = mcc(&data.codes.narrow(0, 0, 10_000), &codes).unwrap();
    eprintln!("matched cosine {cos:.4}, MCC {corr:.4}, final FVU {:.4}", result.log.last().unwrap().fvu);
    assert!(cos >= 0.9, "Hungarian-matched mean cosine {cos:.3} < 0.9");
    assert!(corr >= 0.8, "MCC {corr:.3} < 0.8");
    std::fs::remove_dir_all(out).unwrap();
}
