//! The edit of SAE codes and its splice into the representation, and the two controls: the same
//! edit on random units, and Gaussian noise of the edit's norm.

use audiosae_plugin_api::{Error, FrameTiming};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What happens to the chosen units' codes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Edit {
    /// Set to 0.
    Mask,
    /// Set to a value.
    Set(f32),
    /// Multiply by a factor.
    Scale(f32),
}

impl Edit {
    fn apply(self, code: f32) -> f32 {
        match self {
            Edit::Mask => 0.0,
            Edit::Set(v) => v,
            Edit::Scale(s) => code * s,
        }
    }
}

/// Frames (of `rows`) whose centre lies in `[t0, t1)` seconds; a missing bound is open.
pub fn frames_in(timing: &FrameTiming, rows: usize, t0: Option<f64>, t1: Option<f64>) -> Vec<usize> {
    (0..rows)
        .filter(|&i| {
            let c = timing.center(i);
            t0.is_none_or(|t| c >= t) && t1.is_none_or(|t| c < t)
        })
        .collect()
}

/// `codes` `[n, d_sae]` with `edit` applied to `units` of `frames`.
pub fn edit_codes(codes: &[f32], d_sae: usize, frames: &[usize], units: &[usize], edit: Edit) -> Vec<f32> {
    let mut out = codes.to_vec();
    for &f in frames {
        for &u in units {
            let c = &mut out[f * d_sae + u];
            *c = edit.apply(*c);
        }
    }
    out
}

/// `x + D(h') − D(h)`: the edit's change of the reconstruction added to the input, so that the
/// SAE's error term `x − D(h)` is kept.
pub fn splice(x: &[f32], decoded_edit: &[f32], decoded_base: &[f32]) -> Vec<f32> {
    x.iter().zip(decoded_edit.iter().zip(decoded_base)).map(|(x, (e, b))| x + (e - b)).collect()
}

/// `n` distinct units of `0..d_sae` outside `exclude`, drawn with `seed`.
pub fn random_units(d_sae: usize, exclude: &[usize], n: usize, seed: u64) -> Result<Vec<usize>, Error> {
    let mut pool: Vec<usize> = (0..d_sae).filter(|u| !exclude.contains(u)).collect();
    if pool.len() < n {
        return Err(Error::new(format!(
            "the random-unit control needs {n} units besides the {} chosen, but the SAE has {d_sae}",
            exclude.len()
        )));
    }
    pool.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    pool.truncate(n);
    pool.sort_unstable();
    Ok(pool)
}

/// Euclidean norm of each row of `[n, d]` values.
pub fn row_norms(values: &[f32], d: usize) -> Vec<f64> {
    values.chunks_exact(d).map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()).collect()
}

/// `x` plus Gaussian noise whose norm matches, row by row, that of `delta` (rows of `delta` that
/// are zero get no noise).
pub fn matched_noise(x: &[f32], delta: &[f32], d: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = x.to_vec();
    for (row, target) in out.chunks_exact_mut(d).zip(row_norms(delta, d)) {
        if target == 0.0 {
            continue;
        }
        // Box–Muller pairs of standard normals.
        let noise: Vec<f64> = (0..d)
            .map(|_| {
                let (u1, u2): (f64, f64) = (1.0 - rng.gen::<f64>(), rng.gen());
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect();
        let norm = noise.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
        row.iter_mut().zip(&noise).for_each(|(v, n)| *v += (n * target / norm) as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_by_centre() {
        let t = FrameTiming { hop_s: 0.04, offset_s: -0.01 };
        // Centres 0.01, 0.05, 0.09, 0.13.
        assert_eq!(frames_in(&t, 4, Some(0.03), Some(0.11)), vec![1, 2]);
        assert_eq!(frames_in(&t, 4, None, None), vec![0, 1, 2, 3]);
        assert_eq!(frames_in(&t, 4, Some(0.1), None), vec![3]);
    }

    #[test]
    fn edits_touch_only_chosen_units_and_frames() {
        let h = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(edit_codes(&h, 3, &[1], &[0, 2], Edit::Mask), [1.0, 2.0, 3.0, 0.0, 5.0, 0.0]);
        assert_eq!(edit_codes(&h, 3, &[0, 1], &[1], Edit::Scale(2.0)), [1.0, 4.0, 3.0, 4.0, 10.0, 6.0]);
        assert_eq!(edit_codes(&h, 3, &[0], &[2], Edit::Set(9.0)), [1.0, 2.0, 9.0, 4.0, 5.0, 6.0]);
        assert_eq!(edit_codes(&h, 3, &[0, 1], &[], Edit::Mask), h);
    }

    #[test]
    fn splice_keeps_the_error_term() {
        assert_eq!(splice(&[1.0, 2.0], &[0.5, 0.5], &[0.5, 0.25]), [1.0, 2.25]);
    }

    #[test]
    fn random_units_avoid_the_chosen_ones() {
        let r = random_units(10, &[1, 2, 3], 3, 7).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.iter().all(|u| ![1, 2, 3].contains(u) && *u < 10));
        assert_eq!(r, random_units(10, &[1, 2, 3], 3, 7).unwrap());
        assert!(random_units(4, &[0, 1, 2], 3, 0).is_err());
    }

    #[test]
    fn noise_matches_the_norm_row_by_row() {
        let x = [0.0f32; 8];
        let delta = [3.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let noisy = matched_noise(&x, &delta, 4, 1);
        let n = row_norms(&noisy, 4);
        assert!((n[0] - 5.0).abs() < 1e-5 && n[1] == 0.0, "{n:?}");
    }
}
