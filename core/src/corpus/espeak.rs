//! Synthetic speech with exact alignments from espeak-ng's word and phoneme events.
//!
//! espeak-ng is GPL-3.0, so it runs as a separate program: `tools/espeak-align/espeak_align.c`,
//! built by `scripts/build_espeak_align.sh`. It writes `ID.wav` and `ID.events.tsv`; this module
//! turns the events into MFA-style `words` and `phones` tiers.
//!
//! Alignment rules: a phoneme lasts until the next phoneme event (the last one until the end of
//! the audio); empty phoneme names are espeak's pauses and become silence. A word's first phoneme
//! starts at the word event (espeak puts the word event a few ms before the first phoneme, e.g.
//! at a stop's closure), so phones tile words exactly. A word spans its phonemes; words without
//! any phoneme of positive length are dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

use super::{CorpusItem, Split};
use crate::textgrid::{IntervalTier, PhoneSet, TextGrid, Tier, UnknownPhones};

/// An espeak-ng voice (`language+variant`) and the split all its clips go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voice {
    pub name: &'static str,
    pub split: Split,
}

/// Two voices, a different accent and a different variant, are held out for the test split.
/// Names are espeak-ng voice files (`en` is British English) plus an optional `+variant`.
pub const VOICES: [Voice; 8] = [
    Voice { name: "en-us", split: Split::Train },
    Voice { name: "en-us+f3", split: Split::Train },
    Voice { name: "en-us+m3", split: Split::Train },
    Voice { name: "en", split: Split::Train },
    Voice { name: "en-gb-x-rp+f2", split: Split::Train },
    Voice { name: "en-029", split: Split::Train },
    Voice { name: "en-gb-scotland", split: Split::Test },
    Voice { name: "en-us+f4", split: Split::Test },
];

/// Speaking rates in words per minute (espeak's default is 175).
pub const RATES: [u32; 3] = [140, 175, 210];

/// One clip to synthesise.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthItem {
    pub id: String,
    pub voice: Voice,
    pub rate: u32,
    pub text: String,
}

/// The `k`-th clip of the demo: sentences in order, voices in turn (shifted on each pass over
/// the sentences, so a sentence is heard in several voices), rates cycling more slowly.
pub fn plan(k: usize, sentences: &[String]) -> SynthItem {
    let pass = k / sentences.len();
    SynthItem {
        id: format!("espeak-{k:05}"),
        voice: VOICES[(k + pass) % VOICES.len()],
        rate: RATES[(k / VOICES.len()) % RATES.len()],
        text: sentences[k % sentences.len()].clone(),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Word { sample: u64, text: String },
    Phone { sample: u64, name: String },
}

/// A parsed `ID.events.tsv`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLog {
    pub sample_rate: u32,
    pub samples: u64,
    pub events: Vec<Event>,
}

impl EventLog {
    pub fn read(path: &Path) -> Result<EventLog> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        EventLog::parse(&text).with_context(|| format!("{}: bad espeak_align events", path.display()))
    }

    pub fn parse(text: &str) -> Result<EventLog> {
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let field = |key: &str| -> Result<u64> {
            let v = header.split_whitespace().find_map(|kv| kv.strip_prefix(key)).context("missing header field")?;
            v.parse().with_context(|| format!("header field {key}{v}"))
        };
        let (sample_rate, samples) = (field("sample_rate=")? as u32, field("samples=")?);
        ensure!(sample_rate > 0, "sample rate 0");
        let mut events = Vec::new();
        for (n, line) in lines.enumerate() {
            let mut parts = line.splitn(3, '\t');
            let (kind, sample, label) = (parts.next(), parts.next(), parts.next().unwrap_or_default());
            let sample: u64 =
                sample.and_then(|s| s.parse().ok()).with_context(|| format!("line {}: `{line}`", n + 2))?;
            events.push(match kind {
                Some("word") => Event::Word { sample, text: label.to_string() },
                Some("phone") => Event::Phone { sample, name: label.to_string() },
                _ => bail!("line {}: unknown event `{line}`", n + 2),
            });
        }
        Ok(EventLog { sample_rate, samples, events })
    }

    pub fn duration_s(&self) -> f64 {
        self.samples as f64 / f64::from(self.sample_rate)
    }

    /// `words` and `phones` tiers (phones as espeak's IPA names; silence is the empty label).
    pub fn tiers(&self) -> (IntervalTier, IntervalTier) {
        struct Phone {
            start: u64,
            name: String,
            word: Option<usize>,
        }
        let mut words: Vec<(u64, &str)> = Vec::new();
        let mut phones: Vec<Phone> = Vec::new();
        let mut word_open = false; // a word event waits for its first phoneme
        for e in &self.events {
            match e {
                Event::Word { sample, text } => {
                    words.push((*sample, text));
                    word_open = true;
                }
                Event::Phone { sample, name } if name.is_empty() => {
                    phones.push(Phone { start: *sample, name: String::new(), word: None })
                }
                Event::Phone { sample, name } => {
                    let mut start = *sample;
                    if word_open {
                        let word_start = words.last().map_or(start, |w| w.0);
                        if word_start < start && phones.last().is_none_or(|p| p.start <= word_start) {
                            start = word_start;
                        }
                        word_open = false;
                    }
                    phones.push(Phone { start, name: name.clone(), word: words.len().checked_sub(1) });
                }
            }
        }
        let rate = f64::from(self.sample_rate);
        let end = self.samples;
        let mut phone_spans = Vec::new();
        let mut word_spans: Vec<(f64, f64, String)> = Vec::new();
        let mut span_word: Option<usize> = None;
        for (i, p) in phones.iter().enumerate() {
            let stop = phones.get(i + 1).map_or(end, |q| q.start).min(end);
            if p.name.is_empty() || stop <= p.start {
                continue;
            }
            let (a, b) = (p.start as f64 / rate, stop as f64 / rate);
            phone_spans.push((a, b, p.name.clone()));
            if let Some(w) = p.word {
                if span_word == Some(w) {
                    word_spans.last_mut().expect("open word").1 = b;
                } else {
                    word_spans.push((a, b, normalize_word(words[w].1)));
                    span_word = Some(w);
                }
            }
        }
        let xmax = end as f64 / rate;
        (
            IntervalTier::from_spans("words", 0.0, xmax, &word_spans),
            IntervalTier::from_spans("phones", 0.0, xmax, &phone_spans),
        )
    }
}

/// Lower case, punctuation around the word removed ("World," -> "world"), as MFA writes words.
fn normalize_word(w: &str) -> String {
    w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()
}

/// The helper binary: `$AUDIOSAE_ESPEAK_ALIGN`, else `$AUDIOSAE_CACHE/bin/espeak_align`.
pub fn helper_path() -> PathBuf {
    std::env::var_os("AUDIOSAE_ESPEAK_ALIGN")
        .map_or_else(|| crate::cli::cache_dir().join("bin/espeak_align"), PathBuf::from)
}

/// Runs the helper on `items`, writing `ID.wav` and `ID.events.tsv` into `dir`.
pub fn synthesize(helper: &Path, dir: &Path, items: &[SynthItem]) -> Result<()> {
    let mut child = Command::new(helper)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {} (build it with scripts/build_espeak_align.sh)", helper.display()))?;
    let mut stdin = child.stdin.take().context("helper stdin")?;
    for it in items {
        ensure!(!it.text.contains(['\t', '\n']), "sentence of {} contains a tab or newline", it.id);
        writeln!(stdin, "{}\t{}\t{}\t{}", it.id, it.voice.name, it.rate, it.text)?;
    }
    drop(stdin);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{} failed ({}): {}", helper.display(), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Turns a synthesised clip into a corpus item: writes `ID.TextGrid` (tiers `words`, `phones`,
/// phones mapped to `phone_set`) atomically, last, so its presence marks the item complete.
pub fn finish_item(
    dir: &Path,
    root: &Path,
    it: &SynthItem,
    phone_set: PhoneSet,
    unknown: &mut UnknownPhones,
) -> Result<CorpusItem> {
    let log = EventLog::read(&dir.join(format!("{}.events.tsv", it.id)))?;
    let (words, phones) = log.tiers();
    let phones = phone_set.map_tier(&phones, unknown);
    let tg = TextGrid {
        path: dir.join(format!("{}.TextGrid", it.id)),
        xmin: 0.0,
        xmax: log.duration_s(),
        tiers: vec![Tier::Intervals(words), Tier::Intervals(phones)],
    };
    super::write_textgrid(&tg)?;
    item(dir, root, it, &log)
}

/// The corpus item of a clip whose files are complete.
pub fn item(dir: &Path, root: &Path, it: &SynthItem, log: &EventLog) -> Result<CorpusItem> {
    let rel = |ext: &str| -> Result<PathBuf> {
        Ok(dir
            .join(format!("{}.{ext}", it.id))
            .strip_prefix(root)
            .context("synthetic clips live in the corpus")?
            .to_path_buf())
    };
    Ok(CorpusItem {
        id: it.id.clone(),
        audio: rel("wav")?,
        transcript: it.text.clone(),
        textgrid: Some(rel("TextGrid")?),
        duration_s: log.duration_s(),
        split: it.voice.split,
        speaker: it.voice.name.to_string(),
        source: "espeak-ng".into(),
    })
}
