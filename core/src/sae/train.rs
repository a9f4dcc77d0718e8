//! The training loop: AdamW, lr schedule, clipping, dead-latent tracking, resampling, NaN
//! guard, progress bar, logs and resumable checkpoints.
//!
//! Randomness is reproducible from the config alone: the weights come from libtorch's generator
//! seeded with `seed`, every resampling reseeds it from `(seed, step)`, and batches come from the
//! source's position, so a checkpoint needs only the tensors, the step and the data position.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::arch::Sae;
use super::checkpoint::{self, TrainingState};
use super::config::{Arch, Resample, TrainConfig};
use super::data::BatchSource;
use super::optim::{clip_factor, AdamW};
use super::schedule::lr_at;

/// The seed resamples every this many steps.
const SEED_RESAMPLE_EVERY: usize = 250;
/// Frames used to estimate the input scale and the geometric median.
const INIT_SAMPLE_FRAMES: usize = 8192;
/// Frames scored by Anthropic resampling.
const RESAMPLE_SAMPLE_FRAMES: usize = 8192;
/// Feature densities saved with the SAE cover the last this many steps.
const SPARSITY_STEPS: usize = 1000;

/// One line of the training log (means over the steps since the previous line).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogRow {
    pub step: usize,
    pub frames: u64,
    pub loss: f64,
    pub mse: f64,
    pub fvu: f64,
    pub l0: f64,
    pub aux: f64,
    pub dead_frac: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub frames_per_s: f64,
}

/// A run in progress: the model, its optimizer and the trainer's own counters.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub sae: Sae,
    pub opt: AdamW,
    /// Completed optimizer steps.
    pub step: usize,
    /// Input multiplier for unit mean squared norm (1 when off).
    pub input_scale: f64,
    /// `[d_sae]` frames since each latent last fired.
    pub frames_since_fired: Tensor,
    /// Dead mask and count as of the last refresh (every `log_every` steps).
    pub dead: Tensor,
    pub n_dead: usize,
    /// `[d_sae]` firing counts and frame count for the saved feature sparsity.
    pub fired_acc: Tensor,
    pub frames_acc: u64,
    pub log: Vec<LogRow>,
    sums: Tensor,
    /// First step at which the input, the loss or the gradient norm was not finite (−1: none).
    first_bad: Tensor,
}

/// What [`train`] hands back.
pub struct TrainResult {
    pub sae: Sae,
    pub input_scale: f64,
    pub log: Vec<LogRow>,
}

const BAD_WHAT: [&str; 3] = ["input batch", "loss", "gradient"];

impl Trainer {
    /// A fresh run: seeded init, input scale and geometric-median `b_dec` from a sample.
    pub fn new(cfg: TrainConfig, source: &mut dyn BatchSource, device: Device) -> Result<Trainer> {
        cfg.validate()?;
        tch::manual_seed(cfg.seed as i64);
        let sae = Sae::init(&cfg.sae, device);
        let mut input_scale = 1.0;
        if cfg.normalize_inputs() || cfg.geometric_median_init() {
            let sample = source.next_batch(INIT_SAMPLE_FRAMES, device)?;
            if cfg.normalize_inputs() {
                let ms = sample.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).mean(Kind::Float);
                input_scale = 1.0 / ms.double_value(&[]).sqrt().max(1e-12);
            }
            if cfg.geometric_median_init() {
                let median = geometric_median(&(sample * input_scale), 100);
                sae.b_dec.detach().copy_(&median);
            }
        }
        Ok(Trainer::assemble(cfg, sae, input_scale))
    }

    fn assemble(cfg: TrainConfig, sae: Sae, input_scale: f64) -> Trainer {
        let device = sae.device();
        let h = cfg.sae.d_sae as i64;
        let opt = AdamW::new(&sae.params(), cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay());
        Trainer {
            opt,
            sae,
            step: 0,
            input_scale,
            frames_since_fired: Tensor::zeros([h], (Kind::Int64, device)),
            dead: Tensor::zeros([h], (Kind::Bool, device)),
            n_dead: 0,
            fired_acc: Tensor::zeros([h], (Kind::Float, device)),
            frames_acc: 0,
            log: Vec::new(),
            sums: Tensor::zeros([6], (Kind::Float, device)),
            first_bad: Tensor::full([3], -1, (Kind::Int64, device)),
            cfg,
        }
    }

    /// Rebuilds a run from its training checkpoint and moves the source to its data position.
    pub fn resume(dir: &Path, source: &mut dyn BatchSource, device: Device) -> Result<Trainer> {
        let state = checkpoint::load_training_state(dir, device)?;
        let TrainingState {
            cfg,
            sae,
            input_scale,
            step,
            data_position,
            n_dead,
            frames_acc,
            log,
            exp_avg,
            exp_avg_sq,
            counters,
        } = state;
        let mut t = Trainer::assemble(cfg, sae, input_scale);
        t.opt.load(step as i64, exp_avg, exp_avg_sq)?;
        t.step = step;
        t.n_dead = n_dead;
        t.frames_acc = frames_acc;
        t.log = log;
        t.frames_since_fired.copy_(&counters[0]);
        t.dead.copy_(&counters[1]);
        t.fired_acc.copy_(&counters[2]);
        source.seek(data_position)?;
        Ok(t)
    }

    /// One optimizer step on the next batch; no host sync.
    pub fn train_step(&mut self, source: &mut dyn BatchSource) -> Result<()> {
        let device = self.sae.device();
        let batch = self.cfg.batch_size;
        let mut x = source.next_batch(batch, device)?;
        if self.input_scale != 1.0 {
            x *= self.input_scale;
        }
        let params = self.sae.params();
        let out = self.sae.train_forward(&x, &self.dead, self.n_dead);
        self.sae.backward(&out);
        self.sae.before_step();
        let (grad_norm, clip) = clip_factor(&params, self.cfg.clip_grad_norm);
        let lr = lr_at(&self.cfg, self.step);
        self.opt.step(&params, lr, clip.as_ref());
        self.sae.after_step();
        let _g = tch::no_grad_guard();
        let fired = out.fired.gt(0.0);
        let _ = self.frames_since_fired.g_add_scalar_(batch as i64);
        let _ = self.frames_since_fired.masked_fill_(&fired, 0);
        if self.step + SPARSITY_STEPS.min(self.cfg.steps) >= self.cfg.steps {
            let _ = self.fired_acc.g_add_(&out.fired);
            self.frames_acc += batch as u64;
        }
        let loss = out.loss.detach();
        let stats = Tensor::stack(&[&loss, &out.mse, &out.fvu, &out.l0, &out.aux, &grad_norm], 0);
        let _ = self.sums.g_add_(&stats);
        let finite = Tensor::stack(&[x.sum(Kind::Float).isfinite(), loss.isfinite(), grad_norm.isfinite()], 0);
        let newly_bad = finite.logical_not().logical_and(&self.first_bad.lt(0));
        let _ = self.first_bad.masked_fill_(&newly_bad, self.step as i64 + 1);
        self.step += 1;
        match self.cfg.resample() {
            Resample::Seed if self.step.is_multiple_of(SEED_RESAMPLE_EVERY) => {
                self.resample_seed(&(out.fired / batch as f64).lt(1e-4))
            }
            Resample::Anthropic if self.step.is_multiple_of(self.cfg.resample_every) && self.step < self.cfg.steps => {
                self.resample_anthropic(source)?
            }
            _ => {}
        }
        Ok(())
    }

    /// Syncs the accumulated statistics into a log row and refreshes the dead mask.
    pub fn log_row(&mut self, frames_per_s: f64, steps_in_window: usize) -> Result<LogRow> {
        self.check_finite()?;
        let _g = tch::no_grad_guard();
        let window = self.cfg.dead_window_frames.max(1) as i64;
        self.dead = self.frames_since_fired.ge(window);
        self.n_dead = self.dead.sum(Kind::Int64).int64_value(&[]) as usize;
        let s: Vec<f64> = Vec::<f64>::try_from(
            (&self.sums / steps_in_window.max(1) as f64).to_kind(Kind::Double).to_device(Device::Cpu),
        )?;
        let _ = self.sums.zero_();
        let row = LogRow {
            step: self.step,
            frames: (self.step * self.cfg.batch_size) as u64,
            loss: s[0],
            mse: s[1],
            fvu: s[2],
            l0: s[3],
            aux: s[4],
            dead_frac: self.n_dead as f64 / self.cfg.sae.d_sae as f64,
            lr: lr_at(&self.cfg, self.step.saturating_sub(1)),
            grad_norm: s[5],
            frames_per_s,
        };
        self.log.push(row.clone());
        Ok(row)
    }

    /// Fails, naming the step and the tensor, if anything went non-finite.
    pub fn check_finite(&self) -> Result<()> {
        let bad: Vec<i64> = Vec::<i64>::try_from(self.first_bad.to_device(Device::Cpu))?;
        if let Some((i, step)) = bad.iter().enumerate().filter(|(_, &s)| s >= 0).min_by_key(|(_, &s)| s) {
            let poisoned: Vec<&str> = self
                .sae
                .named_tensors()
                .into_iter()
                .filter(|(_, t)| !bool::try_from(t.isfinite().all()).unwrap_or(false))
                .map(|(n, _)| n)
                .collect();
            bail!(
                "non-finite {} at step {step}; non-finite weights now: {}. No checkpoint was written \
                 after this point (lower the learning rate, or check the input activations)",
                BAD_WHAT[i],
                if poisoned.is_empty() { "none".into() } else { poisoned.join(", ") }
            );
        }
        for (name, t) in self.sae.named_tensors() {
            if !bool::try_from(t.isfinite().all())? {
                bail!("non-finite values in weight {name} at step {}; refusing to continue or save", self.step);
            }
        }
        Ok(())
    }

    /// The seed's rule: units that fired on fewer than 1e-4 of the last batch get fresh
    /// N(0, 0.02) encoder and decoder weights; Adam state is kept.
    fn resample_seed(&mut self, dead: &Tensor) {
        let _g = tch::no_grad_guard();
        tch::manual_seed(mix_seed(self.cfg.seed, self.step));
        let rows = dead.nonzero().squeeze_dim(1);
        let n = rows.size()[0];
        if n == 0 {
            return;
        }
        let d = self.cfg.sae.d_in as i64;
        let f = (Kind::Float, self.sae.device());
        let _ = self.sae.enc.detach().index_copy_(0, &rows, &Tensor::empty([n, d], f).normal_(0.0, 0.02));
        let _ = self.sae.dec.detach().index_copy_(0, &rows, &Tensor::empty([n, d], f).normal_(0.0, 0.02));
    }

    /// Anthropic (Towards Monosemanticity): each latent dead over the window gets a direction
    /// from an input drawn with probability ∝ its squared reconstruction error; the decoder row
    /// becomes that unit direction, the encoder row the direction times 0.2 × the mean alive
    /// encoder norm, `b_enc` 0; their Adam moments are reset.
    fn resample_anthropic(&mut self, source: &mut dyn BatchSource) -> Result<()> {
        let _g = tch::no_grad_guard();
        let window = self.cfg.dead_window_frames.max(1) as i64;
        let dead = self.frames_since_fired.ge(window);
        let rows = dead.nonzero().squeeze_dim(1);
        let n = rows.size()[0];
        if n == 0 {
            return Ok(());
        }
        let x = source.next_batch(RESAMPLE_SAMPLE_FRAMES, self.sae.device())? * self.input_scale;
        let err = (&x - self.sae.decode(&self.sae.encode(&x))).square().sum_dim_intlist(
            [1i64].as_slice(),
            false,
            Kind::Float,
        );
        tch::manual_seed(mix_seed(self.cfg.seed, self.step));
        let pick = (err + 1e-12).multinomial(n, n > x.size()[0]);
        let dirs = x.index_select(0, &pick) - &self.sae.b_dec;
        let dirs = &dirs / dirs.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
        let alive = dead.logical_not();
        let enc_norm = if bool::try_from(alive.any())? {
            self.sae.enc.norm_scalaropt_dim(2, [1], false).masked_select(&alive).mean(Kind::Float)
        } else {
            Tensor::ones([], (Kind::Float, x.device()))
        };
        let _ = self.sae.dec.detach().index_copy_(0, &rows, &dirs);
        let _ = self.sae.enc.detach().index_copy_(0, &rows, &(&dirs * (enc_norm * 0.2)));
        let _ = self.sae.b_enc.detach().index_fill_(0, &rows, 0.0);
        for (i, (name, _)) in self.sae.named_params().iter().enumerate() {
            if matches!(*name, "enc" | "dec" | "b_enc") {
                self.opt.reset_rows(i, &rows);
            }
        }
        let _ = self.frames_since_fired.index_fill_(0, &rows, 0);
        Ok(())
    }

    /// log10 feature density over the last steps (SAELens `log_feature_sparsity`).
    pub fn log_feature_density(&self) -> Tensor {
        (&self.fired_acc / self.frames_acc.max(1) as f64 + 1e-10).log10()
    }
}

fn mix_seed(seed: u64, step: usize) -> i64 {
    let mut r = super::data::SplitMix64::new(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (r.next_u64() >> 1) as i64
}

/// Geometric median of the rows of `x` by Weiszfeld iterations from the mean.
pub fn geometric_median(x: &Tensor, iters: usize) -> Tensor {
    let _g = tch::no_grad_guard();
    let mut m = x.mean_dim([0i64].as_slice(), false, Kind::Float);
    for _ in 0..iters {
        let w: Tensor = 1.0 / (x - &m).norm_scalaropt_dim(2, [1], false).clamp_min(1e-8);
        let next = (x * w.unsqueeze(1)).sum_dim_intlist([0i64].as_slice(), false, Kind::Float) / w.sum(Kind::Float);
        let moved = (&next - &m).norm().double_value(&[]);
        m = next;
        if moved < 1e-6 {
            break;
        }
    }
    m
}

/// Options of one [`train`] call that are not part of the run's config.
pub struct TrainOptions {
    pub out_dir: PathBuf,
    pub resume: bool,
    pub progress: bool,
    /// Stop (as if killed) after this many steps without finishing; for tests.
    pub stop_after: Option<usize>,
}

/// Trains to `cfg.steps`, checkpointing under `out_dir/training_state`, and writes the SAE
/// (`cfg.json`, `sae_weights.safetensors`, `sparsity.safetensors`) and logs to `out_dir`.
pub fn train(cfg: TrainConfig, source: &mut dyn BatchSource, opts: &TrainOptions) -> Result<TrainResult> {
    let device = crate::device::parse_device(&cfg.device)?;
    let state_dir = opts.out_dir.join(checkpoint::TRAINING_STATE_DIR);
    let mut t = if opts.resume && checkpoint::training_state_exists(&state_dir) {
        // The checkpoint's own config wins: a resumed run is the run that was interrupted.
        Trainer::resume(&state_dir, source, device)?
    } else {
        anyhow::ensure!(!opts.resume, "--resume: no training checkpoint in {}", state_dir.display());
        Trainer::new(cfg, source, device)?
    };
    std::fs::create_dir_all(&opts.out_dir).with_context(|| format!("creating {}", opts.out_dir.display()))?;
    let bar = progress_bar(opts.progress, &t);
    let (mut t_window, mut steps_in_window) = (Instant::now(), 0);
    while t.step < t.cfg.steps {
        if opts.stop_after.is_some_and(|s| t.step >= s) {
            bar.abandon();
            bail!("stopped after step {} as asked", t.step);
        }
        t.train_step(source)?;
        steps_in_window += 1;
        if t.step % t.cfg.log_every == 0 || t.step == t.cfg.steps {
            let fps = (steps_in_window * t.cfg.batch_size) as f64 / t_window.elapsed().as_secs_f64();
            let row = t.log_row(fps, steps_in_window)?;
            bar.set_position(t.step as u64);
            bar.set_message(format!(
                "loss {:.4} fvu {:.4} L0 {:.1} dead {:.1}% {:.0} frames/s",
                row.loss,
                row.fvu,
                row.l0,
                100.0 * row.dead_frac,
                row.frames_per_s
            ));
            (t_window, steps_in_window) = (Instant::now(), 0);
        }
        if t.step % t.cfg.checkpoint_every == 0 && t.step < t.cfg.steps {
            t.check_finite()?;
            checkpoint::save_training_state(&state_dir, &t, source.position())?;
        }
    }
    bar.finish();
    t.check_finite()?;
    checkpoint::save_training_state(&state_dir, &t, source.position())?;
    checkpoint::save_sae(&opts.out_dir, &t.sae, &t.cfg, t.input_scale, Some(&t.log_feature_density()))?;
    super::plots::write_train_logs(&opts.out_dir, &t.log)?;
    Ok(TrainResult { input_scale: t.input_scale, log: t.log, sae: t.sae })
}

fn progress_bar(show: bool, t: &Trainer) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(t.cfg.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_position(t.step as u64);
    if t.cfg.sae.arch == Arch::OpenSae && t.cfg.seed_compat {
        bar.println("seed-compat: opensae with the seed's every-250-steps resampling");
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::config::SaeConfig;
    use crate::sae::InMemorySource;

    /// opensae's hand-written backward and the fused AdamW keep a resumed run bit-identical.
    #[test]
    fn opensae_resumes_bit_identically() {
        let frames = Tensor::randn([3000, 16], (Kind::Float, Device::Cpu));
        let cfg = TrainConfig {
            sae: SaeConfig { arch: Arch::OpenSae, d_in: 16, d_sae: 64, k: Some(4), ..Default::default() },
            steps: 12,
            batch_size: 64,
            log_every: 4,
            checkpoint_every: 4,
            device: "cpu".into(),
            ..Default::default()
        };
        let dir = |name: &str| std::env::temp_dir().join(format!("audiosae-opensae-{name}-{}", std::process::id()));
        let run = |name: &str, stop_after: Option<usize>, resume: bool| {
            let opts = TrainOptions { out_dir: dir(name), resume, progress: false, stop_after };
            train(cfg.clone(), &mut InMemorySource::new(frames.shallow_clone(), 0).unwrap(), &opts)
        };
        let straight = run("straight", None, false).unwrap();
        assert!(run("resumed", Some(6), false).is_err(), "stops after step 6");
        let resumed = run("resumed", None, true).unwrap();
        for ((name, a), (_, b)) in straight.sae.named_tensors().into_iter().zip(resumed.sae.named_tensors()) {
            assert!(a.equal(b), "{name} differs after resuming");
        }
        for name in ["straight", "resumed"] {
            let _ = std::fs::remove_dir_all(dir(name));
        }
    }

    #[test]
    fn geometric_median_resists_outliers() {
        let mut rows = vec![[0.0f32, 0.0]; 9];
        rows.push([1000.0, 1000.0]);
        let x = Tensor::from_slice(&rows.concat()).view([10, 2]);
        let m: Vec<f32> = geometric_median(&x, 200).try_into().unwrap();
        assert!(m[0].abs() < 1.0 && m[1].abs() < 1.0, "{m:?}");
    }
}
