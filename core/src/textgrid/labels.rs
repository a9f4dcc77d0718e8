//! Frame labels from an interval tier, through the layer's [`FrameTiming`].
//!
//! Rule: frame `i` takes the label of the interval that contains its centre
//! `timing.center(i)`; intervals are half-open `[xmin, xmax)` except the tier's last one, which
//! also contains its `xmax`. Silence is its own class, [`SILENCE`] (`sil`): empty labels and the
//! aligners' silence markers ([`is_silence`]), and centres outside every interval (before the
//! first, after the last, or past the end of the tier).

use crate::timing::FrameTiming;

use super::IntervalTier;

/// The silence class.
pub const SILENCE: &str = "sil";

/// Silence markers folded into [`SILENCE`], compared case-insensitively after trimming: the
/// empty label (MFA, Praat), `sil` and `sp` (HTK, Kaldi, MFA 1.x), `<eps>` and `<sil>` (Kaldi),
/// `pau` (festival), `h#` (TIMIT), `silence`.
pub const SILENCE_MARKERS: [&str; 7] = ["sil", "sp", "<eps>", "<sil>", "pau", "h#", "silence"];

pub fn is_silence(label: &str) -> bool {
    let l = label.trim();
    l.is_empty() || SILENCE_MARKERS.iter().any(|m| l.eq_ignore_ascii_case(m))
}

/// One label per frame, for `n_frames` frames of `timing` (see the module rule). Labels borrow
/// from the tier; silence is the static [`SILENCE`].
pub fn frame_labels<'a>(tier: &'a IntervalTier, timing: &FrameTiming, n_frames: usize) -> Vec<&'a str> {
    let ivs = &tier.intervals;
    let mut labels = Vec::with_capacity(n_frames);
    let mut k = 0; // frame centres increase, so the covering interval only moves forward
    for i in 0..n_frames {
        let t = timing.center(i);
        while k < ivs.len() && ivs[k].xmax <= t && !(k + 1 == ivs.len() && ivs[k].xmax == t) {
            k += 1;
        }
        let label = match ivs.get(k) {
            Some(iv) if iv.xmin <= t && !is_silence(&iv.text) => iv.text.as_str(),
            _ => SILENCE,
        };
        labels.push(label);
    }
    labels
}
