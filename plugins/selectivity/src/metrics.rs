//! Per-unit metrics against frame classes, from one pass over a unit's activations.
//!
//! A unit's column is given sparsely: explicit `(frame, value)` entries, every other frame
//! having value 0 (SAE codes), or densely with all frames explicit (baselines). For each class
//! `c` ("frame has label c"): precision, recall and F1 of "value > threshold", AUROC of the
//! value (Mann–Whitney, ties averaged), and the selectivity index
//! `(mean in c − mean out of c) / pooled std`.

/// Frames whose label is not an evaluated class (rare words): out of every class.
pub const NO_CLASS: u32 = u32::MAX;

/// The frames' classes.
pub struct Classes {
    /// Class of every frame, or [`NO_CLASS`].
    pub of_frame: Vec<u32>,
    /// Frames per class.
    pub counts: Vec<u64>,
}

impl Classes {
    pub fn new(of_frame: Vec<u32>, n_classes: usize) -> Classes {
        let mut counts = vec![0u64; n_classes];
        for &c in &of_frame {
            if c != NO_CLASS {
                counts[c as usize] += 1;
            }
        }
        Classes { of_frame, counts }
    }

    pub fn n_frames(&self) -> usize {
        self.of_frame.len()
    }
}

/// A unit's metrics against one class.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub auroc: f64,
    pub selectivity: f64,
    pub mean_in: f64,
    pub mean_out: f64,
}

/// Metrics of one unit against every class; `active` is its count of frames above threshold.
pub struct UnitMetrics {
    pub active: u64,
    pub per_class: Vec<ClassMetrics>,
}

impl UnitMetrics {
    /// The class with the highest F1 (ties: higher AUROC), if any class has frames.
    pub fn best(&self) -> Option<(usize, &ClassMetrics)> {
        self.per_class
            .iter()
            .enumerate()
            .filter(|(_, m)| m.auroc.is_finite())
            .max_by(|a, b| (a.1.f1, a.1.auroc).partial_cmp(&(b.1.f1, b.1.auroc)).unwrap_or(std::cmp::Ordering::Equal))
    }
}

/// Metrics of a unit whose `entries` (any order, distinct frames) are its explicit values and
/// whose other frames are 0. Scratch `entries` is sorted in place.
pub fn unit_metrics(entries: &mut [(u32, f32)], classes: &Classes, threshold: f32) -> UnitMetrics {
    let n_classes = classes.counts.len();
    let n = classes.n_frames() as f64;
    let (mut sum, mut sumsq, mut rank_sum, mut tp, mut explicit) = (
        vec![0f64; n_classes],
        vec![0f64; n_classes],
        vec![0f64; n_classes],
        vec![0u64; n_classes],
        vec![0u64; n_classes],
    );
    let (mut total, mut total_sq, mut active) = (0f64, 0f64, 0u64);
    entries.sort_unstable_by(|a, b| a.1.total_cmp(&b.1));
    let implicit_zeros = classes.n_frames() - entries.len();
    // Ranks: walk groups of equal values; the implicit zeros join the group of value 0.
    let mut pos = 0usize;
    let mut zero_rank = None;
    let mut i = 0;
    while i < entries.len() {
        let v = entries[i].1;
        let mut j = i;
        while j < entries.len() && entries[j].1 == v {
            j += 1;
        }
        let mut group = j - i;
        if zero_rank.is_none() && v >= 0.0 {
            if v == 0.0 {
                group += implicit_zeros;
            } else {
                zero_rank = Some(pos as f64 + (implicit_zeros as f64 + 1.0) / 2.0);
                pos += implicit_zeros;
            }
        }
        let rank = pos as f64 + (group as f64 + 1.0) / 2.0;
        if v == 0.0 && zero_rank.is_none() {
            zero_rank = Some(rank);
        }
        for &(frame, value) in &entries[i..j] {
            let value = value as f64;
            total += value;
            total_sq += value * value;
            let on = value > threshold as f64;
            active += on as u64;
            let c = classes.of_frame[frame as usize];
            if c != NO_CLASS {
                let c = c as usize;
                sum[c] += value;
                sumsq[c] += value * value;
                rank_sum[c] += rank;
                tp[c] += on as u64;
                explicit[c] += 1;
            }
        }
        pos += group;
        i = j;
    }
    let zero_rank = zero_rank.unwrap_or(pos as f64 + (implicit_zeros as f64 + 1.0) / 2.0);
    let zero_active = 0.0 > threshold;
    if zero_active {
        active += implicit_zeros as u64;
    }
    let per_class = (0..n_classes)
        .map(|c| {
            let n_in = classes.counts[c] as f64;
            let n_out = n - n_in;
            if n_in == 0.0 || n_out == 0.0 {
                return ClassMetrics { auroc: f64::NAN, ..Default::default() };
            }
            let zeros_in = classes.counts[c] - explicit[c];
            let tp = tp[c] + if zero_active { zeros_in } else { 0 };
            let rank_sum = rank_sum[c] + zero_rank * zeros_in as f64;
            let auroc = (rank_sum - n_in * (n_in + 1.0) / 2.0) / (n_in * n_out);
            let precision = if active > 0 { tp as f64 / active as f64 } else { 0.0 };
            let recall = tp as f64 / n_in;
            let f1 = if tp > 0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            let (mean_in, mean_out) = (sum[c] / n_in, (total - sum[c]) / n_out);
            let ss_in = sumsq[c] - n_in * mean_in * mean_in;
            let ss_out = (total_sq - sumsq[c]) - n_out * mean_out * mean_out;
            let pooled = ((ss_in + ss_out).max(0.0) / (n - 2.0).max(1.0)).sqrt();
            let selectivity = if pooled > 0.0 { (mean_in - mean_out) / pooled } else { 0.0 };
            ClassMetrics { precision, recall, f1, auroc, selectivity, mean_in, mean_out }
        })
        .collect();
    UnitMetrics { active, per_class }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairwise AUROC: P(value in > value out) + P(equal) / 2.
    fn brute_auroc(values: &[f32], is_in: &[bool]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (a, &ia) in values.iter().zip(is_in) {
            for (b, &ib) in values.iter().zip(is_in) {
                if ia && !ib {
                    pairs += 1.0;
                    wins += if a > b {
                        1.0
                    } else if a == b {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        wins / pairs
    }

    /// Deterministic pseudo-random values with many ties and zeros.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (s >> 33) % 9;
                if r < 4 {
                    0.0
                } else {
                    r as f32 - 6.0
                }
            })
            .collect()
    }

    #[test]
    fn sparse_and_dense_columns_match_brute_force() {
        let n = 200;
        let of_frame: Vec<u32> = (0..n as u32).map(|i| if i % 7 == 0 { NO_CLASS } else { i % 3 }).collect();
        let classes = Classes::new(of_frame.clone(), 3);
        for seed in 0..5 {
            let v = values(n, seed);
            let mut dense: Vec<(u32, f32)> = v.iter().enumerate().map(|(i, &x)| (i as u32, x)).collect();
            let mut sparse: Vec<(u32, f32)> = dense.iter().copied().filter(|e| e.1 != 0.0).collect();
            for threshold in [0.0f32, -1.5] {
                let d = unit_metrics(&mut dense, &classes, threshold);
                let s = unit_metrics(&mut sparse, &classes, threshold);
                assert_eq!(d.active, s.active);
                assert_eq!(d.active as usize, v.iter().filter(|&&x| x > threshold).count());
                for c in 0..3 {
                    let is_in: Vec<bool> = of_frame.iter().map(|&k| k == c as u32).collect();
                    let (dm, sm) = (d.per_class[c], s.per_class[c]);
                    assert!((dm.auroc - brute_auroc(&v, &is_in)).abs() < 1e-12, "seed {seed} class {c}");
                    assert!((sm.auroc - dm.auroc).abs() < 1e-12);
                    let tp = v.iter().zip(&is_in).filter(|(&x, &i)| i && x > threshold).count() as f64;
                    let n_in = is_in.iter().filter(|&&i| i).count() as f64;
                    assert!((dm.recall - tp / n_in).abs() < 1e-12);
                    assert!((dm.precision - tp / d.active as f64).abs() < 1e-12);
                    let mean_in = v.iter().zip(&is_in).filter(|(_, &i)| i).map(|(&x, _)| x as f64).sum::<f64>() / n_in;
                    assert!((dm.mean_in - mean_in).abs() < 1e-9 && (sm.selectivity - dm.selectivity).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn a_perfect_detector_scores_one() {
        let classes = Classes::new(vec![0, 1, 0, 1, 1, 0], 2);
        let mut e = vec![(0, 2.0), (2, 1.0), (5, 3.0)];
        let m = unit_metrics(&mut e, &classes, 0.0);
        let c0 = m.per_class[0];
        assert_eq!((c0.precision, c0.recall, c0.f1, c0.auroc), (1.0, 1.0, 1.0, 1.0));
        assert_eq!(m.per_class[1].auroc, 0.0);
        assert_eq!(m.best().unwrap().0, 0);
        // mean in 2, out 0; variance within: ((0+1+1) + 0) / 4 = 0.5
        assert!((c0.selectivity - 2.0 / 0.5f64.sqrt()).abs() < 1e-12);
    }
}
