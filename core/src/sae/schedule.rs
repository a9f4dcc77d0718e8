//! Learning rate as a pure function of the step (so a resumed run needs only the step).

use super::config::{Decay, TrainConfig};

/// Learning rate for optimizer step `step` (0-based: the lr used by the `step + 1`-th update).
/// Linear warmup over `warmup_steps`, then constant or cosine decay to `lr · min_lr_frac` at the
/// end. Without warmup and with `min_lr_frac = 0` the cosine equals torch's
/// `CosineAnnealingLR(T_max = steps)` stepped once per update, as in the seed.
pub fn lr_at(cfg: &TrainConfig, step: usize) -> f64 {
    let warm = cfg.warmup_steps;
    if step < warm {
        return cfg.lr * (step + 1) as f64 / warm as f64;
    }
    match cfg.decay {
        Decay::Constant => cfg.lr,
        Decay::Cosine => {
            let span = (cfg.steps - warm.min(cfg.steps)).max(1) as f64;
            let t = (step - warm) as f64 / span;
            let min = cfg.lr * cfg.min_lr_frac;
            min + (cfg.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let cfg = TrainConfig { lr: 1.0, steps: 110, warmup_steps: 10, min_lr_frac: 0.1, ..Default::default() };
        assert!((lr_at(&cfg, 0) - 0.1).abs() < 1e-12);
        assert!((lr_at(&cfg, 9) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 60) - 0.55).abs() < 1e-12);
        let constant = TrainConfig { decay: Decay::Constant, ..cfg };
        assert_eq!(lr_at(&constant, 100), 1.0);
    }
}
