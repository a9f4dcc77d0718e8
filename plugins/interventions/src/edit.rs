//! The edit of SAE codes and its splice into the representation, and the two controls: the same
//! edit on random units that are active on the edited frames (matched in count and in the code
//! mass the edit moves), and Gaussian noise of the edit's norm, frame by frame.

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
    /// Add a value: the seed notebook's `h + v`.
    Add(f32),
}

impl Edit {
    fn apply(self, code: f32) -> f32 {
        match self {
            Edit::Mask => 0.0,
            Edit::Set(v) => v,
            Edit::Scale(s) => code * s,
            Edit::Add(v) => code + v,
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

/// Total code change `Σ |edit(h) − h|` that `edit` makes to `units` over `frames`.
pub fn edit_mass(codes: &[f32], d_sae: usize, frames: &[usize], units: &[usize], edit: Edit) -> f64 {
    frames
        .iter()
        .flat_map(|&f| units.iter().map(move |&u| codes[f * d_sae + u]))
        .map(|c| (edit.apply(c) - c).abs() as f64)
        .sum()
}

/// Random subsets drawn when matching the control's code mass; the closest one is kept.
const MASS_MATCH_DRAWS: usize = 4000;

/// The random-unit control: as many units as `chosen`, drawn from the units outside `chosen`
/// that are active (code > 0) on at least one of `frames`, so that a TopK SAE's control actually
/// changes something; among [`MASS_MATCH_DRAWS`] draws, the one whose [`edit_mass`] is closest to
/// the chosen units'. When fewer units are active than needed, inactive ones fill the rest and
/// `active_pool` in the result says so.
pub struct MatchedUnits {
    pub units: Vec<usize>,
    /// Units outside `chosen` active on the edited frames.
    pub active_pool: usize,
    pub chosen_mass: f64,
    pub mass: f64,
}

pub fn activity_matched_units(
    codes: &[f32],
    d_sae: usize,
    frames: &[usize],
    chosen: &[usize],
    edit: Edit,
    seed: u64,
) -> Result<MatchedUnits, Error> {
    let n = chosen.len();
    if d_sae < 2 * n {
        return Err(Error::new(format!(
            "the random-unit control needs {n} units besides the {n} chosen, but the SAE has {d_sae}"
        )));
    }
    let active = |u: usize| frames.iter().any(|&f| codes[f * d_sae + u] > 0.0);
    let pool: Vec<usize> = (0..d_sae).filter(|u| !chosen.contains(u) && active(*u)).collect();
    let chosen_mass = edit_mass(codes, d_sae, frames, chosen, edit);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _ in 0..MASS_MATCH_DRAWS {
        let mut units: Vec<usize> = pool.choose_multiple(&mut rng, n.min(pool.len())).copied().collect();
        if units.len() < n {
            let mut rest: Vec<usize> = (0..d_sae).filter(|u| !chosen.contains(u) && !units.contains(u)).collect();
            rest.shuffle(&mut rng);
            units.extend(rest.into_iter().take(n - units.len()));
        }
        let gap = (edit_mass(codes, d_sae, frames, &units, edit) - chosen_mass).abs();
        if best.as_ref().is_none_or(|(g, _)| gap < *g) {
            best = Some((gap, units));
        }
        if gap == 0.0 {
            break;
        }
    }
    let mut units = best.map(|(_, u)| u).unwrap_or_default();
    units.sort_unstable();
    let mass = edit_mass(codes, d_sae, frames, &units, edit);
    Ok(MatchedUnits { units, active_pool: pool.len(), chosen_mass, mass })
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
        assert_eq!(edit_codes(&h, 3, &[1], &[0], Edit::Add(0.5)), [1.0, 2.0, 3.0, 4.5, 5.0, 6.0]);
    }

    #[test]
    fn splice_keeps_the_error_term() {
        assert_eq!(splice(&[1.0, 2.0], &[0.5, 0.5], &[0.5, 0.25]), [1.0, 2.25]);
    }

    #[test]
    fn the_control_draws_active_units_and_matches_the_code_mass() {
        // 2 frames x 8 units. Chosen: unit 0 (mass 3 + 3 = 6 when masked). Active besides it:
        // 1 (mass 1), 2 (mass 6), 3 (mass 5); units 4..8 are never active.
        let mut h = vec![0.0f32; 16];
        for (f, u, v) in [(0, 0, 3.0), (1, 0, 3.0), (0, 1, 1.0), (0, 2, 4.0), (1, 2, 2.0), (1, 3, 5.0)] {
            h[f * 8 + u] = v;
        }
        let m = activity_matched_units(&h, 8, &[0, 1], &[0], Edit::Mask, 3).unwrap();
        assert_eq!((m.units.clone(), m.active_pool, m.chosen_mass, m.mass), (vec![2], 3, 6.0, 6.0));
        // Two chosen units (mass 6 + 1 = 7): the only active pair left is {2, 3} (mass 11).
        let m = activity_matched_units(&h, 8, &[0, 1], &[0, 1], Edit::Mask, 3).unwrap();
        assert_eq!((m.units, m.active_pool, m.chosen_mass, m.mass), (vec![2, 3], 2, 7.0, 11.0));
        // Fewer active units than needed: inactive ones fill the rest, and the pool says so.
        let m = activity_matched_units(&h, 8, &[0, 1], &[0, 1, 2, 3], Edit::Mask, 3).unwrap();
        assert_eq!((m.units.len(), m.active_pool), (4, 0));
        assert!(m.units.iter().all(|u| *u >= 4));
        assert!(activity_matched_units(&h, 8, &[0], &[0, 1, 2, 3, 4], Edit::Mask, 0).is_err());
        // Additive edits move v per unit and frame whatever the codes.
        assert_eq!(edit_mass(&h, 8, &[0, 1], &[5, 6], Edit::Add(0.5)), 2.0);
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
