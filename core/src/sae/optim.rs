//! AdamW with inspectable state, written with tensor ops so that checkpoints can hold the
//! moments and resampling can reset them per latent. The update is torch's single-tensor
//! AdamW (`amsgrad = False`): decoupled decay, then the bias-corrected Adam step.

use anyhow::{ensure, Result};
use tch::{Kind, Tensor};

pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates taken so far.
    pub step: i64,
    pub exp_avg: Vec<Tensor>,
    pub exp_avg_sq: Vec<Tensor>,
}

impl AdamW {
    pub fn new(params: &[&Tensor], beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> AdamW {
        let zeros = || params.iter().map(|p| p.detach().zeros_like()).collect();
        AdamW { beta1, beta2, eps, weight_decay, step: 0, exp_avg: zeros(), exp_avg_sq: zeros() }
    }

    /// One update of every parameter from its `.grad()`.
    pub fn step(&mut self, params: &[&Tensor], lr: f64) {
        let _g = tch::no_grad_guard();
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - self.beta2.powi(self.step as i32)).sqrt();
        for ((p, m), v) in params.iter().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let mut p = p.detach();
            if self.weight_decay != 0.0 {
                let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
            }
            let _ = m.lerp_(&g, 1.0 - self.beta1);
            let _ = v.g_mul_scalar_(self.beta2);
            let _ = v.addcmul_(&g, &g.g_mul_scalar(1.0 - self.beta2));
            let denom = (v.sqrt() / bc2_sqrt).g_add_scalar_(self.eps);
            let _ = p.addcdiv_(m, &(denom / (-lr / bc1)));
        }
    }

    /// Zeroes both moments of the given rows of parameter `i` (a resampled latent's row).
    pub fn reset_rows(&mut self, i: usize, rows: &Tensor) {
        let _g = tch::no_grad_guard();
        for t in [&mut self.exp_avg[i], &mut self.exp_avg_sq[i]] {
            let _ = t.index_fill_(0, rows, 0.0);
        }
    }

    pub fn load(&mut self, step: i64, exp_avg: Vec<Tensor>, exp_avg_sq: Vec<Tensor>) -> Result<()> {
        ensure!(
            exp_avg.len() == self.exp_avg.len() && exp_avg_sq.len() == self.exp_avg_sq.len(),
            "optimizer state: wrong number of moments"
        );
        for (have, got) in
            self.exp_avg.iter_mut().chain(self.exp_avg_sq.iter_mut()).zip(exp_avg.iter().chain(&exp_avg_sq))
        {
            ensure!(
                have.size() == got.size(),
                "optimizer state: moment of shape {:?}, expected {:?}",
                got.size(),
                have.size()
            );
            have.copy_(got);
        }
        self.step = step;
        Ok(())
    }
}

/// torch's `clip_grad_norm_`: scales all gradients by `min(1, max_norm / (‖g‖ + 1e-6))` without
/// a host sync. Returns the total norm (a scalar tensor).
pub fn clip_grad_norm(params: &[&Tensor], max_norm: f64) -> Tensor {
    let _g = tch::no_grad_guard();
    let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).filter(|g| g.defined()).collect();
    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
    let total = Tensor::stack(&norms, 0).norm();
    if max_norm > 0.0 {
        let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
        for mut g in grads {
            let _ = g.g_mul_(&coef);
        }
    }
    total.to_kind(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn matches_the_adamw_update_written_out() {
        let p = Tensor::from_slice(&[1.0f32, -2.0, 3.0]).set_requires_grad(true);
        let mut opt = AdamW::new(&[&p], 0.9, 0.999, 1e-8, 0.01);
        let (mut m, mut v, mut want) = ([0f64; 3], [0f64; 3], [1.0f64, -2.0, 3.0]);
        for t in 1..=3 {
            p.shallow_clone().zero_grad();
            (&p * &p).sum(Kind::Float).backward();
            let g: Vec<f32> = p.grad().try_into().unwrap();
            opt.step(&[&p], 0.1);
            for j in 0..3 {
                want[j] *= 1.0 - 0.1 * 0.01;
                m[j] = 0.9 * m[j] + 0.1 * g[j] as f64;
                v[j] = 0.999 * v[j] + 0.001 * (g[j] as f64).powi(2);
                let (mh, vh) = (m[j] / (1.0 - 0.9f64.powi(t)), v[j] / (1.0 - 0.999f64.powi(t)));
                want[j] -= 0.1 * mh / (vh.sqrt() + 1e-8);
            }
        }
        let got: Vec<f32> = p.detach().to_device(Device::Cpu).try_into().unwrap();
        for j in 0..3 {
            assert!((got[j] as f64 - want[j]).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
}
