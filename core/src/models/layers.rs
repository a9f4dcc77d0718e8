//! Building blocks shared by the model files: plain structs over tensors, loaded by name from
//! [`Weights`] with shape checks.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use crate::weights::Weights;

/// Additive attention bias in `kind`: 0 where `masked` is false, finfo(kind).min where true.
/// finfo.min rather than -inf, as transformers' eager path uses, keeps fully masked rows finite
/// (spec §9 pitfall 24).
pub fn additive_bias(masked: &Tensor, kind: Kind) -> Tensor {
    let min = match kind {
        Kind::Half => f64::from(half::f16::MIN),
        Kind::BFloat16 => f64::from(half::bf16::MIN),
        _ => f64::from(f32::MIN),
    };
    Tensor::zeros(masked.size(), (kind, masked.device())).masked_fill(masked, min)
}

pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// `prefix.weight` `[out, in]` and, if `bias`, `prefix.bias` `[out]`.
    pub fn load(w: &Weights, prefix: &str, d_in: i64, d_out: i64, bias: bool) -> Result<Self> {
        Ok(Linear {
            weight: w.get(&format!("{prefix}.weight"), &[d_out, d_in])?,
            bias: if bias { Some(w.get(&format!("{prefix}.bias"), &[d_out])?) } else { None },
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, self.bias.as_ref())
    }
}

pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn load(w: &Weights, prefix: &str, d: i64, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.get(&format!("{prefix}.weight"), &[d])?,
            bias: w.get(&format!("{prefix}.bias"), &[d])?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let d = self.weight.size()[0];
        x.layer_norm([d], Some(&self.weight), Some(&self.bias), self.eps, true)
    }
}

/// Qwen2 RMSNorm: normalise in f32, cast back, then scale (spec §5.2).
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn load(w: &Weights, prefix: &str, d: i64, eps: f64) -> Result<Self> {
        Ok(RmsNorm { weight: w.get(&format!("{prefix}.weight"), &[d])?, eps })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        let kind = x.kind();
        let xf = x.to_kind(Kind::Float);
        let var = xf.square().mean_dim(-1, true, Kind::Float);
        let normed = (xf * (var + self.eps).rsqrt()).to_kind(kind);
        &self.weight * normed
    }
}

/// `hidden_act` / `activation_function` values of transformers' ACT2FN that these models use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// Exact (erf) GELU.
    Gelu,
    /// Tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "silu" | "swish" => Activation::Silu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => {
                bail!("unsupported activation {other:?} (supported: silu, gelu, gelu_new, gelu_pytorch_tanh, relu)")
            }
        })
    }

    pub fn forward(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Silu => x.silu(),
            Activation::Gelu => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
            Activation::Relu => x.relu(),
        }
    }
}

/// Conv1d with bias and zero padding.
pub struct Conv1d {
    weight: Tensor,
    bias: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv1d {
    pub fn load(w: &Weights, prefix: &str, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64) -> Result<Self> {
        Ok(Conv1d {
            weight: w.get(&format!("{prefix}.weight"), &[c_out, c_in, k])?,
            bias: w.get(&format!("{prefix}.bias"), &[c_out])?,
            stride,
            padding,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv1d(&self.weight, Some(&self.bias), [self.stride], [self.padding], [1], 1)
    }

    pub fn kind(&self) -> Kind {
        self.weight.kind()
    }
}
