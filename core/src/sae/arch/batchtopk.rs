//! BatchTopK (Bussmann et al. 2024): in training, the `k·B` largest ReLU pre-activations over
//! the whole batch stay active, so frames may use more or fewer than k latents. At inference a
//! JumpReLU-style threshold θ replaces the batch: `h = pre · [pre > θ]`. θ is learned as a
//! running average (β = 0.999) of the smallest activation kept in each training batch.
//! Encoder, decoder and AuxK are as in [`super::topk`].

use tch::{Kind, Tensor};

use super::{bag_decode, fired_counts, fvu, topk, Sae, TrainOutput};

const THRESHOLD_BETA: f64 = 0.999;

pub fn train_forward(sae: &Sae, x: &Tensor, dead: &Tensor, n_dead: usize) -> TrainOutput {
    let k = sae.cfg.k.expect("batchtopk needs k") as i64;
    let (batch, h_dim) = (x.size()[0], sae.cfg.d_sae as i64);
    let pre = topk::pre_acts(sae, x);
    let acts = pre.relu();
    let (vals, flat) = acts.flatten(0, -1).topk((k * batch).min(batch * h_dim), 0, true, false);
    // Group the kept entries by frame for the bag decoder.
    let (flat, order) = flat.sort(0, false);
    let vals = vals.index_select(0, &order);
    let rows = flat.floor_divide_scalar(h_dim);
    let cols = flat.remainder(h_dim);
    let frame_starts = Tensor::arange(batch, (Kind::Int64, x.device()));
    let offsets = frame_starts.searchsorted(&rows, false, false, "left", None::<Tensor>);
    let x_hat = bag_decode(&sae.dec, &cols, &offsets, &vals) + &sae.b_dec;
    update_threshold(&sae.threshold, &vals);
    let err = x - &x_hat;
    let sq = err.square().sum(Kind::Float);
    let fvu_t = fvu(x, &sq);
    let aux = topk::aux_k_loss(sae, x, &pre, &err, dead, n_dead);
    TrainOutput {
        loss: &fvu_t + &aux * sae.cfg.aux_k_coef,
        mse: (sq / (err.numel() as f64)).detach(),
        fvu: fvu_t.detach(),
        l0: vals.detach().gt(0.0).sum(Kind::Float) / batch as f64,
        aux: aux.detach(),
        fired: fired_counts(h_dim, &cols, &vals, 0.0),
        manual: None,
    }
}

/// θ ← βθ + (1 − β)·min(kept positive activations); the first batch sets θ directly.
fn update_threshold(threshold: &Tensor, kept: &Tensor) {
    let _g = tch::no_grad_guard();
    let kept = kept.detach();
    let min_pos = kept.masked_fill(&kept.le(0.0), f64::INFINITY).min();
    let min_pos = min_pos.where_self(&min_pos.isfinite(), &min_pos.zeros_like());
    let blended = threshold * THRESHOLD_BETA + &min_pos * (1.0 - THRESHOLD_BETA);
    let next = min_pos.expand_as(threshold).where_self(&threshold.lt(0.0), &blended);
    threshold.detach().copy_(&next);
}

pub fn encode(sae: &Sae, x: &Tensor) -> Tensor {
    let pre = topk::pre_acts(sae, x);
    let theta = sae.threshold.clamp_min(0.0);
    &pre * pre.gt_tensor(&theta).to_kind(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sae::config::{Arch, SaeConfig};
    use tch::Device;

    #[test]
    fn keeps_k_times_batch_latents_and_matches_dense_selection() {
        tch::manual_seed(9);
        let cfg = SaeConfig { arch: Arch::BatchTopK, d_in: 10, d_sae: 30, k: Some(3), ..Default::default() };
        let sae = Sae::init(&cfg, Device::Cpu);
        let x = Tensor::randn([16, 10], (Kind::Float, Device::Cpu));
        let out = sae.train_forward(&x, &Tensor::zeros([30], (Kind::Bool, Device::Cpu)), 0);
        assert!((out.l0.double_value(&[]) - 3.0).abs() < 1e-6, "mean L0 is k");
        // Dense reference: keep the 48 largest entries of ReLU(pre) over the batch.
        let pre = (&x - &sae.b_dec).matmul(&sae.enc.tr()) + &sae.b_enc;
        let acts = pre.relu().flatten(0, -1);
        let (v, i) = acts.topk(48, 0, true, true);
        let h = acts.zeros_like().scatter(0, &i, &v).view([16, 30]);
        let x_hat = h.matmul(&sae.dec) + &sae.b_dec;
        let tv = (&x - x.mean_dim([0i64].as_slice(), true, Kind::Float)).square().sum(Kind::Float);
        let fvu_ref = ((x_hat - &x).square().sum(Kind::Float) / tv).double_value(&[]);
        assert!((out.fvu.double_value(&[]) - fvu_ref).abs() < 1e-5);
        let theta = sae.threshold.double_value(&[0]);
        assert!((theta - v.min().double_value(&[])).abs() < 1e-6, "first batch sets θ to the smallest kept value");
    }
}
