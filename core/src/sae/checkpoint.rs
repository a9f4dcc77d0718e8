//! On-disk forms of an SAE.
//!
//! * The SAE (SAELens layout): `cfg.json`, `sae_weights.safetensors` with `W_enc [d_in, d_sae]`,
//!   `W_dec [d_sae, d_in]`, `b_enc`, `b_dec` (+ `threshold` for batchtopk), and
//!   `sparsity.safetensors` (`sparsity`: log10 feature density). Input normalisation is folded
//!   into the weights. `opensae` saves its native tensors `E [d_sae, d_in]`, `D [d_in, d_sae]`,
//!   `pre_bias [d_in]` instead, and [`export`] converts it to the standard form.
//! * The training state (`training_state/`): raw weights, Adam moments, counters and
//!   `state.json` (config, step, data position, log), replaced atomically at each checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::arch::{opensae, Sae};
use super::config::{Arch, SaeConfig, TrainConfig};
use super::train::{LogRow, Trainer};

pub const TRAINING_STATE_DIR: &str = "training_state";
const STATE_JSON: &str = "state.json";
const STATE_TENSORS: &str = "state.safetensors";

/// `state.json` of a training checkpoint.
#[derive(Serialize, Deserialize)]
struct StateJson {
    cfg: TrainConfig,
    input_scale: f64,
    step: usize,
    data_position: u64,
    n_dead: usize,
    frames_acc: u64,
    log: Vec<LogRow>,
}

/// A loaded training checkpoint.
pub struct TrainingState {
    pub cfg: TrainConfig,
    pub sae: Sae,
    pub input_scale: f64,
    pub step: usize,
    pub data_position: u64,
    pub n_dead: usize,
    pub frames_acc: u64,
    pub log: Vec<LogRow>,
    pub exp_avg: Vec<Tensor>,
    pub exp_avg_sq: Vec<Tensor>,
    /// frames_since_fired, dead mask, fired_acc.
    pub counters: [Tensor; 3],
}

pub fn training_state_exists(dir: &Path) -> bool {
    dir.join(STATE_JSON).exists() || old_dir(dir).join(STATE_JSON).exists()
}

fn old_dir(dir: &Path) -> PathBuf {
    dir.with_extension("old")
}

/// Writes the checkpoint to a temporary folder, then swaps it in, so that a kill at any point
/// leaves one complete checkpoint (the new one, or the old one under `.old`).
pub fn save_training_state(dir: &Path, t: &Trainer, data_position: u64) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut tensors: Vec<(String, Tensor)> = t
        .sae
        .named_tensors()
        .into_iter()
        .map(|(n, v)| (format!("sae.{n}"), v.detach().to_device(Device::Cpu)))
        .collect();
    for (i, (name, _)) in t.sae.named_params().iter().enumerate() {
        tensors.push((format!("exp_avg.{name}"), t.opt.exp_avg[i].to_device(Device::Cpu)));
        tensors.push((format!("exp_avg_sq.{name}"), t.opt.exp_avg_sq[i].to_device(Device::Cpu)));
    }
    tensors.push(("frames_since_fired".into(), t.frames_since_fired.to_device(Device::Cpu)));
    tensors.push(("dead".into(), t.dead.to_kind(Kind::Uint8).to_device(Device::Cpu)));
    tensors.push(("fired_acc".into(), t.fired_acc.to_device(Device::Cpu)));
    Tensor::write_safetensors(&tensors, tmp.join(STATE_TENSORS))?;
    let state = StateJson {
        cfg: t.cfg.clone(),
        input_scale: t.input_scale,
        step: t.step,
        data_position,
        n_dead: t.n_dead,
        frames_acc: t.frames_acc,
        log: t.log.clone(),
    };
    std::fs::write(tmp.join(STATE_JSON), serde_json::to_string_pretty(&state)?)?;
    let old = old_dir(dir);
    let _ = std::fs::remove_dir_all(&old);
    if dir.exists() {
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("moving the checkpoint to {}", dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn read_state_json(dir: &Path) -> Result<(PathBuf, StateJson)> {
    let dir = if dir.join(STATE_JSON).exists() { dir.to_path_buf() } else { old_dir(dir) };
    let json_path = dir.join(STATE_JSON);
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("reading {} (no training checkpoint to resume from?)", json_path.display()))?;
    let s = serde_json::from_str(&text).with_context(|| format!("{}: not a training state", json_path.display()))?;
    Ok((dir, s))
}

/// The config a training checkpoint was written with.
pub fn load_state_config(dir: &Path) -> Result<TrainConfig> {
    Ok(read_state_json(dir)?.1.cfg)
}

pub fn load_training_state(dir: &Path, device: Device) -> Result<TrainingState> {
    let (dir, s) = read_state_json(dir)?;
    let tensors = Named::read(&dir.join(STATE_TENSORS), device)?;
    let sae = Sae {
        cfg: s.cfg.sae.clone(),
        enc: tensors.get("sae.enc")?,
        b_enc: tensors.get("sae.b_enc")?,
        dec: tensors.get("sae.dec")?,
        b_dec: tensors.get("sae.b_dec")?,
        threshold: tensors.get("sae.threshold")?,
    }
    .with_grad();
    let names: Vec<&str> = sae.named_params().into_iter().map(|(n, _)| n).collect();
    let moments =
        |prefix: &str| names.iter().map(|n| tensors.get(&format!("{prefix}.{n}"))).collect::<Result<Vec<_>>>();
    Ok(TrainingState {
        exp_avg: moments("exp_avg")?,
        exp_avg_sq: moments("exp_avg_sq")?,
        counters: [
            tensors.get("frames_since_fired")?,
            tensors.get("dead")?.to_kind(Kind::Bool),
            tensors.get("fired_acc")?,
        ],
        sae,
        cfg: s.cfg,
        input_scale: s.input_scale,
        step: s.step,
        data_position: s.data_position,
        n_dead: s.n_dead,
        frames_acc: s.frames_acc,
        log: s.log,
    })
}

/// Tensors of one safetensors file, with errors naming the file.
struct Named {
    path: PathBuf,
    tensors: Vec<(String, Tensor)>,
}

impl Named {
    fn read(path: &Path, device: Device) -> Result<Named> {
        let tensors = Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Named { path: path.into(), tensors: tensors.into_iter().map(|(n, t)| (n, t.to_device(device))).collect() })
    }
    fn get(&self, name: &str) -> Result<Tensor> {
        self.tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.shallow_clone())
            .with_context(|| format!("{}: no tensor {name}", self.path.display()))
    }
}

/// The standard (SAELens) tensors of an SAE trained on inputs multiplied by `input_scale`,
/// folded so that they take raw inputs. opensae maps to `topk` (or `standard` without k).
pub struct StandardForm {
    pub architecture: &'static str,
    pub w_enc: Tensor,
    pub w_dec: Tensor,
    pub b_enc: Tensor,
    pub b_dec: Tensor,
    pub threshold: Option<Tensor>,
    pub apply_b_dec_to_input: bool,
}

pub fn standard_form(sae: &Sae, input_scale: f64) -> StandardForm {
    let _g = tch::no_grad_guard();
    let s = input_scale;
    let cpu = |t: &Tensor| t.detach().to_device(Device::Cpu).contiguous();
    match sae.cfg.arch {
        Arch::OpenSae => {
            let dn = opensae::normalized_dec(&sae.dec);
            let w_enc = cpu(&(sae.enc.tr() * s));
            let b_dec = cpu(&(&sae.b_dec / s));
            match sae.cfg.k {
                // pre = (x − b_dec)·W_enc with b_dec = −pre_bias/s.
                Some(_) => StandardForm {
                    architecture: "topk",
                    b_enc: Tensor::zeros([sae.cfg.d_sae as i64], (Kind::Float, Device::Cpu)),
                    w_enc,
                    w_dec: cpu(&(dn / s)),
                    b_dec,
                    threshold: None,
                    apply_b_dec_to_input: true,
                },
                // Pure L1: fold pre_bias into b_enc = −b_dec·W_enc.
                None => StandardForm {
                    architecture: "standard",
                    b_enc: cpu(&(-b_dec.unsqueeze(0).matmul(&w_enc).squeeze_dim(0))),
                    w_enc,
                    w_dec: cpu(&(dn / s)),
                    b_dec,
                    threshold: None,
                    apply_b_dec_to_input: false,
                },
            }
        }
        arch => StandardForm {
            architecture: match arch {
                Arch::TopK => "topk",
                Arch::BatchTopK => "jumprelu",
                _ => "standard",
            },
            w_enc: cpu(&(sae.enc.tr() * s)),
            w_dec: cpu(&(&sae.dec / s)),
            b_enc: cpu(&sae.b_enc),
            b_dec: cpu(&(&sae.b_dec / s)),
            threshold: (arch == Arch::BatchTopK).then(|| cpu(&sae.threshold.clamp_min(0.0))),
            apply_b_dec_to_input: arch != Arch::Relu,
        },
    }
}

fn saelens_cfg(arch: &str, cfg: &SaeConfig, apply_b_dec: bool, extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({
        "architecture": arch,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": apply_b_dec,
        "normalize_activations": "none",
        "finetuning_scaling_factor": false,
        "context_size": null,
        "model_name": null,
        "hook_name": null,
        "hook_layer": null,
        "prepend_bos": false,
        "dataset_path": null,
        "sae_lens_training_version": null,
    });
    if let Some(k) = cfg.k.filter(|_| arch == "topk") {
        v["k"] = json!(k);
    }
    v["audiosae"] = extra;
    v
}

/// Writes the SAE to `dir` (see the module doc). `density` is the log10 feature density.
pub fn save_sae(dir: &Path, sae: &Sae, train: &TrainConfig, input_scale: f64, density: Option<&Tensor>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let extra = json!({ "arch": sae.cfg.arch, "sae": sae.cfg, "train": train, "input_scale": input_scale });
    let weights = dir.join("sae_weights.safetensors");
    if sae.cfg.arch == Arch::OpenSae {
        let cpu = |t: &Tensor| t.detach().to_device(Device::Cpu).contiguous();
        let tensors = [("E", cpu(&sae.enc)), ("D", cpu(&sae.dec.tr())), ("pre_bias", cpu(&(-&sae.b_dec)))];
        write_safetensors_atomic(&tensors, &weights)?;
        let mut cfg = saelens_cfg("opensae", &sae.cfg, true, extra);
        cfg["k"] = json!(sae.cfg.k);
        cfg["l1_coef"] = json!(sae.cfg.l1_coef);
        write_json_atomic(&dir.join("cfg.json"), &cfg)?;
    } else {
        write_standard(dir, &standard_form(sae, input_scale), &sae.cfg, extra)?;
    }
    if let Some(d) = density {
        write_safetensors_atomic(
            &[("sparsity", d.detach().to_device(Device::Cpu))],
            &dir.join("sparsity.safetensors"),
        )?;
    }
    Ok(())
}

fn write_standard(dir: &Path, f: &StandardForm, cfg: &SaeConfig, extra: serde_json::Value) -> Result<()> {
    let mut tensors = vec![
        ("W_enc", f.w_enc.shallow_clone()),
        ("W_dec", f.w_dec.shallow_clone()),
        ("b_enc", f.b_enc.shallow_clone()),
        ("b_dec", f.b_dec.shallow_clone()),
    ];
    if let Some(t) = &f.threshold {
        tensors.push(("threshold", t.shallow_clone()));
    }
    write_safetensors_atomic(&tensors, &dir.join("sae_weights.safetensors"))?;
    let cfg = saelens_cfg(f.architecture, cfg, f.apply_b_dec_to_input, extra);
    write_json_atomic(&dir.join("cfg.json"), &cfg)
}

/// Writes `path` through a temporary file renamed over it, so a kill leaves the old file or the
/// new one, never half of one.
fn replace_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension("partial");
    write(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    replace_atomically(path, |tmp| Ok(std::fs::write(tmp, text)?))
}

fn write_safetensors_atomic(tensors: &[(&str, Tensor)], path: &Path) -> Result<()> {
    replace_atomically(path, |tmp| Ok(Tensor::write_safetensors(tensors, tmp)?))
}

/// Loads an SAE written by [`save_sae`] or [`export`] (SAELens format): `(sae, input_scale)`;
/// the scale is 1 except for opensae trained with normalisation.
pub fn load_sae(dir: &Path, device: Device) -> Result<(Sae, f64)> {
    let cfg_path = dir.join("cfg.json");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?,
    )
    .with_context(|| format!("{}: invalid JSON", cfg_path.display()))?;
    let field = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
    let d_in = field("d_in").with_context(|| format!("{}: no d_in", cfg_path.display()))?;
    let d_sae = field("d_sae").with_context(|| format!("{}: no d_sae", cfg_path.display()))?;
    let arch_name = v.get("architecture").and_then(|x| x.as_str()).unwrap_or("standard");
    let own: Option<SaeConfig> = v.get("audiosae").and_then(|a| serde_json::from_value(a["sae"].clone()).ok());
    let w = Named::read(&dir.join("sae_weights.safetensors"), device)?;
    if arch_name == "opensae" {
        let cfg = own.with_context(|| format!("{}: opensae without its audiosae config", cfg_path.display()))?;
        let scale = v["audiosae"]["input_scale"].as_f64().unwrap_or(1.0);
        let h = d_sae as i64;
        let sae = Sae {
            enc: w.get("E")?,
            dec: w.get("D")?.tr().contiguous(),
            b_dec: -w.get("pre_bias")?,
            b_enc: Tensor::zeros([h], (Kind::Float, device)),
            threshold: Tensor::full([h], -1.0, (Kind::Float, device)),
            cfg,
        };
        return Ok((sae, scale));
    }
    let apply_b_dec = v.get("apply_b_dec_to_input").and_then(|x| x.as_bool()).unwrap_or(true);
    let arch = match arch_name {
        "topk" => Arch::TopK,
        "jumprelu" => Arch::BatchTopK,
        "standard" => Arch::Relu,
        other => bail!("{}: unsupported architecture {other:?}", cfg_path.display()),
    };
    let k = v.get("k").and_then(|x| x.as_u64()).map(|x| x as usize).or(own.as_ref().and_then(|c| c.k));
    let cfg = SaeConfig {
        arch,
        d_in,
        d_sae,
        k: if arch == Arch::Relu { None } else { k },
        ..own.clone().unwrap_or_default()
    };
    let w_enc = w.get("W_enc")?;
    ensure!(
        w_enc.size() == [d_in as i64, d_sae as i64],
        "{}: W_enc is {:?}, expected [{d_in}, {d_sae}]",
        dir.display(),
        w_enc.size()
    );
    let mut b_enc = w.get("b_enc")?;
    let b_dec = w.get("b_dec")?;
    if arch == Arch::Relu && apply_b_dec {
        // Our relu does not subtract b_dec: move it into b_enc.
        b_enc = &b_enc - b_dec.unsqueeze(0).matmul(&w_enc).squeeze_dim(0);
    }
    let h = d_sae as i64;
    let threshold =
        if arch == Arch::BatchTopK { w.get("threshold")? } else { Tensor::full([h], -1.0, (Kind::Float, device)) };
    Ok((Sae { enc: w_enc.tr().contiguous(), dec: w.get("W_dec")?, b_enc, b_dec, threshold, cfg }, 1.0))
}

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Saelens,
    Sparsify,
}

/// Writes the SAE in `from` to `to` in the standard form of `format`.
pub fn export(from: &Path, to: &Path, format: ExportFormat) -> Result<()> {
    let (sae, scale) = load_sae(from, Device::Cpu)?;
    let f = standard_form(&sae, scale);
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    match format {
        ExportFormat::Saelens => {
            let extra = json!({ "arch": if sae.cfg.arch == Arch::OpenSae { Arch::TopK } else { sae.cfg.arch }, "exported_from": from, "source_arch": sae.cfg.arch });
            let cfg =
                SaeConfig { arch: if f.architecture == "topk" { Arch::TopK } else { sae.cfg.arch }, ..sae.cfg.clone() };
            write_standard(to, &f, &cfg, json!({ "sae": cfg, "export": extra }))?;
            let sp = from.join("sparsity.safetensors");
            if sp.exists() {
                std::fs::copy(&sp, to.join("sparsity.safetensors"))?;
            }
        }
        ExportFormat::Sparsify => {
            ensure!(f.architecture == "topk", "sparsify has only TopK SAEs; {} is {}", from.display(), sae.cfg.arch);
            let tensors = [
                ("encoder.weight", f.w_enc.tr().contiguous()),
                ("encoder.bias", f.b_enc.shallow_clone()),
                ("W_dec", f.w_dec.shallow_clone()),
                ("b_dec", f.b_dec.shallow_clone()),
            ];
            write_safetensors_atomic(&tensors, &to.join("sae.safetensors"))?;
            let cfg = json!({
                "expansion_factor": sae.cfg.d_sae / sae.cfg.d_in.max(1),
                "normalize_decoder": sae.cfg.arch != Arch::OpenSae || scale == 1.0,
                "num_latents": sae.cfg.d_sae,
                "k": sae.cfg.k,
                "multi_topk": false,
                "skip_connection": false,
                "d_in": sae.cfg.d_in,
            });
            write_json_atomic(&to.join("cfg.json"), &cfg)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip_encodes_identically(arch: Arch, k: Option<usize>, scale: f64) {
        tch::manual_seed(11);
        let cfg = SaeConfig { arch, d_in: 8, d_sae: 24, k, ..Default::default() };
        let sae = Sae::init(&cfg, Device::Cpu);
        sae.b_dec.detach().copy_(&Tensor::randn([8], (Kind::Float, Device::Cpu)));
        if arch != Arch::OpenSae {
            sae.b_enc.detach().copy_(&(Tensor::randn([24], (Kind::Float, Device::Cpu)) * 0.1));
        }
        let dir = std::env::temp_dir().join(format!("audiosae-ckpt-{arch}-{k:?}-{}", std::process::id()));
        let train = TrainConfig { sae: cfg.clone(), ..Default::default() };
        save_sae(&dir, &sae, &train, scale, None).unwrap();
        let exported = dir.join("exported");
        export(&dir, &exported, ExportFormat::Saelens).unwrap();
        let (native, native_scale) = load_sae(&dir, Device::Cpu).unwrap();
        let (standard, standard_scale) = load_sae(&exported, Device::Cpu).unwrap();
        assert_eq!(standard_scale, 1.0);
        let x = Tensor::randn([50, 8], (Kind::Float, Device::Cpu)) * 3.0;
        // Reference: the in-memory SAE on scaled inputs, its output scaled back.
        let h_ref = sae.encode(&(&x * scale));
        let x_ref = sae.decode(&h_ref) / scale;
        for (name, loaded, s) in [("native", &native, native_scale), ("exported", &standard, standard_scale)] {
            let h = loaded.encode(&(&x * s));
            assert!(h.allclose(&h_ref, 1e-4, 1e-5, false), "{arch}: {name} codes differ");
            assert!(
                (loaded.decode(&h) / s).allclose(&x_ref, 1e-4, 1e-5, false),
                "{arch}: {name} reconstructions differ"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn opensae_native_and_exported_forms_encode_identically() {
        roundtrip_encodes_identically(Arch::OpenSae, Some(4), 1.0);
        roundtrip_encodes_identically(Arch::OpenSae, None, 0.5);
        roundtrip_encodes_identically(Arch::OpenSae, Some(4), 0.25);
    }

    #[test]
    fn standard_architectures_survive_save_and_export() {
        roundtrip_encodes_identically(Arch::TopK, Some(3), 0.5);
        roundtrip_encodes_identically(Arch::Relu, None, 2.0);
    }
}
