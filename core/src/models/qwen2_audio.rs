//! Qwen2-Audio (transformers `Qwen2AudioForConditionalGeneration`, spec §3-§4): the Whisper-style
//! audio tower with key-padding mask and avg-pool, the `multi_modal_projector`, and the Qwen2
//! decoder with audio embeddings merged at the `<|AUDIO|>` positions.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use super::layers::{additive_bias, Linear};
use super::qwen2::{Generation, Qwen2Config, Qwen2Model};
use super::whisper::{conv_out_len, EncoderConfig, WhisperEncoder};
use crate::weights::Weights;

#[derive(Debug, Clone, Deserialize)]
pub struct Qwen2AudioConfig {
    pub audio_config: EncoderConfig,
    pub text_config: Qwen2Config,
    /// `audio_token_index` (v4) or `audio_token_id` (v5); 151646 in the released checkpoints.
    #[serde(alias = "audio_token_id", default = "default_audio_token")]
    pub audio_token_index: i64,
}

fn default_audio_token() -> i64 {
    151646
}

impl Qwen2AudioConfig {
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a Qwen2-Audio config", path.display()))
    }
}

/// Audio-token count for `feat_len` valid mel frames: `floor(ceil(len/2)/2)` (spec §2.3).
pub fn audio_token_count(feat_len: usize) -> usize {
    conv_out_len(feat_len) / 2
}

/// Maps any transformers v4 (on-disk) or v5 (in-memory) key to the canonical names
/// `audio_tower.*`, `multi_modal_projector.*`, `language_model.*` (decoder, no inner `.model`)
/// and `lm_head.weight` (spec §6). With `with_lm` false the decoder is not loaded.
pub fn canonical_name(key: &str, with_lm: bool) -> Option<String> {
    let k = key.strip_prefix("model.").unwrap_or(key);
    if k.starts_with("audio_tower.") || k.starts_with("multi_modal_projector.") {
        return Some(k.to_string());
    }
    if !with_lm {
        return None;
    }
    if k == "lm_head.weight" || k == "language_model.lm_head.weight" {
        return Some("lm_head.weight".into());
    }
    let rest = k.strip_prefix("language_model.")?;
    Some(format!("language_model.{}", rest.strip_prefix("model.").unwrap_or(rest)))
}

/// Audio encoder output of one batch.
pub struct AudioFeatures {
    /// `[B, 750, d_audio]` pooled and normed (`last_hidden_state`).
    pub last_hidden_state: Tensor,
    /// Valid pooled frames per clip (`n`).
    pub valid: Vec<usize>,
}

pub struct Qwen2Audio {
    pub config: Qwen2AudioConfig,
    pub audio_tower: WhisperEncoder,
    projector: Linear,
    pub language_model: Option<Qwen2Model>,
}

impl Qwen2Audio {
    /// Loads the checkpoint in `dir`; `with_lm` false skips the (large) decoder.
    pub fn load(dir: &Path, device: Device, kind: Kind, with_lm: bool) -> Result<Self> {
        let config = Qwen2AudioConfig::from_dir(dir)?;
        let w = Weights::from_safetensors_dir(dir, |k| canonical_name(k, with_lm), device, kind)?;
        let audio_tower = WhisperEncoder::load(&w, "audio_tower", config.audio_config.clone())?;
        let projector = Linear::load(
            &w,
            "multi_modal_projector.linear",
            config.audio_config.d_model,
            config.text_config.hidden_size,
            true,
        )?;
        let language_model = if with_lm {
            Some(Qwen2Model::load(&w, "language_model", "lm_head.weight", config.text_config.clone())?)
        } else {
            None
        };
        Ok(Qwen2Audio { config, audio_tower, projector, language_model })
    }

    /// Additive key-padding bias `[B, 1, 1, p]`: keys at or after the post-conv length
    /// `a = ceil(len/2)` are masked (spec §3.5).
    fn key_bias(&self, feat_lens: &[usize], p: i64, device: Device, kind: Kind) -> Tensor {
        let lens: Vec<i64> = feat_lens.iter().map(|&l| conv_out_len(l) as i64).collect();
        let lens = Tensor::from_slice(&lens).to_device(device).view([-1, 1]);
        let pad = Tensor::arange(p, (Kind::Int64, device)).view([1, p]).ge_tensor(&lens);
        additive_bias(&pad, kind).view([-1, 1, 1, p])
    }

    /// Runs the masked audio tower over `[B, n_mels, F]` features. Returns the pooled and normed
    /// output when `pooled` (else None) and the raw outputs of the encoder layers in `keep`.
    pub fn run_tower(
        &self,
        features: &Tensor,
        feat_lens: &[usize],
        keep: &[usize],
        pooled: bool,
    ) -> Result<(Option<Tensor>, Vec<Tensor>)> {
        tch::no_grad(|| {
            let enc = &self.audio_tower;
            for &k in keep {
                enc.check_layer(k)?;
            }
            let h = enc.embed(features)?;
            let bias = self.key_bias(feat_lens, h.size()[1], features.device(), enc.kind());
            let n = if pooled { enc.n_layers() } else { keep.iter().max().map_or(0, |m| m + 1) };
            let (h, kept) = enc.run_layers(h, Some(&bias), n, keep);
            Ok((pooled.then(|| self.pool_and_norm(&h)), kept))
        })
    }

    /// AvgPool1d(2, 2) over time, then the tower's final LayerNorm (after the pool).
    fn pool_and_norm(&self, h: &Tensor) -> Tensor {
        let p = h.transpose(1, 2).avg_pool1d([2], [2], [0], false, true).transpose(1, 2);
        self.audio_tower.layer_norm.forward(&p)
    }

    /// The pooled and normed tower output when `h` `[B, P, d]` is the raw output of tower layer
    /// `start - 1` (with the same key-padding mask): how an edited layer reaches the projector.
    pub fn resume_tower(&self, h: &Tensor, feat_lens: &[usize], start: usize) -> Result<Tensor> {
        tch::no_grad(|| {
            let enc = &self.audio_tower;
            let bias = self.key_bias(feat_lens, h.size()[1], h.device(), enc.kind());
            let h = enc.run_layers_from(h.shallow_clone(), Some(&bias), start);
            Ok(self.pool_and_norm(&h))
        })
    }

    /// Audio tower: `[B, n_mels, 3000]` features with `feat_lens` valid frames each.
    pub fn encode_audio(&self, features: &Tensor, feat_lens: &[usize]) -> Result<AudioFeatures> {
        let (out, _) = self.run_tower(features, feat_lens, &[], true)?;
        Ok(AudioFeatures {
            last_hidden_state: out.expect("pooled output requested"),
            valid: feat_lens.iter().map(|&l| audio_token_count(l)).collect(),
        })
    }

    /// Raw output of audio-tower layer `layer` (pre-pool, 20 ms frames), masked like the model.
    pub fn encoder_layer(&self, features: &Tensor, feat_lens: &[usize], layer: usize) -> Result<Tensor> {
        Ok(self.run_tower(features, feat_lens, &[layer], false)?.1.remove(0))
    }

    pub fn project(&self, audio_hidden: &Tensor) -> Tensor {
        tch::no_grad(|| self.projector.forward(audio_hidden))
    }

    /// Projector output for each clip, valid rows only: `[n_b, d_text]` each.
    pub fn audio_embeddings(&self, features: &Tensor, feat_lens: &[usize]) -> Result<Vec<Tensor>> {
        let a = self.encode_audio(features, feat_lens)?;
        let proj = self.project(&a.last_hidden_state);
        Ok(a.valid.iter().enumerate().map(|(i, &n)| proj.get(i as i64).narrow(0, 0, n as i64)).collect())
    }

    fn lm(&self) -> Result<&Qwen2Model> {
        self.language_model.as_ref().context("the language model was not loaded (load with with_lm = true)")
    }

    /// Token embeddings with the audio rows scattered into the `<|AUDIO|>` positions in
    /// row-major order (spec §4.1, expanded path).
    pub fn merge_embeddings(&self, input_ids: &Tensor, audio: &[Tensor]) -> Result<Tensor> {
        let lm = self.lm()?;
        tch::no_grad(|| {
            let embeds = lm.embed(input_ids);
            let is_audio = input_ids.eq(self.config.audio_token_index);
            let n_slots = is_audio.sum(Kind::Int64).int64_value(&[]);
            let rows: i64 = audio.iter().map(|a| a.size()[0]).sum();
            ensure!(
                rows == n_slots,
                "audio features and audio tokens do not match: {rows} audio frames for {n_slots} <|AUDIO|> tokens"
            );
            if rows == 0 {
                return Ok(embeds);
            }
            let src = Tensor::cat(audio, 0).to_kind(embeds.kind());
            Ok(embeds.masked_scatter(&is_audio.unsqueeze(-1).expand_as(&embeds), &src))
        })
    }

    /// Full prefill logits `[B, T, vocab]` (f32) for a prompt with audio merged in.
    pub fn prefill_logits(&self, input_ids: &Tensor, mask2d: &Tensor, audio: &[Tensor]) -> Result<Tensor> {
        let lm = self.lm()?;
        let embeds = self.merge_embeddings(input_ids, audio)?;
        Ok(tch::no_grad(|| {
            let positions = (mask2d.cumsum(1, Kind::Int64) - 1).masked_fill(&mask2d.eq(0), 1);
            let mut cache = Default::default();
            lm.logits(&lm.forward(&embeds, &positions, mask2d, &mut cache))
        }))
    }

    /// Greedy generation from a (left-padded) prompt with audio merged in.
    pub fn generate(
        &self,
        input_ids: &Tensor,
        mask2d: &Tensor,
        audio: &[Tensor],
        max_new: usize,
        eos: &[i64],
        pad: i64,
    ) -> Result<Generation> {
        let lm = self.lm()?;
        let embeds = self.merge_embeddings(input_ids, audio)?;
        Ok(lm.generate_greedy(&embeds, mask2d, max_new, eos, pad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_count_matches_spec_examples() {
        assert_eq!(audio_token_count(3000), 750);
        assert_eq!(audio_token_count(100), 25);
        assert_eq!(audio_token_count(37), 9);
        assert_eq!(audio_token_count(2), 0);
        assert_eq!(audio_token_count(491), 123);
    }

    #[test]
    fn v4_and_v5_keys_map_to_the_same_names() {
        let pairs = [
            ("audio_tower.conv1.weight", "model.audio_tower.conv1.weight"),
            ("multi_modal_projector.linear.bias", "model.multi_modal_projector.linear.bias"),
            ("language_model.model.layers.0.mlp.up_proj.weight", "model.language_model.layers.0.mlp.up_proj.weight"),
            ("language_model.lm_head.weight", "lm_head.weight"),
            ("language_model.model.embed_tokens.weight", "model.language_model.embed_tokens.weight"),
        ];
        for (v4, v5) in pairs {
            assert_eq!(canonical_name(v4, true), canonical_name(v5, true), "{v4} vs {v5}");
            assert!(canonical_name(v4, true).is_some());
        }
        assert_eq!(canonical_name("language_model.model.norm.weight", false), None);
        assert_eq!(canonical_name("language_model.model.norm.weight", true).unwrap(), "language_model.norm.weight");
    }
}
