//! The seed's OpenSAE (seed notebook §4), exactly:
//! `h = TopK(ReLU(E·(x + pre_bias)))`, `x̂ = normalize_cols(D)·h − pre_bias`, no encoder bias,
//! `E, D ~ N(0, 0.02)`, loss = MSE + `l1_coef`·mean‖h‖₁; `k = None` is pure L1.
//!
//! Stored as `enc = E`, `dec = Dᵀ`, `b_dec = −pre_bias`, so `x + pre_bias` is `x − b_dec` and
//! `… − pre_bias` is `… + b_dec` bit for bit. TopK after ReLU keeps the same values as ReLU
//! after TopK (only zeros can differ in index), so the cheaper order is used.

use tch::{Device, Kind, Tensor};

use super::{encoder_pre_acts, fired_counts, scatter_codes, sparse_decode, Sae, TrainOutput};

/// `(E [h, d], Dᵀ [h, d])`, drawn in the seed's order: `E` then `D` (as `[d, h]`).
pub fn init(d: i64, h: i64) -> (Tensor, Tensor) {
    let f = (Kind::Float, Device::Cpu);
    let e = Tensor::empty([h, d], f).normal_(0.0, 0.02);
    let d_mat = Tensor::empty([d, h], f).normal_(0.0, 0.02);
    (e, d_mat.tr().contiguous())
}

/// `F.normalize(D, dim=0)` in row layout: each latent's decoder row over max(‖row‖, 1e-12).
pub fn normalized_dec(dec: &Tensor) -> Tensor {
    dec / dec.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

fn pre_acts(sae: &Sae, x: &Tensor) -> Tensor {
    encoder_pre_acts(x, &sae.enc, None, Some(&sae.b_dec))
}

pub fn train_forward(sae: &Sae, x: &Tensor) -> TrainOutput {
    let pre = pre_acts(sae, x);
    let dec = normalized_dec(&sae.dec);
    let batch = x.size()[0] as f64;
    let h_dim = sae.cfg.d_sae as i64;
    let (x_hat, l1, fired, l0) = match sae.cfg.k {
        Some(k) => {
            let (vals, idx) = pre.topk(k.min(sae.cfg.d_sae) as i64, -1, true, false);
            let vals = vals.relu();
            let x_hat = sparse_decode(&dec, &idx, &vals) + &sae.b_dec;
            let l1 = vals.abs().sum(Kind::Float) / batch;
            let l0 = vals.detach().gt(0.0).sum(Kind::Float) / batch;
            (x_hat, l1, fired_counts(h_dim, &idx, &vals, 1e-6), l0)
        }
        None => {
            let h = pre.relu();
            let x_hat = sae.b_dec.addmm(&h, &dec);
            let l1 = h.abs().sum(Kind::Float) / batch;
            let active = h.detach().gt(1e-6).to_kind(Kind::Float);
            let l0 = h.detach().gt(0.0).sum(Kind::Float) / batch;
            (x_hat, l1, active.sum_dim_intlist([0i64].as_slice(), false, Kind::Float), l0)
        }
    };
    let err = &x_hat - x;
    let sq = err.square().sum(Kind::Float);
    let mse = &sq / (err.numel() as f64);
    let loss = &mse + &l1 * sae.cfg.l1_coef;
    TrainOutput { fvu: super::fvu(x, &sq.detach()), loss, mse: mse.detach(), l0, aux: l1.detach(), fired }
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
    fn seed_reference(e: &Tensor, d: &Tensor, pre_bias: &Tensor, k: i64, l1: f64, x: &Tensor) -> (Tensor, Tensor) {
        let h = (x + pre_bias).matmul(&e.tr()).relu();
        let (vals, idx) = h.topk(k, -1, true, true);
        let mask = h.zeros_like().scatter(1, &idx, &vals.ones_like());
        let h = h * mask;
        let dn = d / d.norm_scalaropt_dim(2, [0], true).clamp_min(1e-12);
        let x_hat = h.matmul(&dn.tr()) - pre_bias;
        let loss = (&x_hat - x).square().mean(Kind::Float)
            + h.abs().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).mean(Kind::Float) * l1;
        (x_hat, loss)
    }

    #[test]
    fn matches_the_seed_forward_loss_and_gradients() {
        tch::manual_seed(3);
        let cfg =
            SaeConfig { arch: Arch::OpenSae, d_in: 16, d_sae: 48, k: Some(5), l1_coef: 1e-2, ..Default::default() };
        let sae = Sae::init(&cfg, Device::Cpu);
        sae.b_dec.detach().copy_(&(Tensor::randn([16], (Kind::Float, Device::Cpu)) * 0.1));
        let x = Tensor::randn([32, 16], (Kind::Float, Device::Cpu));
        let out = sae.train_forward(&x, &Tensor::zeros([48], (Kind::Bool, Device::Cpu)), 0);
        out.loss.backward();

        let e = sae.enc.detach().copy().set_requires_grad(true);
        let d = sae.dec.detach().tr().contiguous().set_requires_grad(true);
        let pb = (-sae.b_dec.detach()).set_requires_grad(true);
        let (x_hat, loss) = seed_reference(&e, &d, &pb, 5, 1e-2, &x);
        loss.backward();
        assert!((out.loss.double_value(&[]) - loss.double_value(&[])).abs() < 1e-6);
        let decoded = sae.decode(&sae.encode(&x));
        assert!(decoded.allclose(&x_hat, 1e-5, 1e-6, false));
        assert!(sae.enc.grad().allclose(&e.grad(), 1e-4, 1e-7, false), "dE differs");
        assert!(sae.dec.grad().allclose(&d.grad().tr(), 1e-4, 1e-7, false), "dD differs");
        assert!(sae.b_dec.grad().allclose(&(-pb.grad()), 1e-4, 1e-7, false), "d pre_bias differs");
    }
}
