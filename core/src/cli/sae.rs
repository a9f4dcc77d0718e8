//! `audiosae train|eval|sweep|export`: sparse autoencoders on an activation store (or on
//! synthetic ground-truth data). User documentation: `docs/sae.md`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tch::Device;

use crate::corpus::Corpus;
use crate::models::{AudioModel, LayerSpec};
use crate::output::{refuse_in_place, OutputDir};
use crate::plugins::CorpusLabels;
use crate::sae::checkpoint::{self, ExportFormat};
use crate::sae::config::{Arch, ComputeDType, Decay, Resample, TrainConfig};
use crate::sae::data::{BatchSource, InMemorySource, ItemSource};
use crate::sae::eval::{evaluate, EvalMetrics};
use crate::sae::fidelity::{downstream_fidelity, Fidelity};
use crate::sae::store_source::SplitStore;
use crate::sae::sweep::{self, SweepPoint};
use crate::sae::synth;
use crate::sae::train::{train, TrainOptions};
use crate::store::ItemEntry;
use crate::textgrid::PhoneSet;

#[derive(Subcommand)]
pub enum SaeCommand {
    /// Trains an SAE (config from --config TOML, then the flags below).
    Train(Box<TrainArgs>),
    /// Evaluates an SAE on held-out items: metrics JSON, density histogram, per-item error.
    Eval {
        /// SAE folder (cfg.json + sae_weights.safetensors).
        sae: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// Output folder (default: SAE/eval).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 200_000)]
        max_frames: usize,
        #[arg(long, default_value = "auto", value_parser = crate::device::device_spec)]
        device: String,
        /// Write into the output folder even when it already holds results (they are replaced).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        fidelity: FidelityArgs,
    },
    /// Grid of independent runs over width x k x seed, then one table and plots.
    Sweep(Box<SweepArgs>),
    /// Writes an SAE in a standard format (opensae: folded to the equivalent TopK/standard SAE).
    Export {
        sae: PathBuf,
        #[arg(long, value_enum, default_value = "saelens")]
        format: ExportFormat,
        #[arg(short, long)]
        out: PathBuf,
        /// Write into OUT even when it already holds files (they are replaced).
        #[arg(long)]
        force: bool,
    },
}

/// Where the activations come from.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Activation store folder (`audiosae extract`).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Synthetic ground truth instead: D:M:K:N (dims, atoms, atoms per frame, frames).
    #[arg(long, conflicts_with = "store")]
    pub synthetic: Option<String>,
    /// Fraction of items held out for evaluation (split by item id).
    #[arg(long, default_value_t = 0.1, value_parser = fraction)]
    pub test_frac: f64,
    /// Seed of the batch order.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
}

/// Downstream fidelity: splice the SAE into the model the store came from.
#[derive(Args, Clone)]
pub struct FidelityArgs {
    /// Also measure what the model says with the SAE spliced in (CE loss recovered, KL, and for
    /// Whisper the WER of greedy transcription): the store's model, Whisper or Qwen2-Audio.
    #[arg(long)]
    pub model: Option<String>,
    /// Corpus whose transcripts are teacher-forced (items without one use the clean greedy
    /// transcription).
    #[arg(long, requires = "model")]
    pub labels: Option<PathBuf>,
    /// Held-out items scored for fidelity (whole clips of at most 30 s).
    #[arg(long, default_value_t = crate::sae::fidelity::DEFAULT_MAX_ITEMS, requires = "model",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub fidelity_items: usize,
}

impl FidelityArgs {
    /// Splices the SAE in `dir` into the model at the store's layer and scores it.
    fn measure(&self, dir: &Path, data: &Data, device: Device) -> Result<Option<Fidelity>> {
        let Some(model) = &self.model else { return Ok(None) };
        let Data::Store(store) = data else { bail!("--model needs --store: synthetic data has no model") };
        let layer: LayerSpec = store.reader.config().layer.parse()?;
        let m = AudioModel::load(model, device, tch::Kind::Float, true)?;
        let labels = self.labels.as_deref().map(|p| Corpus::open(&p.to_string_lossy())).transpose()?;
        let labels = labels.map(|c| CorpusLabels::new(c, PhoneSet::default()));
        let transcript = |it: &ItemEntry| labels.as_ref().and_then(|l| l.transcript(it)).map(str::to_string);
        let (sae, scale) = checkpoint::load_sae(dir, device)?;
        let f = downstream_fidelity(&m, layer, &sae, scale, store, &transcript, self.fidelity_items)?;
        Ok(Some(f))
    }
}

/// Synthetic frames come in items of this many frames.
const SYNTH_ITEM_FRAMES: usize = 100;
const SYNTH_NOISE: f64 = 0.01;

enum Data {
    Store(SplitStore),
    Synth { train: Tensor2, test: Tensor2 },
}
type Tensor2 = tch::Tensor;

impl DataArgs {
    fn open(&self) -> Result<Data> {
        match (&self.store, &self.synthetic) {
            (Some(dir), _) => Ok(Data::Store(SplitStore::open(dir, self.test_frac)?)),
            (None, Some(spec)) => {
                let v: Vec<i64> = spec
                    .split(':')
                    .map(|s| s.parse())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--synthetic {spec:?}: expected D:M:K:N"))?;
                let [d, m, k, n] = v[..] else { bail!("--synthetic {spec:?}: expected D:M:K:N") };
                let n_test = ((n as f64 * self.test_frac) as i64).max(SYNTH_ITEM_FRAMES as i64);
                let data = synth::generate(d, m, k, n + n_test, SYNTH_NOISE, 1);
                Ok(Data::Synth { train: data.frames.narrow(0, 0, n), test: data.frames.narrow(0, n, n_test) })
            }
            (None, None) => bail!("give the activations: --store DIR (or --synthetic D:M:K:N)"),
        }
    }
}

impl Data {
    fn train_source(&self, seed: u64) -> Result<Box<dyn BatchSource>> {
        Ok(match self {
            Data::Store(s) => Box::new(s.train_source(seed)?),
            Data::Synth { train, .. } => Box::new(InMemorySource::new(train.shallow_clone(), seed)?),
        })
    }
    fn test_items(&self) -> Result<Box<dyn ItemSource>> {
        Ok(match self {
            Data::Store(s) => Box::new(s.test_items()),
            Data::Synth { test, .. } => {
                let n = test.size()[0] as usize;
                let lens: Vec<usize> =
                    (0..n).step_by(SYNTH_ITEM_FRAMES).map(|s| SYNTH_ITEM_FRAMES.min(n - s)).collect();
                let names = (0..lens.len()).map(|i| format!("synth-{i}")).collect();
                Box::new(InMemorySource::new(test.shallow_clone(), 0)?.with_items(names, &lens)?)
            }
        })
    }
    fn d_in(&self) -> usize {
        match self {
            Data::Store(s) => s.reader.d(),
            Data::Synth { train, .. } => train.size()[1] as usize,
        }
    }
}

/// Training options shared by `train` and `sweep`; each overrides the TOML config.
#[derive(Args, Clone)]
pub struct TrainFlags {
    /// TOML config (every field optional; see docs/sae.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// opensae, topk, batchtopk or relu.
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Latents (1 or more).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub d_sae: Option<usize>,
    /// Active latents per frame, 1 to d_sae (topk, batchtopk, optional for opensae).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub k: Option<usize>,
    /// opensae / relu sparsity coefficient (0 or more).
    #[arg(long, value_parser = non_negative)]
    pub l1_coef: Option<f64>,
    /// Optimiser steps (1 or more).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub steps: Option<usize>,
    /// Frames per step (1 or more).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub batch_size: Option<usize>,
    /// Peak learning rate (greater than 0).
    #[arg(long, value_parser = positive)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// cosine or constant.
    #[arg(long, value_parser = parse_decay)]
    pub decay: Option<Decay>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// none, seed or anthropic.
    #[arg(long)]
    pub resample: Option<Resample>,
    #[arg(long)]
    pub dead_window_frames: Option<u64>,
    #[arg(long)]
    pub normalize_inputs: bool,
    /// opensae exactly as the seed notebook trains it (incl. every-250-steps resampling).
    #[arg(long)]
    pub seed_compat: bool,
    #[arg(long)]
    pub log_every: Option<usize>,
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, value_parser = crate::device::device_spec)]
    pub device: Option<String>,
    /// f32, or bf16 for the encoder product in mixed precision (CUDA).
    #[arg(long)]
    pub compute_dtype: Option<ComputeDType>,
}

/// A number for a value parser: finite (a fraction also), and accepted by `ok`, else an error
/// that says what `what` it should be.
fn parse_number(s: &str, ok: impl Fn(f64) -> bool, what: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && ok(v) => Ok(v),
        _ => Err(format!("{s:?} is not {what}")),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    parse_number(s, |v| v > 0.0, "a number greater than 0")
}

fn fraction(s: &str) -> Result<f64, String> {
    parse_number(s, |v| v > 0.0 && v < 1.0, "a fraction between 0 and 1 (exclusive)")
}

fn non_negative(s: &str) -> Result<f64, String> {
    parse_number(s, |v| v >= 0.0, "a number of 0 or more")
}

fn parse_decay(s: &str) -> Result<Decay> {
    match s {
        "cosine" => Ok(Decay::Cosine),
        "constant" => Ok(Decay::Constant),
        _ => bail!("unknown decay {s:?}: use cosine or constant"),
    }
}

impl TrainFlags {
    fn config(&self, d_in: usize) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(p) => TrainConfig::from_toml_file(p)?,
            None => TrainConfig::default(),
        };
        c.sae.d_in = d_in;
        if let Some(a) = self.arch {
            c.sae.arch = a;
            if a == Arch::Relu {
                c.sae.k = None;
            }
        }
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),*) => { $(if let Some(v) = self.$flag.clone() { c.$($field).+ = v; })* };
        }
        set!(d_sae => sae.d_sae, l1_coef => sae.l1_coef, steps => steps, batch_size => batch_size, lr => lr,
             warmup_steps => warmup_steps, decay => decay, seed => seed, dead_window_frames => dead_window_frames,
             log_every => log_every, checkpoint_every => checkpoint_every, device => device,
             compute_dtype => sae.compute_dtype);
        if let Some(k) = self.k {
            c.sae.k = Some(k);
        }
        if let Some(r) = self.resample {
            c.resample = Some(r);
        }
        c.normalize_inputs |= self.normalize_inputs;
        c.seed_compat |= self.seed_compat;
        c.validate()?;
        Ok(c)
    }
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    flags: TrainFlags,
    #[command(flatten)]
    data: DataArgs,
    /// Output folder: the SAE, logs, plots and the training checkpoint.
    #[arg(short, long)]
    out: PathBuf,
    /// Continue from OUT/training_state (the checkpoint's config is used).
    #[arg(long)]
    resume: bool,
    /// Train into OUT even when it already holds files (an earlier SAE there is replaced).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Evaluate on the held-out items after training (into OUT/eval).
    #[arg(long)]
    eval: bool,
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args)]
pub struct SweepArgs {
    #[command(flatten)]
    flags: TrainFlags,
    #[command(flatten)]
    data: DataArgs,
    /// Comma-separated widths (latents).
    #[arg(long, value_delimiter = ',', required = true)]
    widths: Vec<usize>,
    /// Comma-separated k values.
    #[arg(long, value_delimiter = ',', required = true)]
    ks: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    #[arg(short, long)]
    out: PathBuf,
    /// Run only grid point INDEX (a Slurm array task), without collecting.
    #[arg(long)]
    index: Option<usize>,
    /// Only print the number of grid points.
    #[arg(long)]
    count: bool,
    /// Only collect finished runs into the table and plots.
    #[arg(long)]
    collect: bool,
    #[arg(long, default_value_t = 200_000)]
    max_eval_frames: usize,
    /// Run the sweep in OUT even when it holds files that are not a sweep's.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    fidelity: FidelityArgs,
}

pub fn run(command: SaeCommand) -> Result<()> {
    match command {
        SaeCommand::Train(a) => train_cmd(*a),
        SaeCommand::Eval { sae, data, out, max_frames, device, force, fidelity } => {
            let device = crate::device::parse_device(&device)?;
            let out = out.unwrap_or_else(|| sae.join("eval"));
            OutputDir { alternative: " with --out", ..OutputDir::new(&out, "evaluation results", force) }.claim()?;
            let m = eval_sae(&sae, &data.open()?, max_frames, &out, device, &fidelity)?;
            println!("{}", serde_json::to_string_pretty(&summary(&m))?);
            Ok(())
        }
        SaeCommand::Sweep(a) => sweep_cmd(*a),
        SaeCommand::Export { sae, format, out, force } => {
            refuse_in_place(&sae, &out, "the export")?;
            OutputDir::new(&out, "the exported SAE", force).claim()?;
            checkpoint::export(&sae, &out, format)?;
            eprintln!("exported {} -> {} ({format:?})", sae.display(), out.display());
            Ok(())
        }
    }
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    if !a.resume {
        let alternative = if a.out.join(checkpoint::TRAINING_STATE_DIR).is_dir() {
            " (or pass --resume to continue the training saved there)"
        } else {
            ""
        };
        OutputDir { alternative, ..OutputDir::new(&a.out, "an SAE", a.force) }.claim()?;
    }
    let data = a.data.open()?;
    let cfg = if a.resume {
        checkpoint::load_state_config(&a.out.join(checkpoint::TRAINING_STATE_DIR))?
    } else {
        a.flags.config(data.d_in())?
    };
    let mut source = data.train_source(a.data.data_seed ^ cfg.seed)?;
    let opts = TrainOptions { out_dir: a.out.clone(), resume: a.resume, progress: !a.no_progress, stop_after: None };
    let r = train(cfg, source.as_mut(), &opts)?;
    if let Some(last) = r.log.last() {
        eprintln!(
            "trained {} steps: loss {:.5}, FVU {:.4}, L0 {:.1}, dead {:.1}% -> {}",
            last.step,
            last.loss,
            last.fvu,
            last.l0,
            100.0 * last.dead_frac,
            a.out.display()
        );
    }
    if a.eval {
        let no_model = FidelityArgs { model: None, labels: None, fidelity_items: 0 };
        let m = eval_sae(&a.out, &data, 200_000, &a.out.join("eval"), r.sae.device(), &no_model)?;
        println!("{}", serde_json::to_string_pretty(&summary(&m))?);
    }
    Ok(())
}

fn eval_sae(
    dir: &Path,
    data: &Data,
    max_frames: usize,
    out: &Path,
    device: Device,
    fidelity: &FidelityArgs,
) -> Result<EvalMetrics> {
    let (sae, scale) = checkpoint::load_sae(dir, device)?;
    anyhow::ensure!(
        sae.cfg.d_in == data.d_in(),
        "{}: SAE takes d_in {}, the data has {}",
        dir.display(),
        sae.cfg.d_in,
        data.d_in()
    );
    let mut m = evaluate(&sae, scale, data.test_items()?.as_ref(), max_frames, Some(out))?;
    m.fidelity = fidelity.measure(dir, data, device)?;
    if m.fidelity.is_some() {
        crate::sae::eval::write_metrics(&m, out)?;
    }
    Ok(m)
}

/// The metrics without the per-item list, for printing.
fn summary(m: &EvalMetrics) -> serde_json::Value {
    let mut v = serde_json::to_value(m).unwrap_or_default();
    if let Some(w) = v.get_mut("worst_items").and_then(|w| w.as_array_mut()) {
        w.truncate(5);
    }
    if let Some(f) = v.get_mut("fidelity").and_then(|f| f.as_object_mut()) {
        f.remove("per_item");
    }
    v
}

fn sweep_cmd(a: SweepArgs) -> Result<()> {
    let points = sweep::grid(&a.widths, &a.ks, &a.seeds);
    if a.count {
        println!("{}", points.len());
        return Ok(());
    }
    OutputDir { resumable: &sweep::is_sweep_dir, ..OutputDir::new(&a.out, "a sweep", a.force) }.claim()?;
    if !a.collect {
        let data = a.data.open()?;
        let chosen: Vec<&SweepPoint> = match a.index {
            Some(i) => {
                vec![points.get(i).with_context(|| format!("--index {i}: the grid has {} points", points.len()))?]
            }
            None => points.iter().collect(),
        };
        for p in chosen {
            let dir = sweep::run_dir(&a.out, p);
            if let Some(m) = sweep::read_metrics(&dir) {
                // A run evaluated without --model only needs its fidelity added.
                if a.fidelity.model.is_none() || m.fidelity.is_some() {
                    eprintln!("{}: done already", dir.display());
                } else {
                    eprintln!("{}: trained already; measuring downstream fidelity", dir.display());
                    let device = crate::device::parse_device(a.flags.device.as_deref().unwrap_or("auto"))?;
                    eval_sae(&dir, &data, a.max_eval_frames, &dir.join("eval"), device, &a.fidelity)?;
                }
                continue;
            }
            let mut cfg = a.flags.config(data.d_in())?;
            cfg.sae.d_sae = p.width;
            cfg.sae.k = Some(p.k);
            cfg.seed = p.seed;
            cfg.validate()?;
            eprintln!("sweep run {} ({} latents, k {}, seed {})", p.dir_name(), p.width, p.k, p.seed);
            let mut source = data.train_source(a.data.data_seed ^ p.seed)?;
            let resume = dir.join(checkpoint::TRAINING_STATE_DIR).exists();
            let opts = TrainOptions { out_dir: dir.clone(), resume, progress: true, stop_after: None };
            let r = train(cfg, source.as_mut(), &opts)?;
            eval_sae(&dir, &data, a.max_eval_frames, &dir.join("eval"), r.sae.device(), &a.fidelity)?;
        }
        if a.index.is_some() {
            return Ok(());
        }
    }
    let rows = sweep::collect(&a.out, &points)?;
    let done = rows.iter().filter(|r| r.metrics.is_some()).count();
    eprintln!("sweep: {done}/{} runs finished -> {}", rows.len(), a.out.join("sweep.csv").display());
    Ok(())
}
