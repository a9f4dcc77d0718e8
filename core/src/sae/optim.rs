//! AdamW with inspectable state, tensors that checkpoints can hold and resampling can reset
//! per latent. The update is torch's single-tensor AdamW (`amsgrad = False`): decoupled decay,
//! then the bias-corrected Adam step; on CPU it is one fused pass ([`kernels::adamw`]).

use anyhow::{ensure, Result};
use tch::{Kind, Tensor};

use super::kernels::{self, f32s, f32s_mut, AdamWStep};

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

    /// One update of every parameter from its `.grad()` times `grad_scale` (the clipping
    /// factor of [`clip_factor`]); one pass over memory on CPU.
    pub fn step(&mut self, params: &[&Tensor], lr: f64, grad_scale: Option<&Tensor>) {
        let _g = tch::no_grad_guard();
        self.step += 1;
        let s = AdamWStep {
            decay: 1.0 - lr * self.weight_decay,
            beta1: self.beta1,
            beta2: self.beta2,
            step_size: lr / (1.0 - self.beta1.powi(self.step as i32)),
            bc2_sqrt: (1.0 - self.beta2.powi(self.step as i32)).sqrt(),
            eps: self.eps,
            grad_scale: 1.0,
        };
        for ((p, m), v) in params.iter().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let mut p = p.detach();
            if [&p, &g, &*m, &*v].into_iter().all(kernels::is_cpu_f32) {
                // A CPU scalar: reading it is no device sync.
                let s = AdamWStep { grad_scale: grad_scale.map_or(1.0, |c| c.double_value(&[])), ..s };
                kernels::adamw(f32s_mut(&mut p), f32s(&g), f32s_mut(m), f32s_mut(v), s);
            } else {
                let g = grad_scale.map_or_else(|| g.shallow_clone(), |c| &g * c);
                tensor_step(&mut p, &g, m, v, s);
            }
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

/// [`kernels::adamw`]'s update written with tensor ops (for devices other than the CPU).
fn tensor_step(p: &mut Tensor, g: &Tensor, m: &mut Tensor, v: &mut Tensor, s: AdamWStep) {
    if s.decay != 1.0 {
        let _ = p.g_mul_scalar_(s.decay);
    }
    let _ = m.lerp_(g, 1.0 - s.beta1);
    let _ = v.g_mul_scalar_(s.beta2);
    let _ = v.addcmul_(g, &g.g_mul_scalar(1.0 - s.beta2));
    let denom = (v.sqrt() / s.bc2_sqrt).g_add_scalar_(s.eps);
    let _ = p.addcdiv_(m, &(denom / -s.step_size));
}

/// torch's `clip_grad_norm_` without its pass over the gradients: returns the total norm
/// ‖g‖ and, unless `max_norm` is 0, the factor `min(1, max_norm / (‖g‖ + 1e-6))` that
/// [`AdamW::step`] applies as it reads them (scalar tensors; no host sync).
pub fn clip_factor(params: &[&Tensor], max_norm: f64) -> (Tensor, Option<Tensor>) {
    let _g = tch::no_grad_guard();
    let norms: Vec<Tensor> = params.iter().map(|p| p.grad()).filter(|g| g.defined()).map(|g| g.norm()).collect();
    let total = Tensor::stack(&norms, 0).norm();
    let factor = (max_norm > 0.0).then(|| (max_norm / (&total + 1e-6)).clamp_max(1.0));
    (total.to_kind(Kind::Float), factor)
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
            opt.step(&[&p], 0.1, None);
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

    #[test]
    fn the_cpu_kernel_matches_the_tensor_ops() {
        tch::manual_seed(4);
        let s = AdamWStep {
            decay: 1.0 - 1e-3 * 0.01,
            beta1: 0.9,
            beta2: 0.999,
            step_size: 1e-3 / (1.0 - 0.9f64.powi(3)),
            bc2_sqrt: (1.0 - 0.999f64.powi(3)).sqrt(),
            eps: 1e-8,
            grad_scale: 0.25,
        };
        let randn = || Tensor::randn([1001], (Kind::Float, Device::Cpu));
        let (p, g, m, v) = (randn(), randn(), randn() * 0.1, randn().square() * 0.01);
        let [mut p1, mut m1, mut v1, mut p2, mut m2, mut v2] = [&p, &m, &v, &p, &m, &v].map(|t| t.copy());
        kernels::adamw(f32s_mut(&mut p1), f32s(&g), f32s_mut(&mut m1), f32s_mut(&mut v1), s);
        tensor_step(&mut p2, &(&g * 0.25), &mut m2, &mut v2, s);
        for (a, b) in [(&p1, &p2), (&m1, &m2), (&v1, &v2)] {
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(a.allclose(b, 1e-6, 1e-7, false), "kernel and tensor ops differ by {diff}");
        }
    }
}
