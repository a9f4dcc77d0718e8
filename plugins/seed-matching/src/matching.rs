//! The computations of seed matching, free of the host: atom cosines, the optimal one-to-one
//! assignment and its statistics, and the Pearson correlation of matched units' activations.

use audiosae_assignment::{jonker_volgenant, kuhn_munkres, max_weight_assignment, ScoreMatrix};
use audiosae_plugin_api::Error;
use rand::Rng;

/// `n` atoms of width `d` with i.i.d. standard normal entries (Box–Muller): directions uniform on
/// the sphere, an unrelated dictionary for the null baseline.
pub fn gaussian_atoms(n: usize, d: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..n * d)
        .map(|_| {
            let (u, v): (f64, f64) = (1.0 - rng.gen::<f64>(), rng.gen());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

/// Rows of `atoms` (`[n, d]`) scaled to unit norm; all-zero rows stay zero (cosine 0 with anything).
pub fn unit_rows(atoms: &[f32], d: usize) -> Vec<f32> {
    let mut out = atoms.to_vec();
    for row in out.chunks_exact_mut(d) {
        let norm = row.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x = (*x as f64 / norm) as f32);
        }
    }
    out
}

/// Cosines `[n_a, n_b]` between the rows of two atom matrices `[n_a, d]`, `[n_b, d]`.
pub fn cosine_matrix(a: &[f32], b: &[f32], d: usize) -> Vec<f32> {
    let (ua, ub) = (unit_rows(a, d), unit_rows(b, d));
    let (n_a, n_b) = (a.len() / d, b.len() / d);
    let mut c = vec![0f32; n_a * n_b];
    // SAFETY: A is [n_a, d] row-major, B^T is read as [d, n_b] with strides (1, d), C is [n_a, n_b].
    unsafe {
        matrixmultiply::sgemm(
            n_a,
            d,
            n_b,
            1.0,
            ua.as_ptr(),
            d as isize,
            1,
            ub.as_ptr(),
            1,
            d as isize,
            0.0,
            c.as_mut_ptr(),
            n_b as isize,
            1,
        );
    }
    c
}

/// Which exact solver to use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Solver {
    /// Kuhn–Munkres up to `audiosae_assignment::KM_MAX_SIDE`, Jonker–Volgenant above.
    Auto,
    KuhnMunkres,
    JonkerVolgenant,
}

impl std::str::FromStr for Solver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "auto" => Ok(Solver::Auto),
            "km" => Ok(Solver::KuhnMunkres),
            "jv" => Ok(Solver::JonkerVolgenant),
            _ => Err(Error::new(format!("solver `{s}`: expected auto, km or jv"))),
        }
    }
}

/// The optimal one-to-one matching of two SAEs' atoms and its statistics.
pub struct Matching {
    /// (unit of A, unit of B, cosine), sorted by unit of A.
    pub pairs: Vec<(usize, usize, f32)>,
    pub mean_cosine: f64,
    /// Fractions of matched pairs with cosine above 0.5, 0.7 and 0.9.
    pub above: [f64; 3],
    /// Baselines: the mean over A's units of the best cosine in B (no one-to-one constraint; an upper
    /// bound), and the mean cosine of a random one-to-one pairing (chance).
    pub nearest_mean_cosine: f64,
    pub random_mean_cosine: f64,
    /// Upper bound on how far the matching's total cosine is from optimal (JV's dual certificate);
    /// `None` for Kuhn–Munkres, which is exact up to its integer scaling.
    pub certified_gap: Option<f64>,
    pub solver: &'static str,
}

pub const THRESHOLDS: [f64; 3] = [0.5, 0.7, 0.9];

/// Matches the rows of `cos` (`[n_a, n_b]`) to its columns, maximising the total cosine.
pub fn match_atoms(
    cos: &[f32],
    n_a: usize,
    n_b: usize,
    solver: Solver,
    random_perm: &[usize],
) -> Result<Matching, Error> {
    let m = ScoreMatrix::new(cos, n_a, n_b).map_err(|e| Error::new(format!("atom cosine matrix: {e}")))?;
    let (a, solver_name) = match solver {
        Solver::KuhnMunkres => (kuhn_munkres(&m), "kuhn-munkres"),
        Solver::JonkerVolgenant => (jonker_volgenant(&m), "jonker-volgenant"),
        Solver::Auto => {
            let a = max_weight_assignment(&m);
            let name = if a.certified_gap.is_some() { "jonker-volgenant" } else { "kuhn-munkres" };
            (a, name)
        }
    };
    let pairs: Vec<(usize, usize, f32)> = a.pairs.iter().map(|&(r, c)| (r, c, cos[r * n_b + c])).collect();
    let n = pairs.len().max(1) as f64;
    let above = THRESHOLDS.map(|t| pairs.iter().filter(|p| p.2 as f64 > t).count() as f64 / n);
    let nearest = cos.chunks_exact(n_b.max(1)).map(|row| row.iter().fold(f32::MIN, |m, &x| m.max(x)) as f64);
    // A random injection of the shorter side into the longer one.
    let random: f64 = if n_a <= n_b {
        (0..n_a).map(|r| cos[r * n_b + random_perm[r]] as f64).sum()
    } else {
        (0..n_b).map(|c| cos[random_perm[c] * n_b + c] as f64).sum()
    };
    Ok(Matching {
        mean_cosine: a.total / n,
        above,
        nearest_mean_cosine: nearest.sum::<f64>() / n_a.max(1) as f64,
        random_mean_cosine: random / n,
        certified_gap: a.certified_gap,
        solver: solver_name,
        pairs,
    })
}

/// Running sums for the Pearson correlation of many (x, y) column pairs over the same frames.
pub struct PairCorrelations {
    n: u64,
    sums: Vec<[f64; 5]>,
}

impl PairCorrelations {
    pub fn new(pairs: usize) -> Self {
        PairCorrelations { n: 0, sums: vec![[0.0; 5]; pairs] }
    }

    /// Adds `frames` frames: `codes_a` `[frames, d_a]`, `codes_b` `[frames, d_b]`; pair k correlates
    /// column `pairs[k].0` of A with column `pairs[k].1` of B.
    pub fn add(&mut self, pairs: &[(usize, usize, f32)], codes_a: &[f32], d_a: usize, codes_b: &[f32], d_b: usize) {
        for (ra, rb) in codes_a.chunks_exact(d_a).zip(codes_b.chunks_exact(d_b)) {
            for (s, &(u, w, _)) in self.sums.iter_mut().zip(pairs) {
                let (x, y) = (ra[u] as f64, rb[w] as f64);
                s[0] += x;
                s[1] += y;
                s[2] += x * x;
                s[3] += y * y;
                s[4] += x * y;
            }
            self.n += 1;
        }
    }

    pub fn frames(&self) -> u64 {
        self.n
    }

    /// Pearson r per pair; `None` where a unit never varies over the frames (dead or constant).
    pub fn correlations(&self) -> Vec<Option<f64>> {
        let n = self.n as f64;
        self.sums
            .iter()
            .map(|&[sx, sy, sxx, syy, sxy]| {
                let vx = sxx - sx * sx / n;
                let vy = syy - sy * sy / n;
                let scale = sxx.max(syy).max(f64::MIN_POSITIVE);
                (vx > 1e-12 * scale && vy > 1e-12 * scale)
                    .then(|| ((sxy - sx * sy / n) / (vx * vy).sqrt()).clamp(-1.0, 1.0))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn permuted_copies_match_exactly() {
        // B's atoms are A's, permuted and rescaled: every unit finds its copy with cosine 1.
        let d = 5;
        let a: Vec<f32> = (0..6 * d).map(|k| ((k * 7919) % 23) as f32 - 11.0).collect();
        let perm = [3, 0, 5, 1, 4, 2];
        let b: Vec<f32> = perm.iter().flat_map(|&p| a[p * d..(p + 1) * d].iter().map(|x| 2.5 * x)).collect();
        let cos = cosine_matrix(&a, &b, d);
        for solver in [Solver::Auto, Solver::KuhnMunkres, Solver::JonkerVolgenant] {
            let m = match_atoms(&cos, 6, 6, solver, &[0, 1, 2, 3, 4, 5]).unwrap();
            for &(u, w, c) in &m.pairs {
                assert_eq!(perm[w], u, "{solver:?}");
                assert!((c - 1.0).abs() < 1e-5);
            }
            assert_eq!(m.above, [1.0; 3]);
            assert!(m.random_mean_cosine < m.mean_cosine);
        }
    }

    #[test]
    fn gaussian_atoms_are_standard_normal() {
        let x = gaussian_atoms(1000, 20, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
        let tail = x.iter().filter(|v| v.abs() > 1.96).count() as f64 / x.len() as f64;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03 && (tail - 0.05).abs() < 0.005, "{mean} {var} {tail}");
    }

    #[test]
    fn correlations_match_a_direct_computation() {
        let x = [0.0f32, 1.0, 3.0, 0.0, 2.0];
        let y = [0.5f32, 1.0, 2.0, 0.0, 4.0];
        // Codes: A has units (x, const), B has units (y, zeros).
        let codes_a: Vec<f32> = x.iter().flat_map(|&v| [v, 1.0]).collect();
        let codes_b: Vec<f32> = y.iter().flat_map(|&v| [v, 0.0]).collect();
        let pairs = [(0, 0, 0.0), (1, 1, 0.0)];
        let mut acc = PairCorrelations::new(2);
        acc.add(&pairs, &codes_a[..4], 2, &codes_b[..4], 2);
        acc.add(&pairs, &codes_a[4..], 2, &codes_b[4..], 2);
        let r = acc.correlations();
        let mean = |v: &[f32]| v.iter().map(|&a| a as f64).sum::<f64>() / v.len() as f64;
        let (mx, my) = (mean(&x), mean(&y));
        let cov: f64 = x.iter().zip(&y).map(|(&a, &b)| (a as f64 - mx) * (b as f64 - my)).sum();
        let sx: f64 = x.iter().map(|&a| (a as f64 - mx).powi(2)).sum::<f64>().sqrt();
        let sy: f64 = y.iter().map(|&b| (b as f64 - my).powi(2)).sum::<f64>().sqrt();
        assert!((r[0].unwrap() - cov / (sx * sy)).abs() < 1e-12);
        assert_eq!(r[1], None, "a constant unit has no correlation");
        assert_eq!(acc.frames(), 5);
    }
}
