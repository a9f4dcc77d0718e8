//! Corpus extraction: batches clips through a model and appends each clip's valid frames to one
//! activation store per layer. Bad files are logged to `errors.jsonl` and skipped; reruns resume.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tch::Tensor;

use crate::corpus::{Corpus, CorpusItem};
use crate::mel::N_SAMPLES;
use crate::models::{AudioModel, LayerSpec, Trim};
use crate::store::{ItemMeta, ModelRef, StoreConfig, StoreDType, StoreWriter};
use crate::timing::FrameTiming;

/// Which part of a corpus a job takes: items `i, i+N, i+2N, ...` of the manifest order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobShard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for JobShard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (i, n) = s.split_once('/').context("--shard takes i/N, e.g. 0/8")?;
        let (index, count): (usize, usize) = (i.parse()?, n.parse()?);
        anyhow::ensure!(count > 0 && index < count, "--shard {s}: need 0 <= i < N");
        Ok(JobShard { index, count })
    }
}

pub struct ExtractOptions {
    pub layers: Vec<LayerSpec>,
    /// The store, or with several layers the directory holding one store per layer.
    pub out: PathBuf,
    /// 30 s windows per forward pass.
    pub batch_size: usize,
    pub shard: Option<JobShard>,
    pub trim: Trim,
    pub store_dtype: StoreDType,
    /// Rows per shard file (default: about 256 MB per shard).
    pub shard_rows: Option<usize>,
    pub progress: bool,
}

/// A clip that could not be extracted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemError {
    pub id: String,
    pub audio: PathBuf,
    pub error: String,
}

#[derive(Debug, Default)]
pub struct ExtractSummary {
    pub extracted: usize,
    /// Already complete in every store (resume).
    pub already_done: usize,
    pub errors: Vec<ItemError>,
    pub audio_s: f64,
    pub seconds: f64,
    pub stores: Vec<PathBuf>,
}

/// Store directory of each layer: `out` itself for one layer, `out/<layer>` for several.
pub fn store_dirs(out: &Path, layers: &[LayerSpec]) -> Vec<PathBuf> {
    if layers.len() == 1 {
        vec![out.to_path_buf()]
    } else {
        layers.iter().map(|l| out.join(l.to_string())).collect()
    }
}

/// The hub revision when the model directory is a cache snapshot (`.../snapshots/<commit>`).
fn model_revision(dir: &Path) -> Option<String> {
    let parent = dir.parent()?;
    (parent.file_name()? == "snapshots").then(|| dir.file_name().unwrap().to_string_lossy().into_owned())
}

pub fn extract(model: &AudioModel, corpus: &Corpus, opts: &ExtractOptions) -> Result<ExtractSummary> {
    let started = Instant::now();
    let dirs = store_dirs(&opts.out, &opts.layers);
    let mut writers = Vec::with_capacity(dirs.len());
    for (dir, &layer) in dirs.iter().zip(&opts.layers) {
        let model_ref = ModelRef { id: model.id.clone(), revision: model_revision(&model.dir) };
        let mut config =
            StoreConfig::new(model_ref, layer.to_string(), model.timing(layer)?, opts.store_dtype, model.dim(layer)?);
        if let Some(rows) = opts.shard_rows {
            config.shard_rows = rows;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let w = StoreWriter::open_or_create(dir, config.clone())?;
        let have = w.config();
        if (have.model.id.as_str(), have.layer.as_str(), have.d)
            != (config.model.id.as_str(), config.layer.as_str(), config.d)
        {
            bail!(
                "{}: holds {} {} (d {}), not {} {} (d {}): use another --out",
                dir.display(),
                have.model.id,
                have.layer,
                have.d,
                config.model.id,
                config.layer,
                config.d
            );
        }
        writers.push(w);
    }

    let selected: Vec<&CorpusItem> = corpus
        .manifest
        .items
        .iter()
        .enumerate()
        .filter(|(i, _)| opts.shard.is_none_or(|s| i % s.count == s.index))
        .map(|(_, it)| it)
        .collect();
    let n_selected = selected.len();
    let todo: Vec<&CorpusItem> =
        selected.into_iter().filter(|it| !writers.iter().all(|w| w.contains(&it.id))).collect();
    let mut summary =
        ExtractSummary { stores: dirs.clone(), already_done: n_selected - todo.len(), ..Default::default() };

    let total_s: f64 = todo.iter().map(|it| it.duration_s).sum();
    let bar = progress_bar(opts.progress, total_s);
    let mut errors_log = ErrorLog::new(&opts.out);
    let mut batch: Vec<(&CorpusItem, Vec<f32>)> = Vec::new();
    let mut windows_in_batch = 0;
    for (k, item) in todo.iter().enumerate() {
        let audio = corpus.audio_path(item);
        match crate::audio::load_audio(&audio) {
            Ok(a) => {
                windows_in_batch += a.samples.len().div_ceil(N_SAMPLES).max(1);
                batch.push((item, a.samples));
            }
            Err(e) => {
                errors_log.push(&mut summary, item, &audio, format!("{e}"))?;
                bar.inc(item.duration_s.round() as u64);
            }
        }
        if windows_in_batch >= opts.batch_size || k + 1 == todo.len() {
            run_batch(model, corpus, opts, &batch, &mut writers, &mut summary, &mut errors_log, &bar)?;
            batch.clear();
            windows_in_batch = 0;
            let rate = summary.audio_s / 3600.0 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{rate:.3} audio-h/s"));
        }
    }
    for w in writers {
        w.finish()?;
    }
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn run_batch(
    model: &AudioModel,
    corpus: &Corpus,
    opts: &ExtractOptions,
    batch: &[(&CorpusItem, Vec<f32>)],
    writers: &mut [StoreWriter],
    summary: &mut ExtractSummary,
    errors: &mut ErrorLog,
    bar: &ProgressBar,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    // Every window of every clip, in order, tagged with its clip.
    let wins: Vec<(usize, &[f32])> = batch
        .iter()
        .enumerate()
        .flat_map(|(i, (_, s))| crate::mel::windows(s).into_iter().map(move |w| (i, w)))
        .collect();
    // outputs[layer][window]
    let mut outputs: Vec<Vec<Tensor>> = opts.layers.iter().map(|_| Vec::new()).collect();
    for chunk in wins.chunks(opts.batch_size.max(1)) {
        let clips: Vec<&[f32]> = chunk.iter().map(|(_, w)| *w).collect();
        let per_layer = model.extract(&clips, &opts.layers, opts.trim)?;
        for (out, layer) in outputs.iter_mut().zip(per_layer) {
            out.extend(layer.into_iter().map(|f| f.frames));
        }
    }
    for (i, (item, samples)) in batch.iter().enumerate() {
        let audio = corpus.audio_path(item);
        let duration_s = samples.len() as f64 / crate::mel::SAMPLE_RATE as f64;
        let mut failed = None;
        for (layer_out, w) in outputs.iter().zip(writers.iter_mut()) {
            if w.contains(&item.id) {
                continue;
            }
            // 30 s windows are exactly 1500 (20 ms) or 750 (40 ms) frames, so concatenating them
            // keeps the layer's FrameTiming valid across the whole clip.
            let parts: Vec<&Tensor> =
                wins.iter().zip(layer_out).filter(|((c, _), _)| *c == i).map(|(_, t)| t).collect();
            let frames = Tensor::cat(&parts, 0);
            let data = Vec::<f32>::try_from(frames.flatten(0, -1))?;
            if let Err(e) = w.append_item(ItemMeta::new(&item.id, &audio, duration_s), &data) {
                // Invalid frames (NaN/Inf) reject this item only; I/O errors stop the job.
                if e.downcast_ref::<crate::store::InvalidItem>().is_none() {
                    return Err(e);
                }
                failed = Some(format!("{e:#}"));
            }
        }
        match failed {
            Some(e) => errors.push(summary, item, &audio, e)?,
            None => {
                summary.extracted += 1;
                summary.audio_s += duration_s;
            }
        }
        bar.inc(item.duration_s.round() as u64);
    }
    Ok(())
}

/// Which language-model representation of the transcripts [`extract_text`] stores. Parsed from
/// `embed`, `final` or a decoder layer number; shown as the store's layer name (`lm.embed`,
/// `lm`, `lm.N`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextLayer {
    /// The input token embeddings (`embed_tokens`): the space the audio projector writes into.
    Embeddings,
    /// Raw output of decoder layer N.
    Decoder(usize),
    /// The final normed hidden state.
    #[default]
    Final,
}

impl std::str::FromStr for TextLayer {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.strip_prefix("lm.").unwrap_or(s) {
            "embed" => Ok(TextLayer::Embeddings),
            "final" | "lm" => Ok(TextLayer::Final),
            n => n
                .parse()
                .map(TextLayer::Decoder)
                .map_err(|_| anyhow::anyhow!("unknown text layer {s:?}: use embed, final or a layer number")),
        }
    }
}

impl std::fmt::Display for TextLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextLayer::Embeddings => write!(f, "lm.embed"),
            TextLayer::Decoder(n) => write!(f, "lm.{n}"),
            TextLayer::Final => write!(f, "lm"),
        }
    }
}

/// Options of [`extract_text`].
pub struct TextExtractOptions {
    pub layer: TextLayer,
    pub out: PathBuf,
    pub store_dtype: StoreDType,
    pub shard_rows: Option<usize>,
    pub progress: bool,
}

/// Token-level hidden states of the language model for every transcript of the corpus (the
/// text side of the audio/text dictionary comparison). Items without a transcript are skipped.
pub fn extract_text(model: &AudioModel, corpus: &Corpus, opts: &TextExtractOptions) -> Result<ExtractSummary> {
    let started = Instant::now();
    let q = model.qwen2_audio()?;
    let lm = q.language_model.as_ref().context("load the model with its language model")?;
    let tok = crate::chat::PromptTokenizer::from_dir(&model.dir, q.config.audio_token_index)?;
    if let TextLayer::Decoder(n) = opts.layer {
        anyhow::ensure!(n < lm.n_layers(), "--layer {n}: the language model has {} layers", lm.n_layers());
    }
    let model_ref = ModelRef { id: model.id.clone(), revision: model_revision(&model.dir) };
    let mut config = StoreConfig::new(
        model_ref,
        opts.layer.to_string(),
        FrameTiming::TOKENS,
        opts.store_dtype,
        lm.config.hidden_size as usize,
    );
    if let Some(rows) = opts.shard_rows {
        config.shard_rows = rows;
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let mut w = StoreWriter::open_or_create(&opts.out, config)?;
    let items: Vec<&CorpusItem> = corpus.manifest.items.iter().filter(|it| !it.transcript.trim().is_empty()).collect();
    let mut summary = ExtractSummary { stores: vec![opts.out.clone()], ..Default::default() };
    let bar = if opts.progress { ProgressBar::new(items.len() as u64) } else { ProgressBar::hidden() };
    for item in items {
        bar.inc(1);
        if w.contains(&item.id) {
            summary.already_done += 1;
            continue;
        }
        let (ids, pieces) = tok.encode_text(item.transcript.trim())?;
        let hidden = tch::no_grad(|| {
            let device = model.device;
            let ids = Tensor::from_slice(&ids).view([1, -1]).to_device(device);
            let embedded = lm.embed(&ids);
            let positions = Tensor::arange(ids.size()[1], (tch::Kind::Int64, device)).view([1, -1]);
            let forward = |keep: &[usize]| {
                lm.forward_keep(&embedded, &positions, &ids.ones_like(), &mut Default::default(), keep)
            };
            let hidden = match opts.layer {
                TextLayer::Embeddings => embedded.shallow_clone(),
                TextLayer::Decoder(n) => forward(&[n]).1.remove(0),
                TextLayer::Final => forward(&[]).0,
            };
            hidden.get(0).to_kind(tch::Kind::Float).to_device(tch::Device::Cpu)
        });
        let data = Vec::<f32>::try_from(hidden.flatten(0, -1))?;
        let meta = ItemMeta::new(&item.id, corpus.audio_path(item), item.duration_s).with_tokens(pieces);
        w.append_item(meta, &data)?;
        summary.extracted += 1;
    }
    w.finish()?;
    bar.finish_and_clear();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn progress_bar(show: bool, total_s: f64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_s.round() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} audio-s  {msg}  ETA {eta}")
            .expect("valid template"),
    );
    bar
}

/// `errors.jsonl` beside the stores: one JSON line per skipped clip, appended across runs.
struct ErrorLog {
    path: PathBuf,
}

impl ErrorLog {
    fn new(out: &Path) -> Self {
        ErrorLog { path: out.join("errors.jsonl") }
    }

    fn push(&mut self, summary: &mut ExtractSummary, item: &CorpusItem, audio: &Path, error: String) -> Result<()> {
        let e = ItemError { id: item.id.clone(), audio: audio.to_path_buf(), error };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening {}", self.path.display()))?;
        writeln!(f, "{}", serde_json::to_string(&e)?)?;
        summary.errors.push(e);
        Ok(())
    }
}
