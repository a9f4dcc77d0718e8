//! Ground truth: activations that are sparse combinations of a known dictionary, and the
//! scores that say whether an SAE found it.
//!
//! A frame is `Σ_{i∈S} c_i d_i + ε`: `S` is k of the M unit-norm atoms `d_i` (uniform), the
//! coefficients `c_i ~ 1 + |N(0, 1)|` are positive, and `ε ~ N(0, σ²)` per dimension.

use anyhow::Result;
use pathfinding::prelude::{kuhn_munkres, Matrix};
use tch::{Device, Kind, Tensor};

/// A synthetic data set and its ground truth.
pub struct SyntheticData {
    /// `[M, d]` unit-norm atoms.
    pub dictionary: Tensor,
    /// `[n, d]` frames.
    pub frames: Tensor,
    /// `[n, M]` true coefficients.
    pub codes: Tensor,
}

pub fn generate(d: i64, m: i64, k: i64, n: i64, noise: f64, seed: i64) -> SyntheticData {
    let _g = tch::no_grad_guard();
    tch::manual_seed(seed);
    let f = (Kind::Float, Device::Cpu);
    let dict = Tensor::randn([m, d], f);
    let dictionary = &dict / dict.norm_scalaropt_dim(2, [1], true);
    // k distinct atoms per frame: the k smallest of M uniform keys.
    let support = Tensor::rand([n, m], f).topk(k, 1, false, false).1;
    let coef = Tensor::randn([n, k], f).abs() + 1.0;
    let codes = Tensor::zeros([n, m], f).scatter(1, &support, &coef);
    let frames = codes.matmul(&dictionary) + Tensor::randn([n, d], f) * noise;
    SyntheticData { dictionary, frames, codes }
}

/// Scale for integer Hungarian weights.
const WEIGHT_SCALE: f64 = 1e6;

/// Maximum-weight one-to-one matching of the rows of `sim [r, c]` (r ≤ c) to columns; returns
/// the matched similarities.
pub fn hungarian_matched(sim: &Tensor) -> Result<Vec<f64>> {
    let (r, c) = sim.size2()?;
    anyhow::ensure!(r <= c, "matching needs rows <= columns, got {r} x {c}");
    let v: Vec<f64> = Vec::<f64>::try_from(sim.to_kind(Kind::Double).to_device(Device::Cpu).flatten(0, -1))?;
    let weights =
        Matrix::from_vec(r as usize, c as usize, v.iter().map(|x| (x * WEIGHT_SCALE).round() as i64).collect())?;
    let (_, assign) = kuhn_munkres(&weights);
    Ok(assign.iter().enumerate().map(|(i, &j)| v[i * c as usize + j]).collect())
}

/// Mean cosine between each true atom and its Hungarian-matched decoder row (`dec [d_sae, d]`).
pub fn matched_cosine(dictionary: &Tensor, dec: &Tensor) -> Result<f64> {
    let a = dictionary / dictionary.norm_scalaropt_dim(2, [1], true);
    let b = dec / dec.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let m = hungarian_matched(&a.matmul(&b.tr()))?;
    Ok(m.iter().sum::<f64>() / m.len() as f64)
}

/// Mean correlation coefficient: Pearson correlation between each true code and its
/// Hungarian-matched learned code over the frames (`[n, M]` and `[n, d_sae]`).
pub fn mcc(true_codes: &Tensor, learned: &Tensor) -> Result<f64> {
    let z = |t: &Tensor| {
        let t = t.to_kind(Kind::Double);
        let c = &t - t.mean_dim([0i64].as_slice(), true, Kind::Double);
        &c / c.norm_scalaropt_dim(2, [0], true).clamp_min(1e-12)
    };
    let m = hungarian_matched(&z(true_codes).tr().matmul(&z(learned)))?;
    Ok(m.iter().sum::<f64>() / m.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_finds_the_permutation() {
        let sim = Tensor::from_slice(&[0.1f64, 0.9, 0.0, 0.8, 0.2, 0.1]).view([2, 3]);
        assert_eq!(hungarian_matched(&sim).unwrap(), vec![0.9, 0.8]);
        let dict = generate(8, 6, 2, 10, 0.0, 1).dictionary;
        let perm = Tensor::from_slice(&[3i64, 0, 5, 1, 4, 2]);
        assert!((matched_cosine(&dict, &dict.index_select(0, &perm)).unwrap() - 1.0).abs() < 1e-6);
    }
}
