//! Whisper decoder (transformers `WhisperDecoder`): token embeddings plus learned positions,
//! pre-LN layers of causal self-attention (with a KV cache), cross-attention over the encoder
//! output and a GELU MLP, a final LayerNorm, and logits through the token embedding (Whisper
//! ties `proj_out` to `embed_tokens`). Loaded from the canonical `decoder.*` names that
//! [`super::whisper::canonical_name`] (transformers) and
//! [`crate::ctranslate2::whisper_decoder_tensors`] (CTranslate2) produce.

use anyhow::{ensure, Result};
use serde::Deserialize;
use tch::{Kind, Tensor};

use super::layers::{additive_bias, Activation, LayerNorm, Linear};
use super::whisper::{Attention, AttentionImpl, LAYER_NORM_EPS};
use crate::weights::Weights;

/// Decoder fields of transformers' `WhisperConfig`.
#[derive(Debug, Clone, Deserialize)]
pub struct DecoderConfig {
    pub d_model: i64,
    pub decoder_layers: usize,
    pub decoder_attention_heads: i64,
    pub decoder_ffn_dim: i64,
    pub vocab_size: i64,
    /// Length of the learned position table: prompt plus generated tokens (448 in every
    /// released Whisper).
    pub max_target_positions: i64,
    #[serde(default = "default_act")]
    pub activation_function: String,
    /// sqrt(d_model) on the token embeddings; false in every released Whisper.
    #[serde(default)]
    pub scale_embedding: bool,
}

fn default_act() -> String {
    "gelu".into()
}

impl DecoderConfig {
    /// Reads a CTranslate2 checkpoint's decoder shape from its tensors (after
    /// [`crate::ctranslate2::whisper_decoder_tensors`]) and the heads it stores.
    pub fn from_tensors(w: &Weights, n_heads: Option<i64>, scale_embedding: bool) -> Result<Self> {
        let embed = w.get_any("decoder.embed_tokens.weight")?.size();
        let pos = w.get_any("decoder.embed_positions.weight")?.size();
        let fc1 = w.get_any("decoder.layers.0.fc1.weight")?.size();
        ensure!(
            embed.len() == 2 && pos.len() == 2 && fc1.len() == 2,
            "{}: decoder tensors are not matrices",
            w.source().display()
        );
        let decoder_layers = (0..).take_while(|i| w.contains(&format!("decoder.layers.{i}.fc1.weight"))).count();
        Ok(DecoderConfig {
            d_model: embed[1],
            decoder_layers,
            // Every released Whisper size uses 64-dim heads.
            decoder_attention_heads: n_heads.unwrap_or(embed[1] / 64),
            decoder_ffn_dim: fc1[0],
            vocab_size: embed[0],
            max_target_positions: pos[0],
            activation_function: default_act(),
            scale_embedding,
        })
    }
}

struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: Attention,
    encoder_attn_layer_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_layer_norm: LayerNorm,
    act: Activation,
}

impl DecoderLayer {
    fn load(w: &Weights, p: &str, cfg: &DecoderConfig) -> Result<Self> {
        let (d, heads) = (cfg.d_model, cfg.decoder_attention_heads);
        let norm = |name: &str| LayerNorm::load(w, &format!("{p}.{name}"), d, LAYER_NORM_EPS);
        Ok(DecoderLayer {
            self_attn: Attention::load(w, &format!("{p}.self_attn"), d, heads)?,
            self_attn_layer_norm: norm("self_attn_layer_norm")?,
            encoder_attn: Attention::load(w, &format!("{p}.encoder_attn"), d, heads)?,
            encoder_attn_layer_norm: norm("encoder_attn_layer_norm")?,
            fc1: Linear::load(w, &format!("{p}.fc1"), d, cfg.decoder_ffn_dim, true)?,
            fc2: Linear::load(w, &format!("{p}.fc2"), cfg.decoder_ffn_dim, d, true)?,
            final_layer_norm: norm("final_layer_norm")?,
            act: Activation::parse(&cfg.activation_function)?,
        })
    }
}

/// Per-layer attention state of a batch being decoded.
pub struct DecoderState {
    /// Keys and values of every token fed so far, `[B, heads, len, head_dim]`.
    self_kv: Vec<Option<(Tensor, Tensor)>>,
    /// Keys and values of the encoder output, computed once.
    cross_kv: Vec<(Tensor, Tensor)>,
    /// Tokens fed so far (the position of the next one).
    pub len: i64,
}

impl DecoderState {
    /// Keeps only the batch rows `rows` (an int64 index tensor), e.g. to drop finished sequences.
    pub fn select(&mut self, rows: &Tensor) {
        let pick = |(k, v): &(Tensor, Tensor)| (k.index_select(0, rows), v.index_select(0, rows));
        for kv in self.self_kv.iter_mut() {
            *kv = kv.as_ref().map(pick);
        }
        for kv in self.cross_kv.iter_mut() {
            *kv = pick(kv);
        }
    }
}

pub struct WhisperDecoder {
    pub config: DecoderConfig,
    embed_tokens: Tensor,
    embed_positions: Tensor,
    layers: Vec<DecoderLayer>,
    layer_norm: LayerNorm,
    /// Output projection: `proj_out.weight` when the checkpoint has its own, else the token
    /// embedding (tied, as in every released Whisper).
    proj_out: Tensor,
    pub attention: AttentionImpl,
}

impl WhisperDecoder {
    pub fn load(w: &Weights, config: DecoderConfig) -> Result<Self> {
        let (d, vocab) = (config.d_model, config.vocab_size);
        let layers = (0..config.decoder_layers)
            .map(|i| DecoderLayer::load(w, &format!("decoder.layers.{i}"), &config))
            .collect::<Result<Vec<_>>>()?;
        ensure!(
            !w.contains(&format!("decoder.layers.{}.fc1.weight", config.decoder_layers)),
            "{}: checkpoint has more decoder layers than config decoder_layers = {}",
            w.source().display(),
            config.decoder_layers
        );
        let embed_tokens = w.get("decoder.embed_tokens.weight", &[vocab, d])?;
        let proj_out = match w.contains("proj_out.weight") {
            true => w.get("proj_out.weight", &[vocab, d])?,
            false => embed_tokens.shallow_clone(),
        };
        Ok(WhisperDecoder {
            embed_positions: w.get("decoder.embed_positions.weight", &[config.max_target_positions, d])?,
            layer_norm: LayerNorm::load(w, "decoder.layer_norm", d, LAYER_NORM_EPS)?,
            embed_tokens,
            proj_out,
            layers,
            config,
            attention: AttentionImpl::default(),
        })
    }

    pub fn kind(&self) -> Kind {
        self.embed_tokens.kind()
    }

    /// A fresh state for a batch with encoder output `encoder_out` `[B, S, d]` (cross-attention
    /// keys and values are computed here, once).
    pub fn start(&self, encoder_out: &Tensor) -> DecoderState {
        let enc = encoder_out.to_kind(self.kind());
        DecoderState {
            self_kv: self.layers.iter().map(|_| None).collect(),
            cross_kv: self.layers.iter().map(|l| l.encoder_attn.key_value(&enc)).collect(),
            len: 0,
        }
    }

    /// Feeds `ids` `[B, T]` after the `state.len` tokens already fed; returns the next-token
    /// logits at each of the `T` positions, `[B, T, vocab]`. Rows of a batch may be right-padded:
    /// the causal mask keeps padding from reaching any position before it.
    pub fn forward(&self, ids: &Tensor, state: &mut DecoderState) -> Result<Tensor> {
        let (_, t) = ids.size2()?;
        let past = state.len;
        ensure!(
            past + t <= self.config.max_target_positions,
            "the decoder holds at most {} tokens (prompt and generated together); asked for {}",
            self.config.max_target_positions,
            past + t
        );
        let mut h = Tensor::embedding(&self.embed_tokens, ids, -1, false, false);
        if self.config.scale_embedding {
            h *= (self.config.d_model as f64).sqrt();
        }
        h += self.embed_positions.narrow(0, past, t);
        // Query i (absolute position past + i) sees keys 0 ..= past + i. One new token sees all.
        let causal = (t > 1).then(|| {
            let q = Tensor::arange_start(past, past + t, (Kind::Int64, ids.device())).unsqueeze(1);
            let k = Tensor::arange(past + t, (Kind::Int64, ids.device())).unsqueeze(0);
            additive_bias(&k.gt_tensor(&q), h.kind())
        });
        for (i, layer) in self.layers.iter().enumerate() {
            let x = layer.self_attn_layer_norm.forward(&h);
            let (k_new, v_new) = layer.self_attn.key_value(&x);
            let (k, v) = match state.self_kv[i].take() {
                Some((k, v)) => (Tensor::cat(&[k, k_new], 2), Tensor::cat(&[v, v_new], 2)),
                None => (k_new, v_new),
            };
            h += layer.self_attn.attend(&layer.self_attn.query(&x), &k, &v, causal.as_ref(), self.attention);
            state.self_kv[i] = Some((k, v));
            let x = layer.encoder_attn_layer_norm.forward(&h);
            let (ck, cv) = &state.cross_kv[i];
            h += layer.encoder_attn.attend(&layer.encoder_attn.query(&x), ck, cv, None, self.attention);
            let x = layer.final_layer_norm.forward(&h);
            h += layer.fc2.forward(&layer.act.forward(&layer.fc1.forward(&x)));
        }
        state.len += t;
        Ok(self.layer_norm.forward(&h).linear::<Tensor>(&self.proj_out, None))
    }
}
