//! Qwen2-Audio Instruct generation from given audio embeddings: the chat-template prompt, the
//! EOS and pad ids the checkpoint asks for, greedy decoding and teacher-forced next-token logits.
//! Shared by `audiosae generate` and the interventions model runner.

use std::path::Path;

use anyhow::{Context, Result};
use tch::{Device, Tensor};

use super::qwen2_audio::Qwen2Audio;
use super::AudioModel;
use crate::chat::{instruct_prompt, PromptTokenizer, END_OF_TEXT, IM_END};

/// Reads an id or list of ids from `generation_config.json`.
fn generation_ids(dir: &Path, key: &str) -> Option<Vec<i64>> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("generation_config.json")).ok()?).ok()?;
    match v.get(key)? {
        serde_json::Value::Number(n) => n.as_i64().map(|i| vec![i]),
        serde_json::Value::Array(a) => Some(a.iter().filter_map(|x| x.as_i64()).collect()),
        _ => None,
    }
}

/// The user turn of one generation: optional system prompt and the user's text.
pub struct Turn<'a> {
    pub system: Option<&'a str>,
    pub prompt: &'a str,
}

/// Tokenizer and stop/pad ids of a Qwen2-Audio checkpoint.
pub struct InstructChat {
    pub tokenizer: PromptTokenizer,
    eos: Vec<i64>,
    pad: i64,
}

impl InstructChat {
    /// Reads `tokenizer.json`, `generation_config.json` and `config.json` of `m`, which must be
    /// a Qwen2-Audio model.
    pub fn new(m: &AudioModel) -> Result<Self> {
        let q = m.qwen2_audio()?;
        let tokenizer = PromptTokenizer::from_dir(&m.dir, q.config.audio_token_index)?;
        let text_cfg = &q.config.text_config;
        let eos = generation_ids(&m.dir, "eos_token_id")
            .or_else(|| text_cfg.eos_token_id.as_ref().map(|e| e.to_vec()))
            .or_else(|| tokenizer.token_id(IM_END).map(|i| vec![i]))
            .context("no eos_token_id in generation_config.json or config.json")?;
        let pad = generation_ids(&m.dir, "pad_token_id")
            .and_then(|v| v.first().copied())
            .or(text_cfg.pad_token_id)
            .or_else(|| tokenizer.token_id(END_OF_TEXT))
            .unwrap_or(eos[0]);
        Ok(InstructChat { tokenizer, eos, pad })
    }

    /// The ids that end an answer (the first is the one appended to teacher-forced answers).
    pub fn eos(&self) -> &[i64] {
        &self.eos
    }

    /// `[1, T]` prompt ids with `audio_rows` `<|AUDIO|>` slots, followed by `forced` tokens.
    fn input_ids(&self, turn: &Turn, audio_rows: usize, forced: &[i64], device: Device) -> Result<Tensor> {
        let mut ids = self.tokenizer.encode_with_audio(&instruct_prompt(turn.system, turn.prompt, 1), &[audio_rows])?;
        ids.extend_from_slice(forced);
        Ok(Tensor::from_slice(&ids).view([1, -1]).to_device(device))
    }

    /// Greedy new tokens for `audio` `[rows, d]` (the projector output of one clip) in the prompt.
    pub fn generate(&self, q: &Qwen2Audio, turn: &Turn, audio: &Tensor, max_new: usize) -> Result<Vec<i64>> {
        let input_ids = self.input_ids(turn, audio.size()[0] as usize, &[], audio.device())?;
        let gen =
            q.generate(&input_ids, &input_ids.ones_like(), &[audio.shallow_clone()], max_new, &self.eos, self.pad)?;
        Ok(gen.tokens.into_iter().next().unwrap_or_default())
    }

    /// Teacher forcing: f32 logits `[tokens.len(), vocab]` whose row `i` is the next-token
    /// distribution after the prompt and `tokens[..i]`, from one prefill.
    pub fn forced_logits(&self, q: &Qwen2Audio, turn: &Turn, audio: &Tensor, tokens: &[i64]) -> Result<Tensor> {
        let input_ids = self.input_ids(turn, audio.size()[0] as usize, tokens, audio.device())?;
        let logits = q.prefill_logits(&input_ids, &input_ids.ones_like(), &[audio.shallow_clone()])?;
        let t = input_ids.size()[1];
        let n = tokens.len() as i64;
        Ok(logits.get(0).narrow(0, t - 1 - n, n))
    }
}
