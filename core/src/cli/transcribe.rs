//! `audiosae transcribe`: greedy Whisper transcription, one JSON line per file on stdout.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::DeviceArgs;
use crate::models::load_clip;
use crate::models::whisper_generation::Task;
use crate::transcribe::{transcribe, TranscribeOptions, DEFAULT_BATCH_WINDOWS, DEFAULT_MAX_NEW_TOKENS};

#[derive(Args)]
pub struct TranscribeArgs {
    /// Whisper checkpoint (transformers or CTranslate2 directory, or a cached repo id).
    /// Default: the Whisper tiny.en checkpoint installed by the setup script.
    #[arg(long)]
    model: Option<String>,
    #[arg(required = true)]
    audio: Vec<PathBuf>,
    /// Generated tokens per 30 s window at most (the decoder holds 448 with the prompt).
    #[arg(long, default_value_t = DEFAULT_MAX_NEW_TOKENS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_new_tokens: usize,
    /// Language of the speech (multilingual checkpoints; English-only ones accept only en).
    #[arg(long)]
    language: Option<String>,
    /// transcribe or translate (multilingual checkpoints).
    #[arg(long, default_value = "transcribe")]
    task: Task,
    /// 30 s windows encoded and decoded together.
    #[arg(long, default_value_t = DEFAULT_BATCH_WINDOWS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    batch: usize,
    #[command(flatten)]
    dev: DeviceArgs,
}

/// One output line.
#[derive(serde::Serialize)]
struct Line<'a> {
    audio: &'a str,
    token_ids: &'a [i64],
    text: &'a str,
}

pub fn run(args: TranscribeArgs) -> Result<()> {
    let model = args.model.unwrap_or_else(|| super::default_model().to_string_lossy().into_owned());
    let m = args.dev.load(&model, true)?;
    let opts = TranscribeOptions {
        max_new_tokens: args.max_new_tokens,
        language: args.language,
        task: args.task,
        batch_windows: args.batch,
    };
    let bar = ProgressBar::new(args.audio.len() as u64).with_style(
        ProgressStyle::with_template("transcribing [{elapsed_precise}] {wide_bar} {pos}/{len} files ETA {eta}")
            .expect("valid template"),
    );
    if args.audio.len() < 2 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut failed = 0;
    for group in args.audio.chunks(args.batch) {
        // One bad file is reported and skipped; the rest of the group still runs.
        let mut loaded = Vec::with_capacity(group.len());
        for path in group {
            match load_clip(path) {
                Ok(samples) => loaded.push((path, samples)),
                Err(e) => {
                    bar.suspend(|| eprintln!("error: {e:#}"));
                    failed += 1;
                }
            }
        }
        let clips: Vec<&[f32]> = loaded.iter().map(|(_, s)| s.as_slice()).collect();
        for ((path, _), t) in loaded.iter().zip(transcribe(&m, &clips, &opts)?) {
            let audio = path.to_string_lossy();
            let line = Line { audio: &audio, token_ids: &t.token_ids, text: &t.text };
            bar.suspend(|| println!("{}", serde_json::to_string(&line).expect("plain data serialises")));
        }
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    if failed > 0 {
        bail!("{failed} of {} files could not be read (see above); the others were transcribed", args.audio.len());
    }
    Ok(())
}
