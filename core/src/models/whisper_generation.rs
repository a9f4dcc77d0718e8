//! Whisper as a generator: the special tokens and suppression lists a checkpoint asks for, the
//! transcription prompt, greedy decoding without timestamps and teacher-forced logits.
//!
//! What greedy parity with transformers' `WhisperForConditionalGeneration.generate` and
//! CTranslate2's `Whisper.generate` needs (docs/whisper.md):
//! - prompt `<|startoftranscript|>` [`<|lang|>` `<|task|>`] `<|notimestamps|>`; the language
//!   and task tokens only for multilingual checkpoints;
//! - the checkpoint's suppressed tokens get −inf at every step, and its begin-suppressed tokens
//!   (the blank " " and end-of-text) at the first generated step only;
//! - decoding stops at end-of-text or when the learned position table is full.
//!
//! The ids come from the checkpoint's files, never from constants: transformers checkpoints
//! from `generation_config.json`; CTranslate2 ones from `tokenizer.json` plus the
//! `suppress_ids` / `suppress_ids_begin` / `lang_ids` lists of their `config.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;
use tch::{Kind, Tensor};
use tokenizers::Tokenizer;

use super::read_json;
use super::whisper_decoder::WhisperDecoder;

/// openai-whisper's rule (`Whisper.is_multilingual`): English-only checkpoints have 51864
/// tokens, multilingual ones 51865 or more.
const MULTILINGUAL_MIN_VOCAB: i64 = 51865;

/// What the decoder is asked to do (multilingual checkpoints only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Transcribe,
    Translate,
}

impl std::str::FromStr for Task {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "transcribe" => Ok(Task::Transcribe),
            "translate" => Ok(Task::Translate),
            _ => bail!("unknown task {s:?}: use transcribe or translate"),
        }
    }
}

/// The special ids and suppression lists of one checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationSpec {
    pub start_of_transcript: i64,
    pub end_of_text: i64,
    pub no_timestamps: i64,
    pub multilingual: bool,
    /// `"en"` -> id of `<|en|>`.
    pub languages: BTreeMap<String, i64>,
    pub transcribe: Option<i64>,
    pub translate: Option<i64>,
    /// Never generated.
    pub suppress: Vec<i64>,
    /// Not generated at the first step.
    pub suppress_at_begin: Vec<i64>,
}

/// The fields of transformers' Whisper `generation_config.json` that decoding uses.
#[derive(Deserialize)]
struct HfGenerationConfig {
    decoder_start_token_id: Option<i64>,
    eos_token_id: Option<serde_json::Value>,
    no_timestamps_token_id: Option<i64>,
    is_multilingual: Option<bool>,
    #[serde(default)]
    lang_to_id: BTreeMap<String, i64>,
    #[serde(default)]
    task_to_id: BTreeMap<String, i64>,
    suppress_tokens: Option<Vec<i64>>,
    begin_suppress_tokens: Option<Vec<i64>>,
}

/// The decoding lists of a CTranslate2 Whisper `config.json`.
#[derive(Deserialize)]
struct Ct2Config {
    #[serde(default)]
    suppress_ids: Vec<i64>,
    #[serde(default)]
    suppress_ids_begin: Vec<i64>,
    #[serde(default)]
    lang_ids: Vec<i64>,
}

/// `<|en|>` -> `en`.
fn language_code(token: &str) -> Option<&str> {
    token.strip_prefix("<|")?.strip_suffix("|>")
}

impl GenerationSpec {
    /// From a transformers checkpoint's `generation_config.json`.
    pub fn from_hf(dir: &Path, vocab_size: i64) -> Result<Self> {
        let path = dir.join("generation_config.json");
        let cfg: HfGenerationConfig = read_json(&path)?;
        let need = |v: Option<i64>, field: &str| {
            v.with_context(|| {
                format!(
                    "{}: no {field}; Whisper generation needs the fields of a Whisper generation config",
                    path.display()
                )
            })
        };
        let end_of_text = match cfg.eos_token_id {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::Array(a)) => a.first().and_then(|x| x.as_i64()),
            _ => None,
        };
        let languages =
            cfg.lang_to_id.iter().filter_map(|(token, &id)| Some((language_code(token)?.to_string(), id))).collect();
        Ok(GenerationSpec {
            start_of_transcript: need(cfg.decoder_start_token_id, "decoder_start_token_id")?,
            end_of_text: need(end_of_text, "eos_token_id")?,
            no_timestamps: need(cfg.no_timestamps_token_id, "no_timestamps_token_id")?,
            multilingual: cfg.is_multilingual.unwrap_or(vocab_size >= MULTILINGUAL_MIN_VOCAB),
            languages,
            transcribe: cfg.task_to_id.get("transcribe").copied(),
            translate: cfg.task_to_id.get("translate").copied(),
            suppress: cfg.suppress_tokens.unwrap_or_default(),
            suppress_at_begin: cfg.begin_suppress_tokens.unwrap_or_default(),
        })
    }

    /// From a CTranslate2 checkpoint: special tokens by name from `tokenizer.json`, lists from
    /// `config.json`.
    pub fn from_ct2(dir: &Path, tokenizer: &Tokenizer, vocab_size: i64) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg: Ct2Config = read_json(&cfg_path)?;
        let id = |token: &str| {
            tokenizer.token_to_id(token).map(i64::from).with_context(|| {
                format!("{}: the tokenizer has no {token} token", dir.join("tokenizer.json").display())
            })
        };
        let languages = cfg
            .lang_ids
            .iter()
            .filter_map(|&i| Some((language_code(&tokenizer.id_to_token(u32::try_from(i).ok()?)?)?.to_string(), i)))
            .collect();
        Ok(GenerationSpec {
            start_of_transcript: id("<|startoftranscript|>")?,
            end_of_text: id("<|endoftext|>")?,
            no_timestamps: id("<|notimestamps|>")?,
            multilingual: vocab_size >= MULTILINGUAL_MIN_VOCAB,
            languages,
            transcribe: id("<|transcribe|>").ok(),
            translate: id("<|translate|>").ok(),
            suppress: cfg.suppress_ids,
            suppress_at_begin: cfg.suppress_ids_begin,
        })
    }

    /// The decoder prompt. English-only checkpoints take no language or task token (and refuse a
    /// language other than English); multilingual ones default to English transcription.
    pub fn prompt(&self, language: Option<&str>, task: Task) -> Result<Vec<i64>> {
        if !self.multilingual {
            ensure!(
                language.is_none_or(|l| l == "en"),
                "this Whisper checkpoint is English-only: --language {} is not available",
                language.unwrap_or_default()
            );
            ensure!(task == Task::Transcribe, "this Whisper checkpoint is English-only: it cannot translate");
            return Ok(vec![self.start_of_transcript, self.no_timestamps]);
        }
        let language = language.unwrap_or("en");
        let lang = *self.languages.get(language).with_context(|| {
            let known: Vec<&str> = self.languages.keys().map(String::as_str).collect();
            format!("unknown language {language:?}; this checkpoint knows {}", known.join(", "))
        })?;
        let task = match task {
            Task::Transcribe => self.transcribe.context("the checkpoint has no <|transcribe|> token")?,
            Task::Translate => self.translate.context("the checkpoint has no <|translate|> token")?,
        };
        Ok(vec![self.start_of_transcript, lang, task, self.no_timestamps])
    }
}

/// Decoder, special ids and (when the checkpoint has one) tokenizer.
pub struct WhisperGenerator {
    pub decoder: WhisperDecoder,
    pub spec: GenerationSpec,
    tokenizer: Option<Tokenizer>,
    tokenizer_path: PathBuf,
}

/// Additive mask `[vocab]`: −inf at `ids`, 0 elsewhere (ids outside the vocabulary are ignored).
fn suppression_mask(ids: &[i64], vocab: i64, like: &Tensor) -> Tensor {
    let mask = Tensor::zeros([vocab], (Kind::Float, like.device()));
    let ids: Vec<i64> = ids.iter().copied().filter(|&i| (0..vocab).contains(&i)).collect();
    if ids.is_empty() {
        return mask;
    }
    let index = Tensor::from_slice(&ids).to_device(like.device());
    mask.index_fill(0, &index, f64::NEG_INFINITY)
}

impl WhisperGenerator {
    pub fn new(
        decoder: WhisperDecoder,
        spec: GenerationSpec,
        tokenizer: Option<Tokenizer>,
        tokenizer_path: PathBuf,
    ) -> Self {
        WhisperGenerator { decoder, spec, tokenizer, tokenizer_path }
    }

    /// Reads `tokenizer.json` in `dir` if there is one.
    pub fn read_tokenizer(dir: &Path) -> Result<Option<Tokenizer>> {
        let path = dir.join("tokenizer.json");
        if !path.exists() {
            return Ok(None);
        }
        Tokenizer::from_file(&path).map(Some).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let tok = self.tokenizer.as_ref().with_context(|| {
            format!("{}: no tokenizer, so token ids cannot be turned into text", self.tokenizer_path.display())
        })?;
        let ids: Vec<u32> = ids.iter().filter_map(|&i| u32::try_from(i).ok()).collect();
        tok.decode(&ids, true).map_err(|e| anyhow::anyhow!("decoding token ids: {e}"))
    }

    /// Token ids of `text` (no special tokens): a reference transcript for teacher forcing.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let tok = self
            .tokenizer
            .as_ref()
            .with_context(|| format!("{}: no tokenizer to encode transcripts", self.tokenizer_path.display()))?;
        let enc = tok.encode(text, false).map_err(|e| anyhow::anyhow!("tokenizing {text:?}: {e}"))?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Greedy decoding for each row of `encoder_out` `[B, S, d]` after `prompt`; returns the
    /// generated ids of each row without end-of-text. At most `max_new` tokens per row, and no
    /// more than the position table holds.
    pub fn greedy(&self, encoder_out: &Tensor, prompt: &[i64], max_new: usize) -> Result<Vec<Vec<i64>>> {
        tch::no_grad(|| {
            let device = encoder_out.device();
            let batch = encoder_out.size()[0];
            let vocab = self.decoder.config.vocab_size;
            let max_new = max_new.min((self.decoder.config.max_target_positions as usize).saturating_sub(prompt.len()));
            let always = suppression_mask(&self.spec.suppress, vocab, encoder_out);
            let at_begin = &always + suppression_mask(&self.spec.suppress_at_begin, vocab, encoder_out);
            let mut state = self.decoder.start(encoder_out);
            let mut input = Tensor::from_slice(prompt).to_device(device).view([1, -1]).repeat([batch, 1]);
            let mut out: Vec<Vec<i64>> = vec![Vec::new(); batch as usize];
            // Rows of the running batch -> rows of `out`; finished rows are dropped from the state.
            let mut active: Vec<usize> = (0..batch as usize).collect();
            for step in 0..max_new {
                let logits = self.decoder.forward(&input, &mut state)?.select(1, -1).to_kind(Kind::Float);
                let logits = logits + if step == 0 { &at_begin } else { &always };
                let next = Vec::<i64>::try_from(logits.argmax(-1, false).to_device(tch::Device::Cpu))?;
                let mut keep = Vec::with_capacity(active.len());
                for (row, (&token, &dest)) in next.iter().zip(&active).enumerate() {
                    if token != self.spec.end_of_text {
                        out[dest].push(token);
                        keep.push(row as i64);
                    }
                }
                if keep.is_empty() {
                    break;
                }
                if keep.len() < active.len() {
                    state.select(&Tensor::from_slice(&keep).to_device(device));
                    active = keep.iter().map(|&r| active[r as usize]).collect();
                }
                let tokens: Vec<i64> = active.iter().map(|&dest| *out[dest].last().expect("just pushed")).collect();
                input = Tensor::from_slice(&tokens).to_device(device).view([-1, 1]);
            }
            Ok(out)
        })
    }

    /// Teacher forcing: f32 logits `[B, L + 1, vocab]` where row `i` of item `b` is the next-token
    /// distribution after `prompt` and `tokens[b][..i]` (row `len_b` predicts what follows the
    /// whole sequence, e.g. end-of-text); `L` is the longest sequence, and rows past an item's
    /// own length are padding. One pass over the right-padded batch.
    pub fn forced_logits(&self, encoder_out: &Tensor, prompt: &[i64], tokens: &[Vec<i64>]) -> Result<Tensor> {
        tch::no_grad(|| {
            let longest = tokens.iter().map(Vec::len).max().unwrap_or(0);
            let rows: Vec<i64> = tokens
                .iter()
                .flat_map(|t| {
                    let pad = std::iter::repeat_n(self.spec.end_of_text, longest - t.len());
                    prompt.iter().copied().chain(t.iter().copied()).chain(pad)
                })
                .collect();
            let width = (prompt.len() + longest) as i64;
            let ids = Tensor::from_slice(&rows).to_device(encoder_out.device()).view([tokens.len() as i64, width]);
            let mut state = self.decoder.start(encoder_out);
            let logits = self.decoder.forward(&ids, &mut state)?;
            Ok(logits.narrow(1, prompt.len() as i64 - 1, longest as i64 + 1).to_kind(Kind::Float))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(multilingual: bool) -> GenerationSpec {
        GenerationSpec {
            start_of_transcript: 50257,
            end_of_text: 50256,
            no_timestamps: 50362,
            multilingual,
            languages: [("en".to_string(), 50258), ("de".to_string(), 50260)].into(),
            transcribe: Some(50358),
            translate: Some(50357),
            suppress: vec![],
            suppress_at_begin: vec![],
        }
    }

    #[test]
    fn english_only_prompt_has_no_language_or_task() {
        assert_eq!(spec(false).prompt(None, Task::Transcribe).unwrap(), [50257, 50362]);
        assert_eq!(spec(false).prompt(Some("en"), Task::Transcribe).unwrap(), [50257, 50362]);
        assert!(spec(false).prompt(Some("de"), Task::Transcribe).is_err());
        assert!(spec(false).prompt(None, Task::Translate).is_err());
    }

    #[test]
    fn multilingual_prompt_names_language_and_task() {
        assert_eq!(spec(true).prompt(None, Task::Transcribe).unwrap(), [50257, 50258, 50358, 50362]);
        assert_eq!(spec(true).prompt(Some("de"), Task::Translate).unwrap(), [50257, 50260, 50357, 50362]);
        let err = spec(true).prompt(Some("xx"), Task::Transcribe).unwrap_err().to_string();
        assert!(err.contains("\"xx\"") && err.contains("de, en"), "{err}");
    }

    #[test]
    fn suppression_mask_ignores_ids_outside_the_vocabulary() {
        let like = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu));
        let m = Vec::<f32>::try_from(suppression_mask(&[1, 3, 99, -1], 5, &like)).unwrap();
        assert_eq!(m, [0.0, f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0]);
    }
}
