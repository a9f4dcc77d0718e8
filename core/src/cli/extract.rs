//! `audiosae extract`: corpus -> activation store(s).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use super::DeviceArgs;
use crate::corpus::Corpus;
use crate::extract::{extract, extract_text, ExtractOptions, JobShard, TextExtractOptions, TextLayer};
use crate::models::{LayerSpec, Trim};
use crate::output::OutputDir;
use crate::store::{Manifest, StoreDType};

#[derive(Args)]
pub struct ExtractArgs {
    /// Model directory, or a Hugging Face repo id in the local cache.
    #[arg(long)]
    model: String,
    /// A corpus manifest, a directory (with manifest.json, else its audio files) or a glob.
    #[arg(long)]
    corpus: String,
    /// Comma-separated layers (projector, encoder, encoder.N); one store per layer.
    #[arg(long, value_delimiter = ',')]
    layer: Vec<LayerSpec>,
    /// The store directory; with several layers, the directory of one store per layer.
    #[arg(long)]
    out: PathBuf,
    /// 30 s windows per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Take items i, i+N, ... of the corpus (Slurm job arrays); merge with `audiosae store merge`.
    #[arg(long)]
    shard: Option<JobShard>,
    /// Run the encoder on the whole 30 s window. Default for Whisper, whose outputs depend on the
    /// padding; Qwen2-Audio masks the padding, so trimming it gives the same frames faster.
    #[arg(long, conflicts_with = "fast")]
    exact: bool,
    /// Trim the window to the clip even for Whisper (changes Whisper's outputs).
    #[arg(long)]
    fast: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    dev: DeviceArgs,
}

/// Shard format options shared by `extract` and `extract-text`.
#[derive(Args)]
struct StoreArgs {
    /// f32 or f16 shards.
    #[arg(long, default_value = "f32")]
    store_dtype: StoreDType,
    /// Rows per shard file (default: about 256 MB per shard).
    #[arg(long)]
    shard_rows: Option<usize>,
    /// Write into OUT even when it holds files that are not a store (a store there is resumed).
    #[arg(long)]
    force: bool,
}

impl StoreArgs {
    /// OUT must be new, empty, a store to resume, or (several layers) a folder of stores.
    fn claim(&self, out: &Path) -> Result<()> {
        let resumable = |dir: &Path| {
            Manifest::is_in(dir)
                || std::fs::read_dir(dir)
                    .is_ok_and(|entries| entries.filter_map(|e| e.ok()).any(|e| Manifest::is_in(&e.path())))
        };
        OutputDir { resumable: &resumable, ..OutputDir::new(out, "an activation store", self.force) }.claim()
    }
}

pub fn run(a: ExtractArgs) -> Result<()> {
    a.store.claim(&a.out)?;
    let model = a.dev.load(&a.model, false)?;
    let corpus = Corpus::open(&a.corpus)?;
    let layers = if a.layer.is_empty() { vec![model.default_layer()] } else { a.layer };
    let trim = if a.exact || (!a.fast && !model.fast_is_exact()) { Trim::Exact } else { Trim::Fast };
    let opts = ExtractOptions {
        layers,
        out: a.out,
        batch_size: a.batch_size,
        shard: a.shard,
        trim,
        store_dtype: a.store.store_dtype,
        shard_rows: a.store.shard_rows,
        progress: true,
    };
    let s = extract(&model, &corpus, &opts)?;
    eprintln!(
        "extracted {} clips ({:.1} s of audio) in {:.1} s ({:.1} audio-s/s, {:?} mode); {} already done; stores: {}",
        s.extracted,
        s.audio_s,
        s.seconds,
        s.audio_s / s.seconds.max(1e-9),
        trim,
        s.already_done,
        s.stores.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    if !s.errors.is_empty() {
        for e in &s.errors {
            eprintln!("  skipped {}: {}", e.id, e.error);
        }
        bail!("{} clip(s) skipped; details in {}", s.errors.len(), opts.out.join("errors.jsonl").display());
    }
    Ok(())
}

#[derive(Args)]
pub struct ExtractTextArgs {
    /// A Qwen2-Audio checkpoint (its language model is used).
    #[arg(long)]
    model: String,
    /// Corpus whose transcripts are encoded.
    #[arg(long)]
    corpus: String,
    #[arg(long)]
    out: PathBuf,
    /// `final` (the final normed hidden state), `embed` (the input token embeddings, the space
    /// the audio projector writes into) or N (raw output of decoder layer N).
    #[arg(long, default_value = "final")]
    layer: TextLayer,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    dev: DeviceArgs,
}

pub fn run_text(a: ExtractTextArgs) -> Result<()> {
    a.store.claim(&a.out)?;
    let model = a.dev.load(&a.model, true)?;
    let corpus = Corpus::open(&a.corpus)?;
    let opts = TextExtractOptions {
        layer: a.layer,
        out: a.out,
        store_dtype: a.store.store_dtype,
        shard_rows: a.store.shard_rows,
        progress: true,
    };
    let s = extract_text(&model, &corpus, &opts)?;
    eprintln!(
        "encoded {} transcripts in {:.1} s; {} already done; store: {}",
        s.extracted,
        s.seconds,
        s.already_done,
        opts.out.display()
    );
    Ok(())
}
