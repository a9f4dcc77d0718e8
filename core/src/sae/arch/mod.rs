//! The SAE parameters and the four parametrisations. One struct holds the tensors, laid out
//! one row per latent for both matrices; each architecture file holds its forward pass.
//!
//! Layout: `enc [d_sae, d_in]` (SAELens `W_enc` transposed, the seed's `E`), `b_enc [d_sae]`,
//! `dec [d_sae, d_in]` (SAELens `W_dec`, the seed's `D` transposed), `b_dec [d_in]` (the seed's
//! `-pre_bias`), `threshold [d_sae]` (batchtopk's inference threshold).

pub mod batchtopk;
pub mod opensae;
pub mod relu;
pub mod topk;

use tch::{Device, Kind, Tensor};

use super::config::{Arch, ComputeDType, SaeConfig};

/// A sparse autoencoder of any [`Arch`].
pub struct Sae {
    pub cfg: SaeConfig,
    pub enc: Tensor,
    pub b_enc: Tensor,
    pub dec: Tensor,
    pub b_dec: Tensor,
    pub threshold: Tensor,
}

/// What one training forward pass returns: the loss and detached statistics. [`Sae::backward`]
/// computes the loss's gradients.
pub struct TrainOutput {
    /// The loss, with its autograd graph unless `manual` is set.
    pub loss: Tensor,
    /// Mean squared error per element.
    pub mse: Tensor,
    /// Squared error over the batch's variance around its mean.
    pub fvu: Tensor,
    /// Mean active latents per frame.
    pub l0: Tensor,
    /// The auxiliary or sparsity term (AuxK, L1), unweighted; 0 when absent.
    pub aux: Tensor,
    /// `[d_sae]` frames of this batch on which each latent fired.
    pub fired: Tensor,
    /// What a pass whose gradients the architecture computes by hand saved for its backward.
    pub manual: Option<opensae::SparseStep>,
}

impl Sae {
    /// Fresh weights for `cfg`, drawn from libtorch's global generator (seed it first).
    pub fn init(cfg: &SaeConfig, device: Device) -> Sae {
        let (d, h) = (cfg.d_in as i64, cfg.d_sae as i64);
        let f = (Kind::Float, Device::Cpu);
        let (enc, dec) = match cfg.arch {
            Arch::OpenSae => opensae::init(d, h),
            Arch::TopK | Arch::BatchTopK => {
                let dec = Tensor::randn([h, d], f);
                let dec = &dec / dec.norm_scalaropt_dim(2, [1], true);
                (dec.copy(), dec)
            }
            Arch::Relu => relu::init(d, h),
        };
        Sae {
            cfg: cfg.clone(),
            enc: enc.to_device(device),
            dec: dec.to_device(device),
            b_enc: Tensor::zeros([h], (Kind::Float, device)),
            b_dec: Tensor::zeros([d], (Kind::Float, device)),
            threshold: Tensor::full([h], -1.0, (Kind::Float, device)),
        }
        .with_grad()
    }

    /// Marks the trainable tensors as requiring gradients.
    pub fn with_grad(self) -> Sae {
        for p in self.params() {
            let _ = p.set_requires_grad(true);
        }
        self
    }

    pub fn device(&self) -> Device {
        self.enc.device()
    }

    /// Trainable tensors with their names, in a fixed order (the seed's order for opensae).
    pub fn params(&self) -> Vec<&Tensor> {
        self.named_params().into_iter().map(|(_, t)| t).collect()
    }

    pub fn named_params(&self) -> Vec<(&'static str, &Tensor)> {
        match self.cfg.arch {
            Arch::OpenSae => vec![("b_dec", &self.b_dec), ("enc", &self.enc), ("dec", &self.dec)],
            _ => vec![("enc", &self.enc), ("b_enc", &self.b_enc), ("dec", &self.dec), ("b_dec", &self.b_dec)],
        }
    }

    /// All state tensors by name (for checkpoints).
    pub fn named_tensors(&self) -> Vec<(&'static str, &Tensor)> {
        vec![
            ("enc", &self.enc),
            ("b_enc", &self.b_enc),
            ("dec", &self.dec),
            ("b_dec", &self.b_dec),
            ("threshold", &self.threshold),
        ]
    }

    /// Training forward pass. `dead` is the `[d_sae]` dead-latent mask and `n_dead` its count
    /// (refreshed by the trainer now and then, so that this pass needs no host sync).
    pub fn train_forward(&self, x: &Tensor, dead: &Tensor, n_dead: usize) -> TrainOutput {
        match self.cfg.arch {
            Arch::OpenSae => opensae::train_forward(self, x),
            Arch::TopK => topk::train_forward(self, x, dead, n_dead),
            Arch::BatchTopK => batchtopk::train_forward(self, x, dead, n_dead),
            Arch::Relu => relu::train_forward(self, x),
        }
    }

    /// Sets each parameter's `.grad()` to the gradient of `out.loss` (replacing, not adding
    /// to, what was there), by autograd or by the architecture's own backward.
    pub fn backward(&self, out: &TrainOutput) {
        match &out.manual {
            Some(step) => opensae::sparse_backward(self, step),
            None => {
                for p in self.params() {
                    p.shallow_clone().zero_grad();
                }
                out.loss.backward()
            }
        }
    }

    /// Inference codes, dense `[n, d_sae]`.
    pub fn encode(&self, x: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        match self.cfg.arch {
            Arch::OpenSae => opensae::encode(self, x),
            Arch::TopK => topk::encode(self, x),
            Arch::BatchTopK => batchtopk::encode(self, x),
            Arch::Relu => relu::pre_acts(self, x).relu(),
        }
    }

    /// Reconstruction from dense codes.
    pub fn decode(&self, h: &Tensor) -> Tensor {
        let _g = tch::no_grad_guard();
        let dec =
            if self.cfg.arch == Arch::OpenSae { opensae::normalized_dec(&self.dec) } else { self.dec.shallow_clone() };
        self.b_dec.addmm(h, &dec)
    }

    /// Called between backward and the optimizer step.
    pub fn before_step(&self) {
        if matches!(self.cfg.arch, Arch::TopK | Arch::BatchTopK) {
            remove_parallel_grad(&self.dec);
        }
    }

    /// Called after the optimizer step.
    pub fn after_step(&mut self) {
        if matches!(self.cfg.arch, Arch::TopK | Arch::BatchTopK) {
            let _g = tch::no_grad_guard();
            let norm = self.dec.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
            let _ = self.dec.g_div_(&norm);
        }
    }

    /// Scales the weights so that the SAE takes raw inputs instead of inputs multiplied by
    /// `scale` (SAELens's `fold_activation_norm_scaling_factor`). Not for opensae, whose decoder
    /// is normalised in the forward pass.
    pub fn fold_input_scale(&mut self, scale: f64) {
        assert!(self.cfg.arch != Arch::OpenSae, "opensae keeps its input scale in cfg.json");
        let _g = tch::no_grad_guard();
        let _ = self.enc.g_mul_scalar_(scale);
        let _ = self.dec.g_div_scalar_(scale);
        let _ = self.b_dec.g_div_scalar_(scale);
        // Pre-activations are unchanged by the fold, so batchtopk's threshold is too.
    }
}

/// Pre-activations `(x − b_dec)·encᵀ + b_enc`, computed with the input difference exactly as
/// written, while autograd sees `x` as a constant: the gradient to `b_dec` flows through a
/// zero-valued term (a matrix-vector product) instead of a second `[B, d_in] x [d_in, d_sae]`
/// product for the input gradient.
pub fn encoder_pre_acts(
    x: &Tensor,
    enc: &Tensor,
    b_enc: Option<&Tensor>,
    b_dec: Option<&Tensor>,
    dtype: ComputeDType,
) -> Tensor {
    let x_in = match b_dec {
        Some(b) => (x - b).detach(),
        None => x.shallow_clone(),
    };
    let mut pre = match (dtype, b_enc) {
        (ComputeDType::F32, Some(b)) => b.addmm(&x_in, &enc.tr()),
        (ComputeDType::F32, None) => x_in.matmul(&enc.tr()),
        (ComputeDType::Bf16, b) => {
            // Autograd casts the gradients back, so enc's gradient and Adam stay f32.
            let bf = |t: &Tensor| t.to_kind(Kind::BFloat16);
            let product = bf(&x_in).matmul(&bf(enc).tr()).to_kind(Kind::Float);
            match b {
                Some(b) => product + b,
                None => product,
            }
        }
    };
    if let Some(b) = b_dec.filter(|b| b.requires_grad()) {
        let through = b.unsqueeze(0).matmul(&enc.detach().tr());
        pre += through.detach() - through;
    }
    pre
}

/// `Σ_j vals[b, j] · dec[idx[b, j]]`: the decoder applied to k active latents per row by
/// gathering k rows instead of a dense product with zeros. Differentiable in `dec` and `vals`.
pub fn sparse_decode(dec: &Tensor, idx: &Tensor, vals: &Tensor) -> Tensor {
    let (b, k) = idx.size2().expect("indices are [batch, k]");
    let offsets = Tensor::arange_start_step(0, b * k, k, (Kind::Int64, idx.device()));
    bag_decode(dec, &idx.flatten(0, -1), &offsets, &vals.flatten(0, -1))
}

/// Decoder sum over bags: row `i` sums `vals[j] · dec[idx[j]]` for `j` in `offsets[i]..offsets[i + 1]`.
pub fn bag_decode(dec: &Tensor, idx: &Tensor, offsets: &Tensor, vals: &Tensor) -> Tensor {
    Tensor::embedding_bag(dec, idx, offsets, false, 0, false, Some(vals), false).0
}

/// Squared error over total variance around the batch mean, as a scalar tensor.
pub fn fvu(x: &Tensor, err_sq_sum: &Tensor) -> Tensor {
    let centred = x - x.mean_dim([0i64].as_slice(), true, Kind::Float);
    err_sq_sum / centred.square().sum(Kind::Float).clamp_min(1e-12)
}

/// `[d_sae]` count of frames on which each latent is among `idx` with a value above `eps`.
pub fn fired_counts(d_sae: i64, idx: &Tensor, vals: &Tensor, eps: f64) -> Tensor {
    latent_sums(d_sae, idx, &vals.detach().gt(eps).to_kind(Kind::Float))
}

/// `[d_sae]` sums of the per-pair `vals` by latent, `idx` and `vals` alike in shape.
pub fn latent_sums(d_sae: i64, idx: &Tensor, vals: &Tensor) -> Tensor {
    Tensor::zeros([d_sae], (Kind::Float, idx.device())).index_add(0, &idx.flatten(0, -1), &vals.flatten(0, -1))
}

/// Removes from each decoder row's gradient its component along the row (rows are unit norm),
/// so that the step moves along the sphere.
fn remove_parallel_grad(dec: &Tensor) {
    let _g = tch::no_grad_guard();
    let mut grad = dec.grad();
    if grad.defined() {
        let along = (&grad * dec).sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
        let _ = grad.g_sub_(&(along * dec));
    }
}

/// Dense `[n, d_sae]` codes from `k` values and indices per row.
pub fn scatter_codes(d_sae: i64, idx: &Tensor, vals: &Tensor) -> Tensor {
    let n = idx.size()[0];
    Tensor::zeros([n, d_sae], (vals.kind(), vals.device())).scatter(1, idx, vals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bf16 compute keeps f32 outputs and gradients, within bf16's 8-bit mantissa of f32's.
    #[test]
    fn bf16_encoder_product_is_mixed_precision() {
        tch::manual_seed(5);
        let f = (Kind::Float, Device::Cpu);
        let x = Tensor::randn([16, 32], f);
        let (b_enc, b_dec) = (Tensor::randn([24], f), Tensor::randn([32], f));
        let run = |dtype| {
            let enc = Tensor::randn([24, 32], f).set_requires_grad(true);
            let pre = encoder_pre_acts(&x, &enc, Some(&b_enc), Some(&b_dec), dtype);
            pre.square().sum(Kind::Float).backward();
            (pre.detach(), enc.grad())
        };
        tch::manual_seed(6);
        let (pre32, g32) = run(ComputeDType::F32);
        tch::manual_seed(6);
        let (pre16, g16) = run(ComputeDType::Bf16);
        assert_eq!((pre16.kind(), g16.kind()), (Kind::Float, Kind::Float));
        let rel = |a: &Tensor, b: &Tensor| (a - b).norm().double_value(&[]) / b.norm().double_value(&[]);
        assert!(rel(&pre16, &pre32) < 1e-2 && rel(&pre16, &pre32) > 0.0, "bf16 pre-acts off: {}", rel(&pre16, &pre32));
        assert!(rel(&g16, &g32) < 2e-2, "bf16 gradient off: {}", rel(&g16, &g32));
    }
}
