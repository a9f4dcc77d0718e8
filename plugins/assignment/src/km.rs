//! `pathfinding`'s Kuhn–Munkres on scaled integer weights.
//!
//! `pathfinding::kuhn_munkres` needs `Ord` weights, so floats are scaled by a power of two `S` and
//! rounded to i64. `S` is the largest power of two with `n · max|score| · S ≤ 2^52`, which keeps every
//! weight, every sum of n weights and the algorithm's labels exact in i64 (and the scaling exact in
//! f64). Rounding moves each weight by at most `0.5 / S`, so the total of any assignment moves by at most
//! `n / (2S)` and the returned assignment is within `n / S ≈ 2 n² max|score| / 2^52` of the optimum
//! (about 1e-10 for 512 × 512 cosines). Scores that are multiples of `1 / S` (e.g. f32 values of size
//! ≥ 2^-20 for S = 2^43) are solved exactly. The returned total is recomputed from the f64 scores.

use pathfinding::prelude::{kuhn_munkres as pf_kuhn_munkres, Matrix};

use crate::{Assignment, Score, ScoreMatrix};

/// The power-of-two scale used for an `n`-sided problem whose largest |score| is `max_abs`.
pub fn scale_for(n: usize, max_abs: f64) -> f64 {
    if max_abs == 0.0 || n == 0 {
        return 1.0;
    }
    let budget = 2f64.powi(52) / (n as f64 * max_abs);
    2f64.powi(budget.log2().floor() as i32)
}

/// Maximum-weight assignment with `pathfinding::kuhn_munkres` (see the module docs for exactness).
pub fn kuhn_munkres<T: Score>(m: &ScoreMatrix<T>) -> Assignment {
    let (rows, cols) = (m.rows(), m.cols());
    if rows == 0 || cols == 0 {
        return Assignment { pairs: vec![], total: 0.0, certified_gap: None };
    }
    // pathfinding needs rows ≤ columns: solve the transpose when the matrix is tall.
    let transposed = rows > cols;
    let (n_small, n_large) = if transposed { (cols, rows) } else { (rows, cols) };
    let scale = scale_for(n_large, m.max_abs());
    let weights: Vec<i64> = (0..n_small)
        .flat_map(|a| (0..n_large).map(move |b| if transposed { (b, a) } else { (a, b) }))
        .map(|(r, c)| (m.get(r, c) * scale).round() as i64)
        .collect();
    let weights = Matrix::from_vec(n_small, n_large, weights).expect("weights have n_small × n_large entries");
    let (_, matched) = pf_kuhn_munkres(&weights);
    let mut pairs: Vec<(usize, usize)> =
        matched.into_iter().enumerate().map(|(a, b)| if transposed { (b, a) } else { (a, b) }).collect();
    pairs.sort_unstable();
    let total = m.total(&pairs);
    Assignment { pairs, total, certified_gap: None }
}
