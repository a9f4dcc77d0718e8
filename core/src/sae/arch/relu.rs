//! ReLU SAE with the decoder-norm-weighted L1 penalty (Anthropic, "Circuits Updates – April
//! 2024"): `h = ReLU(W_enc x + b_enc)`, `x̂ = W_dec h + b_dec`, loss =
//! `mean_b ‖x − x̂‖² + l1_coef · mean_b Σ_i h_i ‖W_dec,i‖`. The decoder is not constrained;
//! it starts with random directions of norm 0.1 and `W_enc = W_decᵀ`.

use tch::{Device, Kind, Tensor};

use super::{encoder_pre_acts, fvu, Sae, TrainOutput};

const INIT_DEC_NORM: f64 = 0.1;

pub fn init(d: i64, h: i64) -> (Tensor, Tensor) {
    let dec = Tensor::randn([h, d], (Kind::Float, Device::Cpu));
    let dec = &dec / dec.norm_scalaropt_dim(2, [1], true) * INIT_DEC_NORM;
    (dec.copy(), dec)
}

pub fn pre_acts(sae: &Sae, x: &Tensor) -> Tensor {
    encoder_pre_acts(x, &sae.enc, Some(&sae.b_enc), None, sae.cfg.compute_dtype)
}

pub fn train_forward(sae: &Sae, x: &Tensor) -> TrainOutput {
    let h = pre_acts(sae, x).relu();
    let x_hat = sae.b_dec.addmm(&h, &sae.dec);
    let batch = x.size()[0] as f64;
    let err = x - &x_hat;
    let sq = err.square().sum(Kind::Float);
    let dec_norms = sae.dec.norm_scalaropt_dim(2, [1], false);
    let penalty = (&h * dec_norms.unsqueeze(0)).sum(Kind::Float) / batch;
    let active = h.detach().gt(0.0).to_kind(Kind::Float);
    TrainOutput {
        loss: &sq / batch + &penalty * sae.cfg.l1_coef,
        mse: (&sq / (err.numel() as f64)).detach(),
        fvu: fvu(x, &sq.detach()),
        l0: active.sum(Kind::Float) / batch,
        aux: penalty.detach(),
        fired: active.sum_dim_intlist([0i64].as_slice(), false, Kind::Float),
        manual: None,
    }
}
