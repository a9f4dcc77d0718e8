//! Qwen2 decoder-only language model (transformers `Qwen2ForCausalLM`, spec §5) with a KV cache
//! and greedy generation.

use anyhow::{bail, Result};
use serde::Deserialize;
use tch::{Kind, Tensor};

use super::layers::{additive_bias, Activation, Linear, RmsNorm};
use crate::weights::Weights;

#[derive(Debug, Clone, Deserialize)]
pub struct Qwen2Config {
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: usize,
    pub num_attention_heads: i64,
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    #[serde(default)]
    pub head_dim: Option<i64>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// transformers v5 moves `rope_theta` here.
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    pub vocab_size: i64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<i64>,
}

/// An id or a list of ids (`eos_token_id` may be either).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<i64> {
        match self {
            TokenIds::One(i) => vec![*i],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

fn default_act() -> String {
    "silu".into()
}
fn default_rms_eps() -> f64 {
    1e-6
}

/// transformers' Qwen2Config default `rope_theta`.
const DEFAULT_ROPE_THETA: f64 = 10000.0;

impl Qwen2Config {
    pub fn kv_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> i64 {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| self.rope_parameters.as_ref().and_then(|p| p.get("rope_theta")).and_then(|v| v.as_f64()))
            .unwrap_or(DEFAULT_ROPE_THETA)
    }

    fn check(&self) -> Result<()> {
        let rope_type = |v: &serde_json::Value| {
            v.get("rope_type").or_else(|| v.get("type")).and_then(|t| t.as_str()).unwrap_or("default").to_string()
        };
        for v in [&self.rope_scaling, &self.rope_parameters].into_iter().flatten() {
            if !v.is_null() && rope_type(v) != "default" {
                bail!("rope type {:?} is not supported (only default RoPE)", rope_type(v));
            }
        }
        if self.use_sliding_window {
            bail!("use_sliding_window = true is not supported");
        }
        Ok(())
    }
}

/// Per-layer cached keys and values, `[B, KV, S, hd]`, after RoPE.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn len(&self) -> i64 {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |(k, _)| k.size()[2])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: i64,
    n_kv: i64,
    head_dim: i64,
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    Tensor::cat(&[-x.narrow(3, half, half), x.narrow(3, 0, half)], 3)
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> Tensor {
        let (b, t, _) = x.size3().unwrap();
        let hd = self.head_dim;
        let q = self.q_proj.forward(x).view([b, t, self.n_heads, hd]).transpose(1, 2);
        let k = self.k_proj.forward(x).view([b, t, self.n_kv, hd]).transpose(1, 2);
        let v = self.v_proj.forward(x).view([b, t, self.n_kv, hd]).transpose(1, 2);
        let q = &q * cos + rotate_half(&q) * sin;
        let k = &k * cos + rotate_half(&k) * sin;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2), Tensor::cat(&[pv, v], 2)),
            None => (k, v),
        };
        *cache = Some((k.shallow_clone(), v.shallow_clone()));
        let groups = self.n_heads / self.n_kv;
        let (k, v) = if groups > 1 {
            (k.repeat_interleave_self_int(groups, 1, None), v.repeat_interleave_self_int(groups, 1, None))
        } else {
            (k, v)
        };
        let scores = q.matmul(&k.transpose(2, 3)) * (hd as f64).powf(-0.5) + mask;
        let probs = scores.softmax(-1, Kind::Float).to_kind(q.kind());
        let ctx = probs.matmul(&v).transpose(1, 2).reshape([b, t, self.n_heads * hd]);
        self.o_proj.forward(&ctx)
    }
}

struct DecoderLayer {
    self_attn: Attention,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl DecoderLayer {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
    ) -> Tensor {
        let h = x + self.self_attn.forward(&self.input_layernorm.forward(x), cos, sin, mask, cache);
        let y = self.post_attention_layernorm.forward(&h);
        let mlp = self.down_proj.forward(&(self.act.forward(&self.gate_proj.forward(&y)) * self.up_proj.forward(&y)));
        h + mlp
    }
}

pub struct Qwen2Model {
    pub config: Qwen2Config,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Tensor,
    inv_freq: Tensor,
}

/// Output of [`Qwen2Model::generate_greedy`].
pub struct Generation {
    /// New tokens per row; rows that stopped early are filled with the pad id, as in HF.
    pub tokens: Vec<Vec<i64>>,
    /// f32 logits of the prefill's last position, `[B, vocab]`.
    pub prefill_last_logits: Tensor,
}

impl Qwen2Model {
    /// Loads `{prefix}.embed_tokens`, `{prefix}.layers.N.*`, `{prefix}.norm` and `head`
    /// (falling back to the embedding when the head is tied and not stored).
    pub fn load(w: &Weights, prefix: &str, head: &str, config: Qwen2Config) -> Result<Self> {
        config.check()?;
        let (d, hd, nh, nkv) = (config.hidden_size, config.head_dim(), config.num_attention_heads, config.kv_heads());
        let act = Activation::parse(&config.hidden_act)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("{prefix}.layers.{i}");
            let lin = |n: &str, i_: i64, o: i64, b: bool| Linear::load(w, &format!("{p}.{n}"), i_, o, b);
            layers.push(DecoderLayer {
                self_attn: Attention {
                    q_proj: lin("self_attn.q_proj", d, nh * hd, true)?,
                    k_proj: lin("self_attn.k_proj", d, nkv * hd, true)?,
                    v_proj: lin("self_attn.v_proj", d, nkv * hd, true)?,
                    o_proj: lin("self_attn.o_proj", nh * hd, d, false)?,
                    n_heads: nh,
                    n_kv: nkv,
                    head_dim: hd,
                },
                input_layernorm: RmsNorm::load(w, &format!("{p}.input_layernorm"), d, config.rms_norm_eps)?,
                post_attention_layernorm: RmsNorm::load(
                    w,
                    &format!("{p}.post_attention_layernorm"),
                    d,
                    config.rms_norm_eps,
                )?,
                gate_proj: lin("mlp.gate_proj", d, config.intermediate_size, false)?,
                up_proj: lin("mlp.up_proj", d, config.intermediate_size, false)?,
                down_proj: lin("mlp.down_proj", config.intermediate_size, d, false)?,
                act,
            });
        }
        let embed_tokens = w.get(&format!("{prefix}.embed_tokens.weight"), &[config.vocab_size, d])?;
        let lm_head = match w.get_opt(head) {
            Some(_) => w.get(head, &[config.vocab_size, d])?,
            None if config.tie_word_embeddings => embed_tokens.shallow_clone(),
            None => bail!("{}: checkpoint has no {head} and tie_word_embeddings is false", w.source().display()),
        };
        // inv_freq[i] = 1 / theta^(2i/hd), in f32 from the integer range like transformers.
        let exponents = Tensor::arange_start_step(0, hd, 2, (Kind::Int64, w.device())).to_kind(Kind::Float) / hd as f64;
        let inv_freq = Tensor::pow_scalar(config.rope_theta(), &exponents).reciprocal();
        Ok(Qwen2Model {
            norm: RmsNorm::load(w, &format!("{prefix}.norm"), d, config.rms_norm_eps)?,
            embed_tokens,
            lm_head,
            layers,
            inv_freq,
            config,
        })
    }

    pub fn embed(&self, ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed_tokens, ids, -1, false, false)
    }

    /// cos/sin `[B, 1, T, hd]` for integer `positions` `[B, T]`, built in f32 then cast.
    fn rope(&self, positions: &Tensor, kind: Kind) -> (Tensor, Tensor) {
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        (emb.cos().to_kind(kind).unsqueeze(1), emb.sin().to_kind(kind).unsqueeze(1))
    }

    /// Runs the decoder over `embeds` `[B, T, d]` at `positions` `[B, T]`; `mask2d` `[B, past+T]`
    /// marks real (1) and padding (0) tokens of the whole sequence so far. Returns the final
    /// normed hidden states `[B, T, d]`.
    pub fn forward(&self, embeds: &Tensor, positions: &Tensor, mask2d: &Tensor, cache: &mut KvCache) -> Tensor {
        self.forward_keep(embeds, positions, mask2d, cache, &[]).0
    }

    /// Number of decoder layers.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// [`Self::forward`] that also returns the raw outputs of the decoder layers in `keep`.
    pub fn forward_keep(
        &self,
        embeds: &Tensor,
        positions: &Tensor,
        mask2d: &Tensor,
        cache: &mut KvCache,
        keep: &[usize],
    ) -> (Tensor, Vec<Tensor>) {
        let (_, t, _) = embeds.size3().unwrap();
        let kind = embeds.kind();
        let past = cache.len();
        if cache.layers.is_empty() {
            cache.layers = (0..self.layers.len()).map(|_| None).collect();
        }
        let (cos, sin) = self.rope(positions, kind);
        let mask = additive_mask(mask2d, past, t, kind);
        let mut h = embeds.shallow_clone();
        let mut kept: Vec<Option<Tensor>> = keep.iter().map(|_| None).collect();
        for (i, (layer, slot)) in self.layers.iter().zip(cache.layers.iter_mut()).enumerate() {
            h = layer.forward(&h, &cos, &sin, &mask, slot);
            for (k, _) in kept.iter_mut().zip(keep).filter(|(_, &l)| l == i) {
                *k = Some(h.shallow_clone());
            }
        }
        (self.norm.forward(&h), kept.into_iter().map(|k| k.expect("kept layers must exist")).collect())
    }

    /// f32 logits of hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        hidden.linear::<Tensor>(&self.lm_head, None).to_kind(Kind::Float)
    }

    /// Greedy decoding from prompt embeddings `[B, T, d]` with a left-padded `mask2d` `[B, T]`.
    /// Stops when every row has produced an id in `eos` or after `max_new` tokens.
    pub fn generate_greedy(
        &self,
        embeds: &Tensor,
        mask2d: &Tensor,
        max_new: usize,
        eos: &[i64],
        pad: i64,
    ) -> Generation {
        tch::no_grad(|| {
            let device = embeds.device();
            let b = embeds.size()[0];
            let mut mask = mask2d.to_kind(Kind::Int64);
            // Positions as HF builds them: cumsum(mask) - 1, padding slots set to 1.
            let positions = (mask.cumsum(1, Kind::Int64) - 1).masked_fill(&mask.eq(0), 1);
            let mut cache = KvCache::default();
            let hidden = self.forward(embeds, &positions, &mask, &mut cache);
            let t = hidden.size()[1];
            let prefill_last_logits = self.logits(&hidden.narrow(1, t - 1, 1)).squeeze_dim(1);
            let mut logits = prefill_last_logits.shallow_clone();
            let mut last_pos = positions.narrow(1, t - 1, 1).copy();
            let eos_t = Tensor::from_slice(eos).to_device(device);
            let mut unfinished = Tensor::ones([b], (Kind::Bool, device));
            let mut tokens: Vec<Vec<i64>> = vec![Vec::new(); b as usize];
            for step in 0..max_new {
                let next = logits.argmax(-1, false);
                let next = next.where_self(&unfinished, &Tensor::from(pad).to_device(device));
                for (row, id) in Vec::<i64>::try_from(&next).unwrap().into_iter().enumerate() {
                    tokens[row].push(id);
                }
                unfinished = unfinished.logical_and(&Tensor::isin(&next, &eos_t, false, false).logical_not());
                if unfinished.any().int64_value(&[]) == 0 || step + 1 == max_new {
                    break;
                }
                mask = Tensor::cat(&[&mask, &Tensor::ones([b, 1], (Kind::Int64, device))], 1);
                last_pos += 1;
                let emb = self.embed(&next.unsqueeze(1));
                let hidden = self.forward(&emb, &last_pos, &mask, &mut cache);
                logits = self.logits(&hidden).squeeze_dim(1);
            }
            Generation { tokens, prefill_last_logits }
        })
    }
}

/// Causal + key-padding additive mask `[B, 1, T, past+T]`, using finfo(kind).min rather than
/// -inf so that fully masked (left-padding) rows stay finite (spec §9 pitfall 24).
fn additive_mask(mask2d: &Tensor, past: i64, t: i64, kind: Kind) -> Tensor {
    let device = mask2d.device();
    let s = past + t;
    let q_pos = Tensor::arange_start(past, s, (Kind::Int64, device)).view([t, 1]);
    let k_pos = Tensor::arange(s, (Kind::Int64, device)).view([1, s]);
    let causal = k_pos.le_tensor(&q_pos); // [T, S]
    let keep = causal.unsqueeze(0).logical_and(&mask2d.ne(0).unsqueeze(1)).unsqueeze(1);
    additive_bias(&keep.logical_not(), kind)
}
