//! Greedy Whisper transcription of whole clips: each clip is cut into consecutive 30 s windows
//! (no timestamp-based seeking), the windows of all clips are encoded and decoded in batches,
//! and each clip's tokens are the concatenation of its windows' tokens.

use anyhow::Result;
use serde::Serialize;

use crate::mel::{windows, MelBatch};
use crate::models::whisper_generation::Task;
use crate::models::AudioModel;

/// Generated tokens per window when none are asked for: half the decoder's context, as
/// openai-whisper's `DecodingOptions.sample_len` defaults to.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 224;
/// 30 s windows encoded and decoded together.
pub const DEFAULT_BATCH_WINDOWS: usize = 8;

#[derive(Clone, Debug)]
pub struct TranscribeOptions {
    pub max_new_tokens: usize,
    /// Multilingual checkpoints only; English when None.
    pub language: Option<String>,
    pub task: Task,
    pub batch_windows: usize,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            language: None,
            task: Task::Transcribe,
            batch_windows: DEFAULT_BATCH_WINDOWS,
        }
    }
}

/// One clip's greedy transcription.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transcription {
    /// Generated ids after the prompt, end-of-text left out, windows concatenated.
    pub token_ids: Vec<i64>,
    pub text: String,
}

/// Transcribes 16 kHz mono clips with a Whisper model loaded with its decoder.
pub fn transcribe(model: &AudioModel, clips: &[&[f32]], opts: &TranscribeOptions) -> Result<Vec<Transcription>> {
    let (encoder, generator) = model.whisper_generator()?;
    let prompt = generator.spec.prompt(opts.language.as_deref(), opts.task)?;
    // (clip, window) in clip order; an empty clip is one empty window.
    let jobs: Vec<(usize, &[f32])> = clips
        .iter()
        .enumerate()
        .flat_map(|(c, samples)| {
            let w = windows(samples);
            let w = if w.is_empty() { vec![&samples[..0]] } else { w };
            w.into_iter().map(move |w| (c, w))
        })
        .collect();
    let mut tokens: Vec<Vec<i64>> = vec![Vec::new(); clips.len()];
    for batch in jobs.chunks(opts.batch_windows.max(1)) {
        let audio: Vec<&[f32]> = batch.iter().map(|(_, w)| *w).collect();
        let MelBatch { features, .. } = model.mel.compute_batch(&audio);
        let encoded = tch::no_grad(|| encoder.forward(&features))?;
        for ((clip, _), ids) in batch.iter().zip(generator.greedy(&encoded, &prompt, opts.max_new_tokens)?) {
            tokens[*clip].extend(ids);
        }
    }
    tokens.into_iter().map(|token_ids| Ok(Transcription { text: generator.decode(&token_ids)?, token_ids })).collect()
}
