//! SAE and training configuration: a TOML file (every field optional) plus CLI overrides.

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The SAE parametrisation. Definitions are in `docs/sae.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The seed's OpenSAE: `h = TopK(ReLU(E(x + pre_bias)))`, `x̂ = normalize_cols(D) h − pre_bias`.
    OpenSae,
    /// OpenAI/sparsify TopK with encoder bias, unit-norm decoder rows and AuxK.
    TopK,
    /// BatchTopK: top k·B over the batch in training, a learned threshold at inference.
    BatchTopK,
    /// ReLU with the decoder-norm-weighted L1 penalty (Anthropic, April 2024 update).
    Relu,
}

impl FromStr for Arch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "opensae" => Arch::OpenSae,
            "topk" => Arch::TopK,
            "batchtopk" => Arch::BatchTopK,
            "relu" => Arch::Relu,
            _ => bail!("unknown SAE architecture {s:?}: use opensae, topk, batchtopk or relu"),
        })
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::OpenSae => "opensae",
            Arch::TopK => "topk",
            Arch::BatchTopK => "batchtopk",
            Arch::Relu => "relu",
        })
    }
}

/// How dead latents are revived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resample {
    None,
    /// The seed: every 250 steps, re-draw units that did not fire in the last batch; Adam state kept.
    Seed,
    /// Anthropic: units dead over the window get high-loss inputs as directions; Adam state reset.
    Anthropic,
}

impl FromStr for Resample {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Resample::None,
            "seed" => Resample::Seed,
            "anthropic" => Resample::Anthropic,
            _ => bail!("unknown resampling {s:?}: use none, seed or anthropic"),
        })
    }
}

/// Learning-rate decay after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    Cosine,
    Constant,
}

/// Precision of the encoder product, the step's dominant cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDType {
    #[default]
    F32,
    /// Mixed precision: the encoder product in bf16, weights, optimizer and decoder in f32
    /// (what `torch.autocast(dtype=torch.bfloat16)` does to a linear layer). Meant for CUDA.
    Bf16,
}

impl FromStr for ComputeDType {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "f32" => ComputeDType::F32,
            "bf16" => ComputeDType::Bf16,
            _ => bail!("unknown compute dtype {s:?}: use f32 or bf16"),
        })
    }
}

/// The model itself (what a checkpoint needs to rebuild it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SaeConfig {
    pub arch: Arch,
    pub d_in: usize,
    pub d_sae: usize,
    /// Active latents per frame (opensae: None = pure L1; batchtopk: mean per frame).
    pub k: Option<usize>,
    /// opensae: L1 coefficient; relu: coefficient of the decoder-norm-weighted L1.
    pub l1_coef: f64,
    /// AuxK loss coefficient (topk, batchtopk); 0 disables it.
    pub aux_k_coef: f64,
    /// Latents used by AuxK (default d_in / 2).
    pub aux_k: Option<usize>,
    pub compute_dtype: ComputeDType,
}

impl Default for SaeConfig {
    fn default() -> Self {
        SaeConfig {
            arch: Arch::TopK,
            d_in: 0,
            d_sae: 8192,
            k: Some(64),
            l1_coef: 5e-4,
            aux_k_coef: 1.0 / 32.0,
            aux_k: None,
            compute_dtype: ComputeDType::F32,
        }
    }
}

/// Everything about one training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub sae: SaeConfig,
    pub seed: u64,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub decay: Decay,
    /// Cosine decays to `lr * min_lr_frac`.
    pub min_lr_frac: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled (AdamW) weight decay; None = 0.01 for opensae (torch's default), 0 otherwise.
    pub weight_decay: Option<f64>,
    /// Global gradient-norm clip; 0 disables.
    pub clip_grad_norm: f64,
    /// A latent is dead when it has not fired for this many frames.
    pub dead_window_frames: u64,
    /// None = anthropic for relu, none for the others (topk/batchtopk use AuxK).
    pub resample: Option<Resample>,
    /// Steps between Anthropic resamplings.
    pub resample_every: usize,
    /// Initialise b_dec with the geometric median of a sample (None = on for topk/batchtopk).
    pub geometric_median_init: Option<bool>,
    /// Scale inputs to unit mean squared norm; folded into the weights at save.
    pub normalize_inputs: bool,
    /// The seed's behaviour exactly (opensae only): every-250-steps resampling, no normalisation.
    pub seed_compat: bool,
    pub log_every: usize,
    pub checkpoint_every: usize,
    pub device: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            sae: SaeConfig::default(),
            seed: 0,
            steps: 10_000,
            batch_size: 1024,
            lr: 1e-3,
            warmup_steps: 0,
            decay: Decay::Cosine,
            min_lr_frac: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: None,
            clip_grad_norm: 1.0,
            dead_window_frames: 10_000_000,
            resample: None,
            resample_every: 25_000,
            geometric_median_init: None,
            normalize_inputs: false,
            seed_compat: false,
            log_every: 50,
            checkpoint_every: 1000,
            device: "auto".into(),
        }
    }
}

impl TrainConfig {
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: invalid training config", path.display()))
    }

    pub fn weight_decay(&self) -> f64 {
        self.weight_decay.unwrap_or(if self.sae.arch == Arch::OpenSae { 0.01 } else { 0.0 })
    }

    pub fn resample(&self) -> Resample {
        if self.seed_compat {
            return Resample::Seed;
        }
        self.resample.unwrap_or(if self.sae.arch == Arch::Relu { Resample::Anthropic } else { Resample::None })
    }

    pub fn geometric_median_init(&self) -> bool {
        !self.seed_compat && self.geometric_median_init.unwrap_or(matches!(self.sae.arch, Arch::TopK | Arch::BatchTopK))
    }

    pub fn normalize_inputs(&self) -> bool {
        self.normalize_inputs && !self.seed_compat
    }

    /// Rejects inconsistent settings with a message naming the field.
    pub fn validate(&self) -> Result<()> {
        let s = &self.sae;
        anyhow::ensure!(s.d_in > 0 && s.d_sae > 0, "sae.d_in and sae.d_sae must be positive");
        anyhow::ensure!(self.batch_size > 0 && self.steps > 0, "batch_size and steps must be positive");
        anyhow::ensure!(
            self.log_every > 0 && self.checkpoint_every > 0,
            "log_every and checkpoint_every must be positive"
        );
        match s.arch {
            Arch::TopK | Arch::BatchTopK => {
                let k = s.k.context("sae.k is required for topk and batchtopk")?;
                anyhow::ensure!(k > 0 && k <= s.d_sae, "sae.k = {k} must be in 1..=d_sae ({})", s.d_sae);
            }
            Arch::OpenSae => {
                if let Some(k) = s.k {
                    anyhow::ensure!(k > 0, "sae.k must be positive (omit it for pure L1)");
                }
            }
            Arch::Relu => anyhow::ensure!(s.k.is_none(), "sae.k does not apply to relu"),
        }
        anyhow::ensure!(!self.seed_compat || s.arch == Arch::OpenSae, "seed_compat applies to opensae only");
        // Numbers a config file or a flag may carry: each within the range the optimiser means.
        let within = |name: &str, v: f64, ok: bool, range: &str| {
            anyhow::ensure!(v.is_finite() && ok, "{name} = {v} is out of range: it must be {range}");
            Ok(())
        };
        within("lr", self.lr, self.lr > 0.0, "positive")?;
        within("sae.l1_coef", s.l1_coef, s.l1_coef >= 0.0, "0 or more")?;
        within("sae.aux_k_coef", s.aux_k_coef, s.aux_k_coef >= 0.0, "0 or more")?;
        within("min_lr_frac", self.min_lr_frac, (0.0..=1.0).contains(&self.min_lr_frac), "in [0, 1]")?;
        within("beta1", self.beta1, (0.0..1.0).contains(&self.beta1), "in [0, 1)")?;
        within("beta2", self.beta2, (0.0..1.0).contains(&self.beta2), "in [0, 1)")?;
        within("eps", self.eps, self.eps > 0.0, "positive")?;
        let wd = self.weight_decay();
        within("weight_decay", wd, wd >= 0.0, "0 or more")?;
        within("clip_grad_norm", self.clip_grad_norm, self.clip_grad_norm >= 0.0, "0 (off) or more")?;
        anyhow::ensure!(self.resample_every > 0, "resample_every must be positive");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_typos() {
        let c: TrainConfig = toml::from_str("steps = 5\n[sae]\narch = \"batchtopk\"\nk = 8\nd_in = 4").unwrap();
        assert_eq!((c.steps, c.sae.arch, c.sae.k, c.batch_size), (5, Arch::BatchTopK, Some(8), 1024));
        assert!(toml::from_str::<TrainConfig>("stesp = 5").is_err());
    }

    #[test]
    fn out_of_range_numbers_are_refused_by_name() {
        let base = TrainConfig {
            sae: SaeConfig { d_in: 4, d_sae: 8, k: Some(2), ..Default::default() },
            ..Default::default()
        };
        base.validate().unwrap();
        type Edit = fn(&mut TrainConfig);
        let cases: [(&str, Edit); 6] = [
            ("lr", |c| c.lr = -1e-3),
            ("lr", |c| c.lr = f64::NAN),
            ("sae.l1_coef", |c| c.sae.l1_coef = -5.0),
            ("beta2", |c| c.beta2 = 1.0),
            ("min_lr_frac", |c| c.min_lr_frac = 2.0),
            ("weight_decay", |c| c.weight_decay = Some(-0.1)),
        ];
        for (name, edit) in cases {
            let mut c = base.clone();
            edit(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with(name) && e.contains("out of range"), "{e}");
        }
    }
}
