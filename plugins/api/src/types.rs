//! The values that cross the boundary as JSON: what the host knows about the store, its items,
//! the SAEs, log-mel patches and model generations. Bulk numbers (frames, codes, atoms, mel
//! values, logits) travel beside them as `f32` arrays, row-major.

use serde::{Deserialize, Serialize};

/// A plugin's identity, as `audiosae plugins list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
}

/// Timing of the frames of a layer: frame `i` covers `[offset_s + i*hop_s, offset_s + (i+1)*hop_s)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameTiming {
    pub hop_s: f64,
    pub offset_s: f64,
}

impl FrameTiming {
    pub fn start(&self, i: usize) -> f64 {
        self.offset_s + i as f64 * self.hop_s
    }

    pub fn center(&self, i: usize) -> f64 {
        self.offset_s + (i as f64 + 0.5) * self.hop_s
    }
}

/// The activation store the analysis runs over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// Store directory.
    pub path: String,
    /// Model id and layer the frames were taken from, e.g. `encoder.3`.
    pub model: String,
    pub layer: String,
    /// Features per frame (the SAE's `d_in`).
    pub d: usize,
    /// Timing of row `i` of an item before the item's `time_offset_s`.
    pub timing: FrameTiming,
    pub n_items: usize,
    pub n_frames: usize,
    /// Label tiers available through [`crate::AnalysisContext::labels`] (`phones`, `words`);
    /// empty when the run has no labelled corpus.
    pub label_tiers: Vec<String>,
}

/// One item (clip or window of a clip) of the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemInfo {
    pub id: String,
    /// Source audio file.
    pub audio: String,
    pub duration_s: f64,
    /// Start of the item inside `audio` (windows of long clips).
    pub time_offset_s: f64,
    pub n_frames: usize,
    /// Index of the item's first frame among all frames of the store.
    pub first_frame: usize,
    /// Timing of the item's rows in seconds of `audio` (offset included).
    pub timing: FrameTiming,
    /// The clip's reference transcript, when the run has a labelled corpus that has one.
    #[serde(default)]
    pub transcript: Option<String>,
}

/// One loaded SAE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaeInfo {
    /// Checkpoint directory.
    pub path: String,
    /// `topk`, `batchtopk`, `relu`, `opensae`.
    pub arch: String,
    pub d_in: usize,
    pub d_sae: usize,
}

/// Log-mel of a time window of an item: `values` is `[n_mels, n_frames]`, row-major, frame `j`
/// centred on `t0_s + j * hop_s` seconds of the item's audio.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogMelPatch {
    pub n_mels: usize,
    pub n_frames: usize,
    pub t0_s: f64,
    pub hop_s: f64,
    #[serde(skip)]
    pub values: Vec<f32>,
}

/// The audio embeddings a model feeds its language model for a clip (Qwen2-Audio: the
/// projector output), `values` is `[rows, d]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioEmbeddings {
    pub rows: usize,
    pub d: usize,
    pub timing: FrameTiming,
    #[serde(skip)]
    pub values: Vec<f32>,
}

/// Greedy generation from given audio embeddings (`[rows, d]`, passed beside the request).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationRequest {
    /// The clip the embeddings were computed from (the prompt's audio slot).
    pub clip: String,
    /// User prompt; `None` for the host's default.
    pub prompt: Option<String>,
    pub max_new_tokens: usize,
    pub rows: usize,
    pub d: usize,
    /// Teacher forcing: when not empty, the host feeds these tokens instead of its argmax
    /// choices (ignoring `max_new_tokens`) and returns the next-token logits at each of them, so
    /// that runs with different embeddings are compared step by step on the same tokens.
    #[serde(default)]
    pub forced_tokens: Vec<i64>,
}

/// What generation produced: tokens, text and `logits` `[steps, vocab]` of every step (row `i`:
/// the next-token logits after the prompt and `tokens[..i]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub tokens: Vec<i64>,
    pub text: String,
    pub vocab: usize,
    #[serde(skip)]
    pub logits: Vec<f32>,
}
