//! The seed's OpenSAE (seed notebook §4), exactly:
//! `h = TopK(ReLU(E·(x + pre_bias)))`, `x̂ = normalize_cols(D)·h − pre_bias`, no encoder bias,
//! `E, D ~ N(0, 0.02)`, loss = MSE + `l1_coef`·mean‖h‖₁; `k = None` is pure L1.
//!
//! Stored as `enc = E`, `dec = Dᵀ`, `b_dec = −pre_bias`, so `x + pre_bias` is `x − b_dec` and
//! `… − pre_bias` is `… + b_dec` bit for bit. TopK after ReLU keeps the same values as ReLU
//! after TopK (only zeros can differ in index), so the cheaper order is used.

use tch::{Device, Kind, Tensor};

use super::{encoder_pre_acts, fired_counts, latent_sums, scatter_codes, sparse_decode, Sae, TrainOutput};
use crate::sae::kernels::{self, f32s, f32s_mut, i64s, LatentPairs};

/// `(E [h, d], Dᵀ [h, d])`, drawn in the seed's order: `E` then `D` (as `[d, h]`).
pub fn init(d: i64, h: i64) -> (Tensor, Tensor) {
    let f = (Kind::Float, Device::Cpu);
    let e = Tensor::empty([h, d], f).normal_(0.0, 0.02);
    let d_mat = Tensor::empty([d, h], f).normal_(0.0, 0.02);
    (e, d_mat.tr().contiguous())
}

/// `F.normalize`'s floor on the norm it divides by.
const NORM_EPS: f64 = 1e-12;

/// `F.normalize(D, dim=0)` in row layout: each latent's decoder row over max(‖row‖, 1e-12).
pub fn normalized_dec(dec: &Tensor) -> Tensor {
    dec / row_norms(dec).unsqueeze(1)
}

/// `[d_sae]` divisors of [`normalized_dec`]: max(‖row‖, 1e-12).
fn row_norms(dec: &Tensor) -> Tensor {
    dec.norm_scalaropt_dim(2, [1], false).clamp_min(NORM_EPS)
}

fn pre_acts(sae: &Sae, x: &Tensor) -> Tensor {
    encoder_pre_acts(x, &sae.enc, None, Some(&sae.b_dec), sae.cfg.compute_dtype)
}

/// The decoder normalisation is applied to the codes, `x̂ = Σ_j (h_j / n_j) D_j`, never
/// materialising the normalised matrix; on CPU top-k takes the hand-written sparse backward.
pub fn train_forward(sae: &Sae, x: &Tensor) -> TrainOutput {
    match sae.cfg.k.map(|k| k.min(sae.cfg.d_sae) as i64) {
        None => l1_forward(sae, x),
        Some(k) if sparse_step_applies(sae) => sparse_forward(sae, x, k),
        Some(k) => topk_forward(sae, x, k),
    }
}

/// `k = None`: dense ReLU codes, autograd throughout.
fn l1_forward(sae: &Sae, x: &Tensor) -> TrainOutput {
    let h = pre_acts(sae, x).relu();
    let x_hat = sae.b_dec.addmm(&(&h / row_norms(&sae.dec)), &sae.dec);
    let batch = x.size()[0] as f64;
    let active = h.detach().gt(1e-6).to_kind(Kind::Float);
    let fired = active.sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
    let l0 = h.detach().gt(0.0).sum(Kind::Float) / batch;
    // ‖h‖₁ is the plain sum: ReLU outputs are not negative.
    loss_output(sae, x, &(x_hat - x), h.sum(Kind::Float) / batch, l0, fired)
}

/// Top-k with autograd (off CPU): the encoder's weight gradient is a second dense product.
fn topk_forward(sae: &Sae, x: &Tensor, k: i64) -> TrainOutput {
    let (raw, idx) = pre_acts(sae, x).topk(k, -1, true, false);
    let vals = raw.relu();
    let (_, _, x_hat) = normalized_decode(sae, &idx, &vals, &row_norms(&sae.dec));
    topk_output(sae, x, &(x_hat - x), &vals, &idx)
}

/// The top-k decode with the normalisation folded into the codes: with `n` the floored row
/// norms, returns `n[idx]` and `w = vals / n[idx]` (both `[B, k]`) and `x̂ = Σ_j w[b, j] D[idx[b, j]] + b_dec`.
fn normalized_decode(sae: &Sae, idx: &Tensor, vals: &Tensor, n: &Tensor) -> (Tensor, Tensor, Tensor) {
    let n_sel = n.index_select(0, &idx.flatten(0, -1)).view_as(vals);
    let w = vals / &n_sel;
    let x_hat = sparse_decode(&sae.dec, idx, &w) + &sae.b_dec;
    (n_sel, w, x_hat)
}

/// Whether [`sparse_forward`] can run: its backward kernels read CPU `f32` tensors.
fn sparse_step_applies(sae: &Sae) -> bool {
    [&sae.enc, &sae.dec, &sae.b_dec].iter().all(|t| kernels::is_cpu_f32(t))
}

/// What [`sparse_backward`] needs from [`sparse_forward`].
pub struct SparseStep {
    /// `[B, d_in]` encoder input `x − b_dec`.
    x_in: Tensor,
    /// `[B, k]` selected latents and their pre-activations (before ReLU).
    idx: Tensor,
    raw: Tensor,
    /// `[d_sae]` decoder row norms, not yet floored.
    norms: Tensor,
    /// `[B, k]` floored norms of the selected rows, and the decoder weights `relu(raw) / n_sel`.
    n_sel: Tensor,
    w: Tensor,
    /// `[B, d_in]` `x̂ − x`.
    err: Tensor,
}

/// Top-k on CPU without autograd: the forward as in [`topk_forward`], and [`sparse_backward`]
/// touches only the k selected latents of each frame.
fn sparse_forward(sae: &Sae, x: &Tensor, k: i64) -> TrainOutput {
    let _g = tch::no_grad_guard();
    let x_in = (x - &sae.b_dec).contiguous();
    let (raw, idx) = encoder_pre_acts(&x_in, &sae.enc, None, None, sae.cfg.compute_dtype).topk(k, -1, true, false);
    let vals = raw.relu();
    let norms = sae.dec.norm_scalaropt_dim(2, [1], false);
    let (n_sel, w, x_hat) = normalized_decode(sae, &idx, &vals, &norms.clamp_min(NORM_EPS));
    let err = x_hat - x;
    let mut out = topk_output(sae, x, &err, &vals, &idx);
    out.manual = Some(SparseStep { x_in, idx: idx.contiguous(), raw, norms, n_sel, w, err });
    out
}

/// Sets `.grad()` of enc, dec and b_dec to the gradients of a [`sparse_forward`] loss. With
/// `g = ∂loss/∂x̂ = 2 (x̂ − x) / (B d_in)`, `n` the floored row norms and
/// `w[b, j] = h[b, j] / n[idx[b, j]]` the decoder weights:
/// - `∂w[b, j] = g[b] · D[idx[b, j]]` and, over the pairs of latent `i`,
///   `dD[i] = Σ w[b, j] g[b] − (Σ ∂w[b, j] w[b, j]) / n[i]² · D[i]` (the second term is the
///   path through `n[i]`), both from [`LatentPairs::decoder_backward`];
/// - `∂raw[b, j] = (∂w[b, j] / n[idx[b, j]] + l1_coef / B) · [raw[b, j] > 0]`;
/// - `dE[i] = Σ ∂raw[b, j] x_in[b]` over the pairs of latent `i`;
/// - `d b_dec = Σ_b g[b] − Σ ∂raw[b, j] E[idx[b, j]]`.
pub fn sparse_backward(sae: &Sae, s: &SparseStep) {
    let [mut g_enc, mut g_dec, mut g_bdec] = [&sae.enc, &sae.dec, &sae.b_dec].map(grad_buffer);
    let _g = tch::no_grad_guard();
    let (b, k) = s.idx.size2().expect("indices are [batch, k]");
    let flat = s.idx.flatten(0, -1);
    let n = s.norms.clamp_min(NORM_EPS);
    let g = &s.err * (2.0 / s.err.numel() as f64);
    let pairs = LatentPairs::new(i64s(&flat), k as usize, sae.cfg.d_sae);
    // ∂n[i]/∂D[i] = D[i] / n[i], and zero where the floor holds.
    let c = s.norms.ge(NORM_EPS).to_kind(Kind::Float) / n.square();
    let dw = pairs.decoder_backward(f32s(&sae.dec), f32s(&c), f32s(&s.w), f32s(&g), f32s_mut(&mut g_dec));
    let d_raw = (Tensor::from_slice(&dw).view([b, k]) / &s.n_sel + sae.cfg.l1_coef / b as f64) * s.raw.gt(0.0);
    pairs.set_rows(f32s_mut(&mut g_enc), f32s(&d_raw), f32s(&s.x_in));
    let through_enc = latent_sums(sae.cfg.d_sae as i64, &flat, &d_raw).unsqueeze(0).matmul(&sae.enc).squeeze_dim(0);
    g_bdec.copy_(&(g.sum_dim_intlist([0i64].as_slice(), false, Kind::Float) - through_enc));
}

/// `p`'s gradient tensor, for the kernels to write; when it has none yet, autograd creates
/// it (as zeros, the backward of `0 · p[0]`).
fn grad_buffer(p: &Tensor) -> Tensor {
    if !p.grad().defined() {
        tch::with_grad(|| (p.flatten(0, -1).get(0) * 0.0).backward());
    }
    p.grad()
}

/// Loss and statistics of a top-k pass from its residual `x̂ − x` and selection.
fn topk_output(sae: &Sae, x: &Tensor, err: &Tensor, vals: &Tensor, idx: &Tensor) -> TrainOutput {
    let batch = x.size()[0] as f64;
    let l0 = vals.detach().gt(0.0).sum(Kind::Float) / batch;
    let fired = fired_counts(sae.cfg.d_sae as i64, idx, vals, 1e-6);
    // ‖h‖₁ is the plain sum: ReLU outputs are not negative.
    loss_output(sae, x, err, vals.sum(Kind::Float) / batch, l0, fired)
}

/// The seed's loss `MSE + l1_coef · ‖h‖₁ / B` and the statistics.
fn loss_output(sae: &Sae, x: &Tensor, err: &Tensor, l1: Tensor, l0: Tensor, fired: Tensor) -> TrainOutput {
    let sq = err.square().sum(Kind::Float);
    let mse = &sq / (err.numel() as f64);
    let loss = &mse + &l1 * sae.cfg.l1_coef;
    TrainOutput { fvu: super::fvu(x, &sq.detach()), loss, mse: mse.detach(), l0, aux: l1.detach(), fired, manual: None }
}

pub fn encode(sae: &Sae, x: &Tensor) -> Tensor {
    let h = pre_acts(sae, x).relu();
    match sae.cfg.k {
        Some(k) => {
            let (vals, idx) = h.topk(k.min(sae.cfg.d_sae) as i64, -1, true, false);
            scatter_codes(sae.cfg.d_sae as i64, &idx, &vals)
        }
        None => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::config::{Arch, SaeConfig};

    /// The seed's forward and loss written densely as in the notebook, on the same weights.
    fn seed_reference(
        e: &Tensor,
        d: &Tensor,
        pre_bias: &Tensor,
        k: Option<i64>,
        l1: f64,
        x: &Tensor,
    ) -> (Tensor, Tensor) {
        let h = (x + pre_bias).matmul(&e.tr()).relu();
        let h = match k {
            Some(k) => {
                let (vals, idx) = h.topk(k, -1, true, true);
                let mask = h.zeros_like().scatter(1, &idx, &vals.ones_like());
                h * mask
            }
            None => h,
        };
        let dn = d / d.norm_scalaropt_dim(2, [0], true).clamp_min(1e-12);
        let x_hat = h.matmul(&dn.tr()) - pre_bias;
        let loss = (&x_hat - x).square().mean(Kind::Float)
            + h.abs().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).mean(Kind::Float) * l1;
        (x_hat, loss)
    }

    /// `forward` and [`Sae::backward`] on batches of several sizes against autograd through
    /// the seed's dense reference on the same weights.
    fn check_against_the_seed(k: Option<usize>, forward: &dyn Fn(&Sae, &Tensor) -> TrainOutput) {
        tch::manual_seed(3);
        let cfg = SaeConfig { arch: Arch::OpenSae, d_in: 16, d_sae: 48, k, l1_coef: 1e-2, ..Default::default() };
        let sae = Sae::init(&cfg, Device::Cpu);
        sae.b_dec.detach().copy_(&(Tensor::randn([16], (Kind::Float, Device::Cpu)) * 0.1));
        let e = sae.enc.detach().copy().set_requires_grad(true);
        let d = sae.dec.detach().tr().contiguous().set_requires_grad(true);
        let pb = (-sae.b_dec.detach()).set_requires_grad(true);
        for batch in [32, 7, 1] {
            let x = Tensor::randn([batch, 16], (Kind::Float, Device::Cpu));
            let out = forward(&sae, &x);
            sae.backward(&out);
            for t in [&e, &d, &pb] {
                t.shallow_clone().zero_grad();
            }
            let (x_hat, loss) = seed_reference(&e, &d, &pb, k.map(|k| k as i64), 1e-2, &x);
            loss.backward();
            assert!((out.loss.double_value(&[]) - loss.double_value(&[])).abs() < 1e-6, "loss differs");
            let decoded = sae.decode(&sae.encode(&x));
            assert!(decoded.allclose(&x_hat, 1e-5, 1e-6, false), "decode differs");
            assert!(sae.enc.grad().allclose(&e.grad(), 1e-4, 1e-7, false), "dE differs");
            assert!(sae.dec.grad().allclose(&d.grad().tr(), 1e-4, 1e-7, false), "dD differs");
            assert!(sae.b_dec.grad().allclose(&(-pb.grad()), 1e-4, 1e-7, false), "d pre_bias differs");
        }
    }

    #[test]
    fn matches_the_seed_forward_loss_and_gradients() {
        let train = |sae: &Sae, x: &Tensor| sae.train_forward(x, &Tensor::zeros([48], (Kind::Bool, Device::Cpu)), 0);
        // k = 40 of 48 selects non-positive pre-activations too.
        for k in [5, 40] {
            check_against_the_seed(Some(k), &|sae, x| {
                let out = train(sae, x);
                assert!(out.manual.is_some(), "top-k on CPU takes the sparse backward");
                out
            });
            check_against_the_seed(Some(k), &|sae, x| topk_forward(sae, x, k as i64));
        }
        check_against_the_seed(None, &train);
    }
}
