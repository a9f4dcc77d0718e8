//! Praat TextGrids: reading ([`parse`]), writing ([`write`]), frame labels ([`labels`]) and the
//! common phone set ([`phones`]).
//!
//! A TextGrid is a list of tiers; an interval tier tiles `[xmin, xmax]` with labelled intervals,
//! a point tier (Praat's `TextTier`) holds labelled instants. Forced aligners (MFA) write one
//! interval tier `words` and one `phones` per speaker; [`TierName`] finds them.

pub mod labels;
pub mod parse;
pub mod phones;
pub mod write;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use labels::{frame_labels, is_silence, SILENCE};
pub use phones::{phone_class, PhoneSet, UnknownPhones, ARPABET39, PHONE_CLASSES};

/// How far an interval may extend past the end of its audio before [`TextGrid::check_audio_end`]
/// rejects it: aligners round the last boundary, and resampling changes the length by < 1 ms.
pub const AUDIO_END_TOLERANCE_S: f64 = 0.025;

#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    pub xmin: f64,
    pub xmax: f64,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub time: f64,
    pub mark: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IntervalTier {
    pub name: String,
    pub xmin: f64,
    pub xmax: f64,
    pub intervals: Vec<Interval>,
}

/// Praat's `TextTier`.
#[derive(Clone, Debug, PartialEq)]
pub struct PointTier {
    pub name: String,
    pub xmin: f64,
    pub xmax: f64,
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Tier {
    Intervals(IntervalTier),
    Points(PointTier),
}

impl Tier {
    pub fn name(&self) -> &str {
        match self {
            Tier::Intervals(t) => &t.name,
            Tier::Points(t) => &t.name,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TextGrid {
    /// The file it was read from (for error messages); `<memory>` when built in code.
    pub path: PathBuf,
    pub xmin: f64,
    pub xmax: f64,
    pub tiers: Vec<Tier>,
}

/// Which tier to take from a TextGrid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierName {
    /// `words` (MFA) or `word` (praatio examples), case-insensitive, optionally after a speaker
    /// prefix `SPEAKER - ` as MFA writes for multi-speaker files ("61 - words").
    Words,
    /// `phones` or `phone`, with the same rules.
    Phones,
    /// Exactly this name, case-insensitive.
    Exact(String),
}

impl TierName {
    /// The canonical name: what the writer uses and what errors report.
    pub fn canonical(&self) -> &str {
        match self {
            TierName::Words => "words",
            TierName::Phones => "phones",
            TierName::Exact(n) => n,
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        let accepted: &[&str] = match self {
            TierName::Words => &["words", "word"],
            TierName::Phones => &["phones", "phone"],
            TierName::Exact(n) => return name.trim().eq_ignore_ascii_case(n.trim()),
        };
        let bare = name.rsplit_once(" - ").map_or(name, |(_, tail)| tail).trim();
        accepted.iter().any(|a| bare.eq_ignore_ascii_case(a))
    }
}

impl std::str::FromStr for TierName {
    type Err = std::convert::Infallible;

    /// `words` and `phones` select the MFA rules; anything else is an exact name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "words" => TierName::Words,
            "phones" => TierName::Phones,
            _ => TierName::Exact(s.to_string()),
        })
    }
}

/// Why a TextGrid could not be read or used. Messages start with `FILE:LINE` where known.
#[derive(Debug, thiserror::Error)]
pub enum TextGridError {
    #[error("{}: cannot read the file: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a text TextGrid: {detail}", path.display())]
    NotTextGrid { path: PathBuf, detail: String },
    #[error("{}:{line}: malformed number `{text}`", path.display())]
    MalformedNumber { path: PathBuf, line: usize, text: String },
    #[error("{}:{line}: unterminated string (a `\"` opened here is never closed)", path.display())]
    UnterminatedString { path: PathBuf, line: usize },
    #[error("{}:{line}: expected {expected}, found {found}", path.display())]
    Unexpected { path: PathBuf, line: usize, expected: String, found: String },
    #[error("{}: the file ends where {expected} was expected (truncated?)", path.display())]
    UnexpectedEnd { path: PathBuf, expected: String },
    #[error("{}:{line}: tier `{tier}`: xmin {xmin} > xmax {xmax}", path.display())]
    InvertedInterval { path: PathBuf, line: usize, tier: String, xmin: f64, xmax: f64 },
    #[error("{}:{line}: tier `{tier}`: interval starting at {xmin} begins before the previous one ends ({prev_xmax})", path.display())]
    Overlap { path: PathBuf, line: usize, tier: String, xmin: f64, prev_xmax: f64 },
    #[error("{}: tier `{tier}`: `{text}` ends at {xmax:.3} s, past the end of the audio ({audio_s:.3} s)", path.display())]
    PastAudioEnd { path: PathBuf, tier: String, text: String, xmax: f64, audio_s: f64 },
    #[error("{}: no interval tier named `{wanted}` (tiers: {})", path.display(), available.join(", "))]
    MissingTier { path: PathBuf, wanted: String, available: Vec<String> },
}

impl TextGrid {
    /// Reads a TextGrid file (long or short text format; UTF-8, UTF-16 with BOM, or Latin-1).
    pub fn read(path: &Path) -> Result<TextGrid, TextGridError> {
        let bytes = std::fs::read(path).map_err(|source| TextGridError::Io { path: path.to_path_buf(), source })?;
        parse::parse_bytes(&bytes, path)
    }

    /// Parses TextGrid text already in memory; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<TextGrid, TextGridError> {
        parse::parse_str(text, path)
    }

    /// Writes the long text format, UTF-8 (what Praat and MFA write).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, write::to_long_text(self))
    }

    pub fn tier_names(&self) -> Vec<String> {
        self.tiers.iter().map(|t| t.name().to_string()).collect()
    }

    /// The first interval tier that `name` matches; an exact (unprefixed) match wins over a
    /// speaker-prefixed one.
    pub fn interval_tier(&self, name: &TierName) -> Result<&IntervalTier, TextGridError> {
        let tiers = || {
            self.tiers.iter().filter_map(|t| match t {
                Tier::Intervals(t) if name.matches(&t.name) => Some(t),
                _ => None,
            })
        };
        tiers().find(|t| !t.name.contains(" - ")).or_else(|| tiers().next()).ok_or_else(|| TextGridError::MissingTier {
            path: self.path.clone(),
            wanted: name.canonical().to_string(),
            available: self.tier_names(),
        })
    }

    pub fn words(&self) -> Result<&IntervalTier, TextGridError> {
        self.interval_tier(&TierName::Words)
    }

    pub fn phones(&self) -> Result<&IntervalTier, TextGridError> {
        self.interval_tier(&TierName::Phones)
    }

    /// Fails if any labelled interval or point lies past `audio_s` (+ `tolerance_s`). Empty
    /// trailing intervals are allowed: they only pad the tier to the grid's xmax.
    pub fn check_audio_end(&self, audio_s: f64, tolerance_s: f64) -> Result<(), TextGridError> {
        let limit = audio_s + tolerance_s;
        for tier in &self.tiers {
            let late = match tier {
                Tier::Intervals(t) => t
                    .intervals
                    .iter()
                    .find(|i| i.xmax > limit && !(i.text.trim().is_empty() && i.xmin <= limit))
                    .map(|i| (i.text.clone(), i.xmax)),
                Tier::Points(t) => t.points.iter().find(|p| p.time > limit).map(|p| (p.mark.clone(), p.time)),
            };
            if let Some((text, xmax)) = late {
                return Err(TextGridError::PastAudioEnd {
                    path: self.path.clone(),
                    tier: tier.name().to_string(),
                    text,
                    xmax,
                    audio_s,
                });
            }
        }
        Ok(())
    }
}

impl IntervalTier {
    /// Intervals with a non-empty label, i.e. not silence gaps.
    pub fn labelled(&self) -> impl Iterator<Item = &Interval> {
        self.intervals.iter().filter(|i| !i.text.trim().is_empty())
    }

    /// Builds a tier over `[xmin, xmax]` from labelled spans, filling gaps with empty intervals
    /// (as MFA writes them). Spans must be sorted and non-overlapping.
    pub fn from_spans(name: &str, xmin: f64, xmax: f64, spans: &[(f64, f64, String)]) -> IntervalTier {
        let mut intervals = Vec::with_capacity(2 * spans.len() + 1);
        let mut t = xmin;
        for (a, b, text) in spans {
            if *a > t {
                intervals.push(Interval { xmin: t, xmax: *a, text: String::new() });
            }
            intervals.push(Interval { xmin: *a, xmax: *b, text: text.clone() });
            t = *b;
        }
        if xmax > t {
            intervals.push(Interval { xmin: t, xmax, text: String::new() });
        }
        IntervalTier { name: name.to_string(), xmin, xmax, intervals }
    }
}
