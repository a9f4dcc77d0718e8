//! TopK SAE (OpenAI / sparsify style): `h = TopK(ReLU? (W_enc(x − b_dec) + b_enc))` keeping the k
//! largest pre-activations (then ReLU), `x̂ = W_dec h + b_dec` with unit-norm decoder rows.
//! Loss = FVU + `aux_k_coef`·AuxK.
//!
//! AuxK: the top `k_aux` (default d_in/2) pre-activations among dead latents reconstruct the
//! detached residual `e = x − x̂` with the decoder alone (no `b_dec`: it is already in `x̂`):
//! `‖e − W_dec h_aux‖²` over the residual's own variance (OpenAI's normalised MSE), scaled by
//! `min(n_dead / k_aux, 1)`.

use tch::{Kind, Tensor};

use super::{encoder_pre_acts, fired_counts, fvu, scatter_codes, sparse_decode, Sae, TrainOutput};

pub fn pre_acts(sae: &Sae, x: &Tensor) -> Tensor {
    encoder_pre_acts(x, &sae.enc, Some(&sae.b_enc), Some(&sae.b_dec), sae.cfg.compute_dtype)
}

pub fn train_forward(sae: &Sae, x: &Tensor, dead: &Tensor, n_dead: usize) -> TrainOutput {
    let k = sae.cfg.k.expect("topk needs k") as i64;
    let pre = pre_acts(sae, x);
    let (vals, idx) = pre.topk(k, -1, true, false);
    let vals = vals.relu();
    let x_hat = sparse_decode(&sae.dec, &idx, &vals) + &sae.b_dec;
    let batch = x.size()[0] as f64;
    let err = x - &x_hat;
    let sq = err.square().sum(Kind::Float);
    let fvu_t = fvu(x, &sq);
    let aux = aux_k_loss(sae, x, &pre, &err, dead, n_dead);
    let loss = &fvu_t + &aux * sae.cfg.aux_k_coef;
    TrainOutput {
        loss,
        mse: (sq / (err.numel() as f64)).detach(),
        fvu: fvu_t.detach(),
        l0: vals.detach().gt(0.0).sum(Kind::Float) / batch,
        aux: aux.detach(),
        fired: fired_counts(sae.cfg.d_sae as i64, &idx, &vals, 0.0),
        manual: None,
    }
}

/// AuxK loss (a scalar tensor; zero without dead latents or with a zero coefficient).
pub fn aux_k_loss(sae: &Sae, x: &Tensor, pre: &Tensor, err: &Tensor, dead: &Tensor, n_dead: usize) -> Tensor {
    if n_dead == 0 || sae.cfg.aux_k_coef == 0.0 {
        return Tensor::zeros([], (Kind::Float, x.device()));
    }
    let k_aux = sae.cfg.aux_k.unwrap_or(sae.cfg.d_in / 2).max(1);
    let scale = (n_dead as f64 / k_aux as f64).min(1.0);
    let masked = pre.masked_fill(&dead.logical_not().unsqueeze(0), f64::NEG_INFINITY);
    let (vals, idx) = masked.topk(k_aux.min(n_dead) as i64, -1, true, false);
    let e_hat = sparse_decode(&sae.dec, &idx, &vals);
    let err = err.detach();
    fvu(&err, &(e_hat - &err).square().sum(Kind::Float)) * scale
}

pub fn encode(sae: &Sae, x: &Tensor) -> Tensor {
    let (vals, idx) = pre_acts(sae, x).topk(sae.cfg.k.expect("topk needs k") as i64, -1, true, false);
    scatter_codes(sae.cfg.d_sae as i64, &idx, &vals.relu())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::config::{Arch, SaeConfig};
    use tch::Device;

    fn small(k: usize) -> (Sae, Tensor) {
        tch::manual_seed(5);
        let cfg = SaeConfig { arch: Arch::TopK, d_in: 12, d_sae: 40, k: Some(k), aux_k: Some(6), ..Default::default() };
        let sae = Sae::init(&cfg, Device::Cpu);
        sae.b_dec.detach().copy_(&Tensor::randn([12], (Kind::Float, Device::Cpu)));
        sae.b_enc.detach().copy_(&(Tensor::randn([40], (Kind::Float, Device::Cpu)) * 0.1));
        (sae, Tensor::randn([20, 12], (Kind::Float, Device::Cpu)))
    }

    #[test]
    fn sparse_forward_and_gradients_match_dense_autograd() {
        let (sae, x) = small(4);
        let no_dead = Tensor::zeros([40], (Kind::Bool, Device::Cpu));
        let out = sae.train_forward(&x, &no_dead, 0);
        out.loss.backward();
        // Dense reference: plain autograd through every op.
        let (we, be, wd, bd) = (
            sae.enc.detach().copy().set_requires_grad(true),
            sae.b_enc.detach().copy().set_requires_grad(true),
            sae.dec.detach().copy().set_requires_grad(true),
            sae.b_dec.detach().copy().set_requires_grad(true),
        );
        let pre = (&x - &bd).matmul(&we.tr()) + &be;
        let (v, i) = pre.topk(4, -1, true, true);
        let h = pre.zeros_like().scatter(1, &i, &v.relu());
        let x_hat = h.matmul(&wd) + &bd;
        let tv = (&x - x.mean_dim([0i64].as_slice(), true, Kind::Float)).square().sum(Kind::Float);
        let loss = (&x_hat - &x).square().sum(Kind::Float) / tv;
        loss.backward();
        assert!((out.loss.double_value(&[]) - loss.double_value(&[])).abs() < 1e-5);
        for (a, b, name) in
            [(&sae.enc, &we, "enc"), (&sae.b_enc, &be, "b_enc"), (&sae.dec, &wd, "dec"), (&sae.b_dec, &bd, "b_dec")]
        {
            assert!(a.grad().allclose(&b.grad(), 1e-4, 1e-6, false), "gradient of {name} differs");
        }
    }

    #[test]
    fn aux_k_reconstructs_the_residual_with_the_decoder_alone() {
        let (sae, x) = small(2);
        let dead = Tensor::arange(40, (Kind::Int64, Device::Cpu)).ge(20);
        let out = sae.train_forward(&x, &dead, 20);
        // Independent computation: e = x − x̂ from the inference path, ê from the 6 largest
        // dead pre-activations through W_dec without b_dec, scale min(20 / 6, 1) = 1.
        let e = &x - sae.decode(&sae.encode(&x));
        let pre = (&x - &sae.b_dec).matmul(&sae.enc.tr()) + &sae.b_enc;
        let masked = pre.masked_fill(&dead.logical_not().unsqueeze(0), f64::NEG_INFINITY);
        let (v, i) = masked.topk(6, -1, true, true);
        let e_hat = pre.zeros_like().scatter(1, &i, &v).matmul(&sae.dec);
        let tv = (&e - e.mean_dim([0i64].as_slice(), true, Kind::Float)).square().sum(Kind::Float);
        let expected = ((&e - e_hat).square().sum(Kind::Float) / tv).double_value(&[]);
        let got = out.aux.double_value(&[]);
        assert!((got - expected).abs() < 1e-5 * expected.max(1.0), "AuxK {got} vs {expected}");
        out.loss.backward();
        let g = sae.dec.grad().narrow(0, 20, 20).abs().sum(Kind::Float).double_value(&[]);
        assert!(g > 0.0, "dead decoder rows get AuxK gradient");
        assert_eq!(sae.train_forward(&x, &dead.zeros_like(), 0).aux.double_value(&[]), 0.0);
    }
}
