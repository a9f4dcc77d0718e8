//! Maximum-weight one-to-one assignment on dense score matrices (for example the cosine matrix between
//! the decoder atoms of two SAEs).
//!
//! Two exact solvers:
//! - [`jonker_volgenant`]: shortest augmenting paths in f64 after Jonker–Volgenant's column reduction,
//!   reduction transfer and augmenting row reduction. O(n³) worst case, far less on cosine matrices;
//!   it handles 16k × 16k. It also returns a certificate: the gap between a feasible dual solution and
//!   the primal total, an upper bound on how far the assignment can be from the optimum.
//! - [`kuhn_munkres`]: `pathfinding`'s Hungarian algorithm on integer weights scaled from the scores
//!   (see [`km`] for the scaling and its exactness bound). O(n³); meant for small matrices and as an
//!   independent check.
//!
//! [`max_weight_assignment`] picks Kuhn–Munkres up to [`KM_MAX_SIDE`] and Jonker–Volgenant above.
//! Rectangular matrices match every row of the shorter side; the other side keeps unmatched entries.

pub mod jv;
mod kernels;
pub mod km;
mod matrix;

pub use jv::jonker_volgenant;
pub use km::kuhn_munkres;
pub use matrix::{AssignmentError, Score, ScoreMatrix};

/// Largest side for which [`max_weight_assignment`] uses Kuhn–Munkres.
pub const KM_MAX_SIDE: usize = 512;

/// An optimal one-to-one assignment.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// (row, column) pairs sorted by row; `min(rows, cols)` of them.
    pub pairs: Vec<(usize, usize)>,
    /// Sum of the scores of the pairs, accumulated in f64 from the input scores.
    pub total: f64,
    /// Dual objective minus `total` (≥ 0 up to rounding): no assignment scores more than
    /// `total + gap`. `None` when the solver gives no dual solution.
    pub certified_gap: Option<f64>,
}

impl Assignment {
    /// The matched column of each row (`None` for rows left over when rows > cols).
    pub fn col_of_row(&self, rows: usize) -> Vec<Option<usize>> {
        let mut out = vec![None; rows];
        for &(r, c) in &self.pairs {
            out[r] = Some(c);
        }
        out
    }

    /// Scores of the matched pairs, in the order of `pairs`.
    pub fn matched_scores<T: Score>(&self, m: &ScoreMatrix<T>) -> Vec<f64> {
        self.pairs.iter().map(|&(r, c)| m.get(r, c)).collect()
    }
}

/// The maximum-weight assignment: Kuhn–Munkres when both sides are at most [`KM_MAX_SIDE`],
/// Jonker–Volgenant otherwise.
pub fn max_weight_assignment<T: Score>(m: &ScoreMatrix<T>) -> Assignment {
    if m.rows().max(m.cols()) <= KM_MAX_SIDE {
        kuhn_munkres(m)
    } else {
        jonker_volgenant(m)
    }
}
