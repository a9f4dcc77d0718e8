//! A validated row-major view of a score matrix.

/// Element types the solvers accept; all arithmetic is done in f64.
pub trait Score: Copy + Default + Into<f64> + Send + Sync + 'static {}
impl Score for f32 {}
impl Score for f64 {}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AssignmentError {
    #[error("score matrix has {len} values, but {rows} rows × {cols} columns need {expected}")]
    Shape { len: usize, rows: usize, cols: usize, expected: usize },
    #[error("score matrix entry ({row}, {col}) is {value}: scores must be finite")]
    NonFinite { row: usize, col: usize, value: f64 },
}

/// Row-major scores, checked to be finite (the solvers loop forever or return garbage on NaN/∞).
#[derive(Clone, Copy, Debug)]
pub struct ScoreMatrix<'a, T: Score> {
    data: &'a [T],
    rows: usize,
    cols: usize,
}

impl<'a, T: Score> ScoreMatrix<'a, T> {
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Result<Self, AssignmentError> {
        let expected = rows.saturating_mul(cols);
        if data.len() != expected {
            return Err(AssignmentError::Shape { len: data.len(), rows, cols, expected });
        }
        if let Some(k) = data.iter().position(|&x| !x.into().is_finite()) {
            let value = data[k].into();
            return Err(AssignmentError::NonFinite { row: k / cols, col: k % cols, value });
        }
        Ok(ScoreMatrix { data, rows, cols })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn data(&self) -> &'a [T] {
        self.data
    }

    pub fn row(&self, r: usize) -> &'a [T] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn get(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c].into()
    }

    /// The largest absolute score (0 for an empty matrix).
    pub fn max_abs(&self) -> f64 {
        self.data.iter().fold(0.0f64, |m, &x| m.max(x.into().abs()))
    }

    /// Sum of the scores of `pairs`, in f64.
    pub fn total(&self, pairs: &[(usize, usize)]) -> f64 {
        pairs.iter().map(|&(r, c)| self.get(r, c)).sum()
    }
}
