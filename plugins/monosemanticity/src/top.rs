//! The `n` largest activations of a unit, kept in a min-heap while streaming over frames.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// One activation: its value and global frame index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub value: f32,
    pub frame: usize,
}

impl Eq for Hit {}

impl Ord for Hit {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value.total_cmp(&other.value).then(other.frame.cmp(&self.frame))
    }
}

impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub struct TopN {
    n: usize,
    heap: BinaryHeap<Reverse<Hit>>,
}

impl TopN {
    pub fn new(n: usize) -> TopN {
        TopN { n, heap: BinaryHeap::with_capacity(n + 1) }
    }

    pub fn push(&mut self, hit: Hit) {
        if self.heap.len() < self.n {
            self.heap.push(Reverse(hit));
        } else if self.heap.peek().is_some_and(|Reverse(min)| hit > *min) {
            self.heap.pop();
            self.heap.push(Reverse(hit));
        }
    }

    /// Largest first (ties: earlier frame first).
    pub fn into_sorted(self) -> Vec<Hit> {
        let mut v: Vec<Hit> = self.heap.into_iter().map(|Reverse(h)| h).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

/// Share of the most common label and the entropy (bits) of the label distribution.
pub fn purity_entropy<'a>(labels: impl Iterator<Item = &'a str>) -> Option<(String, f64, f64)> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for l in labels {
        match counts.iter_mut().find(|(k, _)| *k == l) {
            Some((_, c)) => *c += 1,
            None => counts.push((l, 1)),
        }
    }
    let total: usize = counts.iter().map(|c| c.1).sum();
    let (top, n_top) = counts.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))?;
    let entropy = -counts.iter().map(|&(_, c)| c as f64 / total as f64).map(|p| p * p.log2()).sum::<f64>();
    Some((top.to_string(), *n_top as f64 / total as f64, entropy.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_largest_and_measures_purity() {
        let mut t = TopN::new(3);
        for (frame, value) in [0.5f32, 3.0, 1.0, 2.0, 0.1, 2.0].iter().enumerate() {
            t.push(Hit { value: *value, frame });
        }
        let top: Vec<(usize, f32)> = t.into_sorted().iter().map(|h| (h.frame, h.value)).collect();
        assert_eq!(top, vec![(1, 3.0), (3, 2.0), (5, 2.0)]);
        let (label, purity, entropy) = purity_entropy(["a", "b", "a", "a"].into_iter()).unwrap();
        assert_eq!((label.as_str(), purity), ("a", 0.75));
        assert!((entropy - (-(0.75f64 * 0.75f64.log2()) - 0.25 * 0.25f64.log2())).abs() < 1e-12);
        assert_eq!(purity_entropy(["x"; 4].into_iter()).unwrap().2, 0.0);
        assert!(purity_entropy(std::iter::empty()).is_none());
    }
}
