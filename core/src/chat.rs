//! Qwen2-Audio Instruct prompts (spec §2.2) and their tokenisation with `<|AUDIO|>` expansion.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tokenizers::Tokenizer;

pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant.";
pub const AUDIO_TOKEN: &str = "<|AUDIO|>";
pub const AUDIO_BOS: &str = "<|audio_bos|>";
pub const AUDIO_EOS: &str = "<|audio_eos|>";
pub const IM_END: &str = "<|im_end|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Renders the processor's default chat template for one user turn holding `n_audio` audio
/// items followed by `text`, with the generation prompt appended.
pub fn instruct_prompt(system: Option<&str>, text: &str, n_audio: usize) -> String {
    let mut s =
        format!("<|im_start|>system\n{}<|im_end|>\n<|im_start|>user\n", system.unwrap_or(DEFAULT_SYSTEM_PROMPT));
    for k in 1..=n_audio {
        s.push_str(&format!("Audio {k}: {AUDIO_BOS}{AUDIO_TOKEN}{AUDIO_EOS}\n"));
    }
    s.push_str(text);
    s.push_str("<|im_end|>\n<|im_start|>assistant\n");
    s
}

/// `tokenizer.json` plus the special ids generation needs.
pub struct PromptTokenizer {
    tokenizer: Tokenizer,
    pub audio_token_id: i64,
}

impl PromptTokenizer {
    pub fn from_dir(dir: &Path, audio_token_id: i64) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        match tokenizer.token_to_id(AUDIO_TOKEN) {
            Some(id) if id as i64 == audio_token_id => {}
            Some(id) => bail!("{}: {AUDIO_TOKEN} has id {id} but config.json says {audio_token_id}", path.display()),
            None => bail!("{}: tokenizer has no {AUDIO_TOKEN} token", path.display()),
        }
        Ok(PromptTokenizer { tokenizer, audio_token_id })
    }

    pub fn token_id(&self, token: &str) -> Option<i64> {
        self.tokenizer.token_to_id(token).map(i64::from)
    }

    /// Tokenises `prompt` and replaces the i-th `<|AUDIO|>` by `counts[i]` copies of itself.
    pub fn encode_with_audio(&self, prompt: &str, counts: &[usize]) -> Result<Vec<i64>> {
        let enc = self.tokenizer.encode(prompt, false).map_err(|e| anyhow::anyhow!("tokenizing prompt: {e}"))?;
        let mut out = Vec::with_capacity(enc.get_ids().len() + counts.iter().sum::<usize>());
        let mut next = counts.iter();
        for &id in enc.get_ids() {
            let id = i64::from(id);
            if id == self.audio_token_id {
                let n = *next.next().context("the prompt has more <|AUDIO|> placeholders than audio clips")?;
                out.extend(std::iter::repeat_n(id, n));
            } else {
                out.push(id);
            }
        }
        if next.next().is_some() {
            bail!("the prompt has fewer <|AUDIO|> placeholders than audio clips");
        }
        Ok(out)
    }

    /// Plain text (no template, no special tokens) -> ids and the text of each token.
    pub fn encode_text(&self, text: &str) -> Result<(Vec<i64>, Vec<String>)> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| anyhow::anyhow!("tokenizing {text:?}: {e}"))?;
        let ids: Vec<i64> = enc.get_ids().iter().map(|&i| i64::from(i)).collect();
        let pieces = enc
            .get_ids()
            .iter()
            .map(|&i| self.tokenizer.decode(&[i], false).map_err(|e| anyhow::anyhow!("decoding token {i}: {e}")))
            .collect::<Result<Vec<_>>>()?;
        Ok((ids, pieces))
    }

    /// Decodes ids, skipping special tokens and ids the tokenizer does not know (the model's
    /// vocab is padded beyond the tokenizer's, spec §9 pitfall 27).
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let vocab = self.tokenizer.get_vocab_size(true) as i64;
        let ids: Vec<u32> = ids.iter().filter(|&&i| (0..vocab).contains(&i)).map(|&i| i as u32).collect();
        self.tokenizer.decode(&ids, true).map_err(|e| anyhow::anyhow!("decoding: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_matches_the_processor_template() {
        let want = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nAudio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\nWhat's that sound?<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(instruct_prompt(None, "What's that sound?", 1), want);
        assert!(instruct_prompt(Some("S"), "x", 2).contains("Audio 2: <|audio_bos|>"));
    }
}
