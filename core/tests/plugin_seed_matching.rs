//! `audiosae analyze --plugin seed-matching` on three synthetic SAEs whose atoms are known
//! permutations of each other (plus noise, and with some units replaced in the third): the plugin
//! must recover the permutations, report high cosines and activation correlations for the copies,
//! beat its random-pairing baseline and write the histogram.

use std::path::{Path, PathBuf};
use std::process::Command;

use audiosae::sae::checkpoint::save_sae;
use audiosae::sae::{Arch, Sae, SaeConfig, TrainConfig};
use audiosae::store::{ItemMeta, ModelRef, StoreConfig, StoreDType, StoreWriter};
use audiosae::FrameTiming;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const D: usize = 48;
const D_SAE: usize = 24;
/// Units of the third SAE that are fresh random directions instead of copies.
const REPLACED: usize = 6;

fn unit_vector(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..D).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// A ReLU SAE with encoder = decoder = `atoms` and bias −0.5.
fn save_relu_sae(dir: &Path, atoms: &[Vec<f32>]) {
    let w = Tensor::from_slice(&atoms.concat()).view([D_SAE as i64, D as i64]);
    let cfg = SaeConfig { arch: Arch::Relu, d_in: D, d_sae: D_SAE, k: None, ..Default::default() };
    let sae = Sae {
        cfg,
        dec: w.copy(),
        enc: w,
        b_enc: Tensor::full([D_SAE as i64], -0.5, (Kind::Float, tch::Device::Cpu)),
        b_dec: Tensor::zeros([D as i64], (Kind::Float, tch::Device::Cpu)),
        threshold: Tensor::full([D_SAE as i64], -1.0, (Kind::Float, tch::Device::Cpu)),
    };
    save_sae(dir, &sae, &TrainConfig::default(), 1.0, None).unwrap();
}

fn build_plugin() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "audiosae-plugin-seed-matching"])
        .current_dir(WORKSPACE)
        .status()
        .unwrap();
    assert!(status.success(), "building the seed-matching plugin failed");
    PathBuf::from(WORKSPACE).join("target/debug")
}

#[test]
fn seed_matching_recovers_known_permutations() {
    let dir = std::env::temp_dir().join(format!("audiosae-seed-matching-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let atoms: Vec<Vec<f32>> = (0..D_SAE).map(|_| unit_vector(&mut rng)).collect();
    // SAE k's unit j is a noisy copy of atom perm_k[j].
    let noisy = |rng: &mut ChaCha8Rng, a: &[f32]| -> Vec<f32> {
        let v: Vec<f32> = a.iter().map(|x| x + 0.1 * (rng.gen::<f32>() - 0.5)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    };
    let mut perms = vec![(0..D_SAE).collect::<Vec<usize>>()];
    for _ in 0..2 {
        let mut p: Vec<usize> = (0..D_SAE).collect();
        p.shuffle(&mut rng);
        perms.push(p);
    }
    let mut sae_dirs = Vec::new();
    for (k, perm) in perms.iter().enumerate() {
        let units: Vec<Vec<f32>> = perm
            .iter()
            .map(|&p| if k == 2 && p < REPLACED { unit_vector(&mut rng) } else { noisy(&mut rng, &atoms[p]) })
            .collect();
        let d = dir.join(format!("sae{k}"));
        save_relu_sae(&d, &units);
        sae_dirs.push(d);
    }
    // Frames: sparse non-negative combinations of the atoms plus noise.
    let store = dir.join("store");
    let config = StoreConfig::new(
        ModelRef { id: "synthetic".into(), revision: None },
        "x",
        FrameTiming::POOLED,
        StoreDType::F32,
        D,
    );
    let mut writer = StoreWriter::create(&store, config).unwrap();
    for item in 0..6 {
        let mut frames = Vec::new();
        for _ in 0..50 {
            let mut x: Vec<f32> = (0..D).map(|_| 0.05 * (rng.gen::<f32>() - 0.5)).collect();
            for _ in 0..3 {
                let (a, c) = (rng.gen_range(0..D_SAE), rng.gen_range(1.0..3.0f32));
                x.iter_mut().zip(&atoms[a]).for_each(|(xi, ai)| *xi += c * ai);
            }
            frames.extend(x);
        }
        let wav = dir.join(format!("clip{item}.wav"));
        writer.append_item(ItemMeta::new(format!("clip{item}"), &wav, 2.0), &frames).unwrap();
    }
    writer.finish().unwrap();

    let out = dir.join("out");
    let mut args: Vec<String> = vec!["analyze".into(), "--plugin".into(), "seed-matching".into()];
    for d in &sae_dirs {
        args.extend(["--sae".into(), d.display().to_string()]);
    }
    args.extend(["--store".into(), store.display().to_string(), "--out".into(), out.display().to_string()]);
    let o = Command::new(env!("CARGO_BIN_EXE_audiosae"))
        .args(&args)
        .env("AUDIOSAE_PLUGIN_PATH", build_plugin())
        .output()
        .unwrap();
    assert!(o.status.success(), "analyze failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(out.join("matched_cosines.png").exists());

    // Pairs (0,1), (0,2), (1,2): unit j of SAE a matches the unit of SAE b holding the same atom.
    let pairs = report["summary"]["pairs"].as_array().expect("summary.pairs");
    assert_eq!(pairs.len(), 3);
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let rows = std::fs::read_to_string(out.join(format!("matches_{a}_{b}.csv"))).unwrap();
        let mut correct_copies = 0;
        for line in rows.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let (u, w, cos): (usize, usize, f64) =
                (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap());
            let (atom_u, atom_w) = (perms[a][u], perms[b][w]);
            let replaced = (a == 2 && atom_u < REPLACED) || (b == 2 && atom_w < REPLACED);
            if !replaced {
                assert_eq!(atom_u, atom_w, "pair {a}-{b}: unit {u} matched to {w}");
                assert!(cos > 0.9, "pair {a}-{b}: copy cosine {cos}");
                let r: f64 = f[3].parse().unwrap();
                assert!(r > 0.8, "pair {a}-{b}: copy activation correlation {r}");
                correct_copies += 1;
            }
        }
        assert_eq!(correct_copies, if b == 2 { D_SAE - REPLACED } else { D_SAE });
        let p = &pairs[if a == 0 { b - 1 } else { 2 }];
        let (mean, random) = (p["mean_cosine"].as_f64().unwrap(), p["random_mean_cosine"].as_f64().unwrap());
        assert!(mean > random + 0.3, "pair {a}-{b}: mean {mean} vs random {random}");
        // The optimal matching against a random dictionary beats a random pairing, not the copies.
        let null = p["null_mean_cosine"].as_f64().unwrap();
        assert!(random < null && null < mean - 0.2, "pair {a}-{b}: null {null}, random {random}, mean {mean}");
        let full_copy = b != 2;
        assert_eq!(p["frac_above"]["0.9"].as_f64().unwrap() == 1.0, full_copy, "pair {a}-{b}: {p}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
