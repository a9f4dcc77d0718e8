//! Comparing generations: per-step KL divergence of next-token distributions and a token-level
//! diff.

/// `log_softmax` of one row of logits, in f64.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
    let log_sum = logits.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    logits.iter().map(|&v| v as f64 - log_sum).collect()
}

/// `KL(P_i || Q_i)` for each step `i` of two `[steps, vocab]` logit arrays (nats).
pub fn kl_per_step(p: &[f32], q: &[f32], vocab: usize) -> Vec<f64> {
    p.chunks_exact(vocab)
        .zip(q.chunks_exact(vocab))
        .map(|(p, q)| {
            let (lp, lq) = (log_softmax(p), log_softmax(q));
            lp.iter().zip(&lq).map(|(a, b)| a.exp() * (a - b)).sum::<f64>().max(0.0)
        })
        .collect()
}

/// One line of a token diff: a token kept, removed from `a` or added in `b`, with its positions.
#[derive(Clone, Debug, PartialEq)]
pub enum DiffOp {
    Same { a: usize, b: usize },
    Removed { a: usize },
    Added { b: usize },
}

/// Longest-common-subsequence diff of `a` into `b`.
pub fn token_diff(a: &[i64], b: &[i64]) -> Vec<DiffOp> {
    let (n, m) = (a.len(), b.len());
    let lcs = audiosae_plugin_api::error_rate::lcs_suffix_lengths(a, b);
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(DiffOp::Same { a: i, b: j });
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(DiffOp::Added { b: j });
            j += 1;
        } else {
            out.push(DiffOp::Removed { a: i });
            i += 1;
        }
    }
    out
}

/// First step where the two token sequences differ (`None` when equal).
pub fn first_difference(a: &[i64], b: &[i64]) -> Option<usize> {
    (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_is_zero_for_equal_rows_and_positive_otherwise() {
        let p = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0];
        assert_eq!(kl_per_step(&p, &p, 3), [0.0, 0.0]);
        let q = [3.0, 2.0, 1.0, 0.0, 0.0, 0.0];
        let kl = kl_per_step(&p, &q, 3);
        assert!(kl[0] > 0.5 && kl[1] == 0.0, "{kl:?}");
        // Shifting logits does not change the distribution.
        assert!(kl_per_step(&p[..3], &[11.0, 12.0, 13.0], 3)[0] < 1e-12);
    }

    #[test]
    fn diff_finds_substitutions_and_insertions() {
        use DiffOp::*;
        assert_eq!(token_diff(&[1, 2, 3], &[1, 2, 3]), [Same { a: 0, b: 0 }, Same { a: 1, b: 1 }, Same { a: 2, b: 2 }]);
        let d = token_diff(&[1, 2, 3], &[1, 9, 3, 4]);
        assert_eq!(d, [Same { a: 0, b: 0 }, Added { b: 1 }, Removed { a: 1 }, Same { a: 2, b: 2 }, Added { b: 3 }]);
        assert_eq!(first_difference(&[1, 2, 3], &[1, 9, 3]), Some(1));
        assert_eq!(first_difference(&[1, 2], &[1, 2, 3]), Some(2));
        assert_eq!(first_difference(&[1, 2], &[1, 2]), None);
    }
}
