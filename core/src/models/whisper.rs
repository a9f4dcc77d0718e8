//! Whisper encoder (transformers `WhisperEncoder`, spec §8), also the trunk of Qwen2-Audio's
//! audio tower. Loads HF safetensors (`model.encoder.*`, `encoder.*` or bare) and CTranslate2
//! `model.bin` directories.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use tch::{Kind, Tensor};

use super::layers::{Activation, Conv1d, LayerNorm, Linear};
use crate::weights::Weights;

/// PyTorch's default LayerNorm eps, used by every Whisper/Qwen2-Audio encoder norm.
pub(super) const LAYER_NORM_EPS: f64 = 1e-5;
/// fp16 activations are clamped to finfo(f16).max - 1000 after each layer (transformers).
pub(super) const F16_CLAMP: f64 = 65504.0 - 1000.0;

/// Encoder fields of `WhisperConfig` / `Qwen2AudioEncoderConfig` (same names in both).
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    pub d_model: i64,
    pub encoder_layers: usize,
    pub encoder_attention_heads: i64,
    pub encoder_ffn_dim: i64,
    pub num_mel_bins: i64,
    pub max_source_positions: i64,
    #[serde(default = "default_act")]
    pub activation_function: String,
}

fn default_act() -> String {
    "gelu".into()
}

impl EncoderConfig {
    /// Mel frames the conv stem expects: max_source_positions x conv1 stride (1) x conv2 stride (2).
    pub fn input_frames(&self) -> i64 {
        self.max_source_positions * 2
    }
}

/// Valid encoder frames for `feat_len` valid mel frames: conv2 (k3, s2, p1) gives `ceil(len/2)`.
pub fn conv_out_len(feat_len: usize) -> usize {
    feat_len.div_ceil(2)
}

/// How the encoder computes attention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionImpl {
    /// libtorch's fused `scaled_dot_product_attention`: several times faster on a 30 s window and
    /// memory-light; differs from transformers' eager path by summation order (~2e-4 on Whisper
    /// tiny.en outputs of magnitude ~11).
    #[default]
    Sdpa,
    /// Explicit QK^T, softmax in the working dtype, then PV, exactly as transformers' eager path:
    /// fp32 outputs are bit-identical to it.
    Eager,
}

impl std::str::FromStr for AttentionImpl {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sdpa" => Ok(AttentionImpl::Sdpa),
            "eager" => Ok(AttentionImpl::Eager),
            _ => anyhow::bail!("unknown attention implementation {s:?}: use sdpa or eager"),
        }
    }
}

/// Multi-head attention of Whisper's and Qwen2-Audio's encoder and of Whisper's decoder (spec
/// §3.4): q is scaled by head_dim^-0.5 before QK, k_proj has no bias. Self-attention projects
/// q, k and v from the same input; the decoder's cross-attention projects k and v once from the
/// encoder output ([`Self::key_value`]) and reuses them every step.
pub(super) struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    n_heads: i64,
    head_dim: i64,
}

impl Attention {
    pub(super) fn load(w: &Weights, p: &str, d: i64, n_heads: i64) -> Result<Self> {
        anyhow::ensure!(n_heads > 0 && d % n_heads == 0, "{p}: {n_heads} attention heads do not divide the width {d}");
        Ok(Attention {
            q_proj: Linear::load(w, &format!("{p}.q_proj"), d, d, true)?,
            k_proj: Linear::load(w, &format!("{p}.k_proj"), d, d, false)?,
            v_proj: Linear::load(w, &format!("{p}.v_proj"), d, d, true)?,
            out_proj: Linear::load(w, &format!("{p}.out_proj"), d, d, true)?,
            n_heads,
            head_dim: d / n_heads,
        })
    }

    /// `[B, T, d]` -> `[B, heads, T, head_dim]`.
    fn split_heads(&self, y: Tensor) -> Tensor {
        let (b, t, _) = y.size3().expect("[batch, time, width]");
        y.view([b, t, self.n_heads, self.head_dim]).transpose(1, 2)
    }

    /// Scaled queries of `x` `[B, T, d]`, split into heads.
    pub(super) fn query(&self, x: &Tensor) -> Tensor {
        self.split_heads(self.q_proj.forward(x) * (self.head_dim as f64).powf(-0.5))
    }

    /// Keys and values of `x` `[B, S, d]`, split into heads.
    pub(super) fn key_value(&self, x: &Tensor) -> (Tensor, Tensor) {
        (self.split_heads(self.k_proj.forward(x)), self.split_heads(self.v_proj.forward(x)))
    }

    /// Attention of queries `q` over `k`, `v` (all `[B, heads, _, head_dim]`), merged and
    /// projected: `[B, T, d]`. `bias` is additive (0 or a large negative), broadcast to
    /// `[B, heads, T, S]`.
    pub(super) fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
        imp: AttentionImpl,
    ) -> Tensor {
        let (b, _, t, _) = q.size4().expect("[batch, heads, time, head_dim]");
        let ctx = match imp {
            AttentionImpl::Sdpa => Tensor::scaled_dot_product_attention(q, k, v, bias, 0.0, false, 1.0, false),
            AttentionImpl::Eager => {
                let scores = q.matmul(&k.transpose(2, 3));
                let scores = match bias {
                    Some(bias) => scores + bias,
                    None => scores,
                };
                scores.softmax(-1, scores.kind()).matmul(v)
            }
        };
        self.out_proj.forward(&ctx.transpose(1, 2).reshape([b, t, self.n_heads * self.head_dim]))
    }

    /// Self-attention of `x` `[B, T, d]`; `key_bias` `[B, 1, 1, T]` or None.
    fn forward(&self, x: &Tensor, key_bias: Option<&Tensor>, imp: AttentionImpl) -> Tensor {
        let (k, v) = self.key_value(x);
        self.attend(&self.query(x), &k, &v, key_bias, imp)
    }
}

struct EncoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_layer_norm: LayerNorm,
    act: Activation,
}

impl EncoderLayer {
    fn load(w: &Weights, p: &str, cfg: &EncoderConfig) -> Result<Self> {
        let d = cfg.d_model;
        Ok(EncoderLayer {
            self_attn: Attention::load(w, &format!("{p}.self_attn"), d, cfg.encoder_attention_heads)?,
            self_attn_layer_norm: LayerNorm::load(w, &format!("{p}.self_attn_layer_norm"), d, LAYER_NORM_EPS)?,
            fc1: Linear::load(w, &format!("{p}.fc1"), d, cfg.encoder_ffn_dim, true)?,
            fc2: Linear::load(w, &format!("{p}.fc2"), cfg.encoder_ffn_dim, d, true)?,
            final_layer_norm: LayerNorm::load(w, &format!("{p}.final_layer_norm"), d, LAYER_NORM_EPS)?,
            act: Activation::parse(&cfg.activation_function)?,
        })
    }

    fn forward(&self, x: &Tensor, key_bias: Option<&Tensor>, imp: AttentionImpl) -> Tensor {
        let h = x + self.self_attn.forward(&self.self_attn_layer_norm.forward(x), key_bias, imp);
        let ff = self.fc2.forward(&self.act.forward(&self.fc1.forward(&self.final_layer_norm.forward(&h))));
        let h = h + ff;
        if h.kind() == Kind::Half {
            h.clamp(-F16_CLAMP, F16_CLAMP)
        } else {
            h
        }
    }
}

/// Conv stem, positional table and pre-LN layers; the final norm is applied by the caller
/// because Qwen2-Audio pools before it.
pub struct WhisperEncoder {
    pub config: EncoderConfig,
    conv1: Conv1d,
    conv2: Conv1d,
    embed_positions: Tensor,
    layers: Vec<EncoderLayer>,
    pub layer_norm: LayerNorm,
    pub attention: AttentionImpl,
}

impl WhisperEncoder {
    /// Loads the tensors under `prefix` (`encoder` or `audio_tower`).
    pub fn load(w: &Weights, prefix: &str, config: EncoderConfig) -> Result<Self> {
        let d = config.d_model;
        let layers = (0..config.encoder_layers)
            .map(|i| EncoderLayer::load(w, &format!("{prefix}.layers.{i}"), &config))
            .collect::<Result<Vec<_>>>()?;
        anyhow::ensure!(
            !w.contains(&format!("{prefix}.layers.{}.fc1.weight", config.encoder_layers)),
            "{}: checkpoint has more encoder layers than config encoder_layers = {}",
            w.source().display(),
            config.encoder_layers
        );
        Ok(WhisperEncoder {
            conv1: Conv1d::load(w, &format!("{prefix}.conv1"), config.num_mel_bins, d, 3, 1, 1)?,
            conv2: Conv1d::load(w, &format!("{prefix}.conv2"), d, d, 3, 2, 1)?,
            embed_positions: w.get(&format!("{prefix}.embed_positions.weight"), &[config.max_source_positions, d])?,
            layer_norm: LayerNorm::load(w, &format!("{prefix}.layer_norm"), d, LAYER_NORM_EPS)?,
            layers,
            config,
            attention: AttentionImpl::default(),
        })
    }

    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn kind(&self) -> Kind {
        self.conv1.kind()
    }

    /// Conv stem + positional table: `[B, n_mels, F]` -> `[B, F/2, d]`. `F` is normally the full
    /// 30 s (`2 * max_source_positions`, which transformers requires); fast extraction passes a
    /// shorter even `F` and gets the first `F/2` positions.
    pub fn embed(&self, features: &Tensor) -> Result<Tensor> {
        let (_, n_mels, frames) = features.size3().context("features must be [batch, n_mels, frames]")?;
        anyhow::ensure!(
            n_mels == self.config.num_mel_bins && frames <= self.config.input_frames() && frames % 2 == 0,
            "encoder expects [batch, {}, {}] log-mel features, got [_, {n_mels}, {frames}]",
            self.config.num_mel_bins,
            self.config.input_frames()
        );
        let x = features.to_kind(self.kind());
        let h = self.conv1.forward(&x).gelu("none");
        let h = self.conv2.forward(&h).gelu("none");
        Ok(h.transpose(1, 2) + self.embed_positions.narrow(0, 0, frames / 2))
    }

    /// Runs layers `0..n` over `h`; returns the last one's raw output and the raw outputs of the
    /// layers listed in `keep` (each `< n`), in the order of `keep`.
    pub fn run_layers(
        &self,
        mut h: Tensor,
        key_bias: Option<&Tensor>,
        n: usize,
        keep: &[usize],
    ) -> (Tensor, Vec<Tensor>) {
        let mut kept: Vec<Option<Tensor>> = keep.iter().map(|_| None).collect();
        for (i, layer) in self.layers[..n].iter().enumerate() {
            h = layer.forward(&h, key_bias, self.attention);
            for (slot, _) in kept.iter_mut().zip(keep).filter(|(_, &k)| k == i) {
                *slot = Some(h.shallow_clone());
            }
        }
        (h, kept.into_iter().map(|t| t.expect("kept layers must be below n")).collect())
    }

    /// Runs layers `start..` over `h`, the raw output of layer `start - 1` (or the embedding
    /// when `start` is 0): how an edited layer output is carried through the rest of the encoder.
    /// Returns the last layer's raw output.
    pub fn run_layers_from(&self, mut h: Tensor, key_bias: Option<&Tensor>, start: usize) -> Tensor {
        for layer in &self.layers[start.min(self.layers.len())..] {
            h = layer.forward(&h, key_bias, self.attention);
        }
        h
    }

    /// Checks that encoder layer `layer` exists.
    pub fn check_layer(&self, layer: usize) -> Result<()> {
        anyhow::ensure!(
            layer < self.layers.len(),
            "layer encoder.{layer} does not exist: the encoder has {} layers (0..{})",
            self.layers.len(),
            self.layers.len() - 1
        );
        Ok(())
    }

    /// Whisper's `last_hidden_state`: all layers, no mask, final LayerNorm. `[B, P, d]`.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor> {
        let (h, _) = self.run_layers(self.embed(features)?, None, self.layers.len(), &[]);
        Ok(self.layer_norm.forward(&h))
    }
}

/// Maps a transformers Whisper checkpoint key to `encoder.*` or, with `with_decoder`,
/// `decoder.*` (`proj_out.weight` included); decoder weights are dropped otherwise.
pub fn canonical_name(key: &str, with_decoder: bool) -> Option<String> {
    let k = key.strip_prefix("model.").unwrap_or(key);
    if let Some(rest) = k.strip_prefix("encoder.") {
        return Some(format!("encoder.{rest}"));
    }
    if with_decoder && (k.starts_with("decoder.") || k == "proj_out.weight") {
        return Some(k.to_string());
    }
    let bare = ["conv1.", "conv2.", "embed_positions.", "layers.", "layer_norm."];
    bare.iter().any(|p| k.starts_with(p)).then(|| format!("encoder.{k}"))
}

/// Reads an encoder config from a CTranslate2 checkpoint's tensor shapes (its config.json
/// holds only decoding options).
pub fn config_from_tensors(w: &Weights, n_heads: Option<i64>) -> Result<EncoderConfig> {
    let conv1 = w.get_any("encoder.conv1.weight")?.size();
    let fc1 = w.get_any("encoder.layers.0.fc1.weight")?.size();
    let pos = w.get_any("encoder.embed_positions.weight")?.size();
    let d_model = conv1[0];
    let encoder_layers = (0..).take_while(|i| w.contains(&format!("encoder.layers.{i}.fc1.weight"))).count();
    Ok(EncoderConfig {
        d_model,
        encoder_layers,
        // Every released Whisper size uses 64-dim heads.
        encoder_attention_heads: n_heads.unwrap_or(d_model / 64),
        encoder_ffn_dim: fc1[0],
        num_mel_bins: conv1[1],
        max_source_positions: pos[0],
        activation_function: default_act(),
    })
}

/// Reads `config.json`; for a Whisper checkpoint the encoder fields sit at the top level.
pub fn read_config(dir: &Path) -> Result<EncoderConfig> {
    super::read_json(&dir.join("config.json")).context("not a Whisper config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_three_hf_layouts_map_to_the_encoder_and_the_decoder_is_kept_only_when_asked() {
        for key in ["model.encoder.layers.3.fc1.weight", "encoder.layers.3.fc1.weight", "layers.3.fc1.weight"] {
            assert_eq!(canonical_name(key, true).as_deref(), Some("encoder.layers.3.fc1.weight"), "{key}");
        }
        assert_eq!(canonical_name("conv1.weight", false).as_deref(), Some("encoder.conv1.weight"));
        assert_eq!(canonical_name("model.decoder.layers.0.fc1.weight", false), None);
        assert_eq!(canonical_name("proj_out.weight", false), None);
        assert_eq!(
            canonical_name("model.decoder.layers.0.fc1.weight", true).as_deref(),
            Some("decoder.layers.0.fc1.weight")
        );
        assert_eq!(canonical_name("proj_out.weight", true).as_deref(), Some("proj_out.weight"));
    }

    #[test]
    fn conv_out_len_is_ceil_half() {
        assert_eq!(conv_out_len(491), 246);
        assert_eq!(conv_out_len(3000), 1500);
        assert_eq!(conv_out_len(1), 1);
    }
}
