//! Forced alignment with pocketsphinx, run as a helper program.
//!
//! The helper (`tools/pocketsphinx-align/pocketsphinx_align.py`, installed by
//! `scripts/build_pocketsphinx_align.sh` as `$AUDIOSAE_CACHE/bin/pocketsphinx_align`) runs in the
//! project's venv, which holds the pinned PyPI `pocketsphinx` wheel with its en-us acoustic model
//! and CMU dictionary. audiosae decodes and resamples the audio itself and hands the helper raw
//! 16 kHz PCM, so the helper needs no audio library. Protocol: one JSON request per line on
//! stdin, one JSON answer per line on stdout, in order (see the helper's docstring).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::textgrid::phones::to_arpabet39;
use crate::textgrid::{IntervalTier, SILENCE};

/// Environment variable that overrides the helper's path.
pub const HELPER_ENV: &str = "AUDIOSAE_POCKETSPHINX_ALIGN";
/// The pinned pocketsphinx version (also in `scripts/build_pocketsphinx_align.sh`).
pub const POCKETSPHINX_VERSION: &str = "5.1.1";

/// `$AUDIOSAE_POCKETSPHINX_ALIGN`, else `CACHE/bin/pocketsphinx_align`.
pub fn helper_path(cache: &Path) -> PathBuf {
    std::env::var_os(HELPER_ENV).map_or_else(|| cache.join("bin/pocketsphinx_align"), PathBuf::from)
}

/// The words pocketsphinx is asked to align: lower case, punctuation around words removed
/// (inner apostrophes kept), MFA's hesitation mark `<hes-word>` read as `word`, and other
/// markers in brackets (`[laughter]`, `<unk>`, `{CG}`, `<cutoff-x>`, a cut-off word) dropped:
/// they are not words of the dictionary, and the aligner's silence and noise models cover them.
pub fn transcript_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        // MFA's `<hes-word>` is the word said hesitantly: the word is there.
        .map(|t| t.strip_prefix("<hes-").and_then(|w| w.strip_suffix('>')).unwrap_or(t))
        .filter(|t| {
            let b = t.as_bytes();
            !matches!(
                (b.first(), b.last()),
                (Some(b'['), Some(b']')) | (Some(b'<'), Some(b'>')) | (Some(b'{'), Some(b'}'))
            )
        })
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'').to_lowercase())
        .map(|t| t.trim_matches('\'').to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The helper's answer for one clip.
#[derive(Debug, Deserialize)]
struct Answer {
    id: Option<String>,
    ok: bool,
    #[serde(default)]
    error: String,
    #[serde(default)]
    frame_s: f64,
    #[serde(default)]
    attempt: usize,
    #[serde(default)]
    words: Vec<(String, i64, i64)>,
    #[serde(default)]
    phones: Vec<(String, i64, i64, i64)>,
}

/// A clip's alignment in seconds: labelled spans only (silence is the gaps).
#[derive(Clone, Debug, PartialEq)]
pub struct Alignment {
    /// `(start, end, word)`.
    pub words: Vec<(f64, f64, String)>,
    /// `(start, end, ARPAbet phone)`; silence and noise phones are left out.
    pub phones: Vec<(f64, f64, String)>,
    /// Which beam setting succeeded (0: pocketsphinx's defaults).
    pub attempt: usize,
}

impl Alignment {
    /// `words` and `phones` tiers over `[0, duration_s]`, spans clipped to the clip.
    pub fn tiers(&self, duration_s: f64) -> (IntervalTier, IntervalTier) {
        let clip = |spans: &[(f64, f64, String)]| -> Vec<(f64, f64, String)> {
            spans
                .iter()
                .map(|(a, b, t)| (a.min(duration_s), b.min(duration_s), t.clone()))
                .filter(|(a, b, _)| b > a)
                .collect()
        };
        (
            IntervalTier::from_spans("words", 0.0, duration_s, &clip(&self.words)),
            IntervalTier::from_spans("phones", 0.0, duration_s, &clip(&self.phones)),
        )
    }
}

/// Parses one answer line for the clip `id`: the alignment, or the helper's reason for failing
/// (`Err(reason)`). A malformed line is an `Err` too: the clip is reported, the run goes on.
pub fn parse_answer(line: &str, id: &str) -> std::result::Result<Alignment, String> {
    let a: Answer = serde_json::from_str(line).map_err(|e| format!("unreadable answer from the aligner ({e})"))?;
    if a.id.as_deref() != Some(id) {
        return Err(format!("the aligner answered for `{}` instead of `{id}`", a.id.unwrap_or_default()));
    }
    if !a.ok {
        return Err(if a.error.is_empty() { "alignment failed".into() } else { a.error });
    }
    if !(a.frame_s > 0.0 && a.frame_s < 1.0) {
        return Err(format!("the aligner reported a frame length of {} s", a.frame_s));
    }
    let secs = |f: i64| f as f64 * a.frame_s;
    let mut words = Vec::with_capacity(a.words.len());
    let mut last = 0;
    for (w, s, e) in &a.words {
        if *s < last || e < s {
            return Err(format!("the aligner's word `{w}` spans frames {s}..{e}, out of order"));
        }
        last = *e;
        words.push((secs(*s), secs(*e), w.clone()));
    }
    let mut phones = Vec::with_capacity(a.phones.len());
    last = 0;
    for (p, s, e, _) in &a.phones {
        if *s < last || e < s {
            return Err(format!("the aligner's phone `{p}` spans frames {s}..{e}, out of order"));
        }
        last = *e;
        let label = helper_phone(p).map_err(|e| format!("the aligner's phone `{p}`: {e}"))?;
        if !label.is_empty() && e > s {
            phones.push((secs(*s), secs(*e), label));
        }
    }
    Ok(Alignment { words, phones, attempt: a.attempt })
}

/// A pocketsphinx phone in the common set: `SIL` and the noise phones (`+NSN+`, `+SPN+`, ...)
/// are silence (the empty label), CMU phones are ARPAbet-39 already.
fn helper_phone(p: &str) -> std::result::Result<String, String> {
    if p.starts_with('+') || p.eq_ignore_ascii_case("SIL") {
        return Ok(String::new());
    }
    match to_arpabet39(p) {
        Some([one]) if *one != SILENCE => Ok(one.to_string()),
        _ => Err("not a CMU ARPAbet phone".into()),
    }
}

/// Writes a pronunciation dictionary the helper reads (`word PH1 PH2 ...`, CMU ARPAbet) from
/// `src`, in CMU format or MFA's (`word [probabilities] phones`, IPA or ARPAbet): numbers after
/// the word are skipped and each phone is mapped to ARPAbet-39. Entries with a phone outside the
/// set are left out; returns `(kept, left out)`.
pub fn convert_dictionary(src: &Path, dst: &Path) -> Result<(usize, usize)> {
    let text =
        std::fs::read_to_string(src).with_context(|| format!("{}: cannot read the dictionary", src.display()))?;
    let (mut out, mut kept, mut dropped) = (String::new(), 0, 0);
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(word) = fields.next().filter(|w| !w.starts_with(";;")) else { continue };
        let mut phones = Vec::new();
        let mut ok = true;
        for f in fields.skip_while(|f| f.parse::<f64>().is_ok()) {
            match to_arpabet39(f) {
                Some(ps) if !ps.iter().any(|p| *p == SILENCE || *p == crate::textgrid::phones::SPOKEN_NOISE) => {
                    phones.extend_from_slice(ps)
                }
                _ => ok = false,
            }
        }
        if ok && !phones.is_empty() {
            out.push_str(&format!("{} {}\n", word.to_lowercase(), phones.join(" ")));
            kept += 1;
        } else {
            dropped += 1;
        }
    }
    if kept == 0 {
        bail!("{}: no usable pronunciation (lines `word PH1 PH2 ...`, CMU ARPAbet or MFA IPA)", src.display());
    }
    std::fs::write(dst, out).with_context(|| format!("{}: cannot write", dst.display()))?;
    Ok((kept, dropped))
}

/// A running helper.
pub struct Aligner {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    helper: PathBuf,
}

impl Aligner {
    /// Starts `helper`, with extra pronunciations from `dict` (already in the helper's format).
    pub fn start(helper: &Path, dict: Option<&Path>) -> Result<Aligner> {
        if !helper.is_file() {
            bail!(
                "{}: the pocketsphinx alignment helper is missing; run `scripts/build_pocketsphinx_align.sh` \
                 (or `./audiosae.sh setup`) first, or point {HELPER_ENV} at it",
                helper.display()
            );
        }
        let mut cmd = Command::new(helper);
        if let Some(d) = dict {
            cmd.arg("--dict").arg(d);
        }
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().with_context(|| {
                format!("cannot run {} (reinstall it with scripts/build_pocketsphinx_align.sh)", helper.display())
            })?;
        let stdin = child.stdin.take().context("helper stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("helper stdout")?);
        Ok(Aligner { child, stdin, stdout, helper: helper.to_path_buf() })
    }

    /// Aligns `words` to the 16 kHz mono PCM in `pcm` (s16le). `Err(reason)` for a clip the
    /// aligner could not align; a helper that died is an error of the whole run (`Ok(Err)` would
    /// hide it), hence the nested result.
    pub fn align(&mut self, id: &str, pcm: &Path, words: &[String]) -> Result<std::result::Result<Alignment, String>> {
        let request = serde_json::json!({ "id": id, "pcm": pcm, "words": words });
        let mut line = String::new();
        let io = writeln!(self.stdin, "{request}")
            .and_then(|_| self.stdin.flush())
            .and_then(|_| self.stdout.read_line(&mut line));
        match io {
            Ok(n) if n > 0 => Ok(parse_answer(line.trim_end(), id)),
            _ => {
                let status = self.child.try_wait().ok().flatten();
                bail!(
                    "the pocketsphinx helper {} stopped answering (exit status {}); its errors are above",
                    self.helper.display(),
                    status.map_or_else(|| "unknown".into(), |s| s.to_string())
                )
            }
        }
    }
}

impl Drop for Aligner {
    fn drop(&mut self) {
        // Closing stdin ends the helper's loop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `samples` (mono, 16 kHz, [-1, 1]) as s16le to `path`.
pub fn write_pcm(path: &Path, samples: &[f32]) -> Result<()> {
    let bytes: Vec<u8> =
        samples.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes()).collect();
    std::fs::write(path, bytes).with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_become_dictionary_words() {
        let w = transcript_words("Hello, World! <cutoff-mont> [laughter] <hes-forced> {CG} 'er don't <unk> aligner.");
        assert_eq!(w, ["hello", "world", "forced", "er", "don't", "aligner"]);
        assert!(transcript_words(" [noise] <sil> ").is_empty());
    }

    // An answer as the helper writes it: 10 ms frames, `the(2)` already reported as `the`.
    const ANSWER: &str = r#"{"ok": true, "frame_s": 0.01, "attempt": 1, "chunked": false,
        "words": [["the", 12, 20], ["cat", 20, 51]],
        "phones": [["SIL", 0, 12, -1], ["DH", 12, 15, 0], ["AH", 15, 20, 0], ["K", 20, 30, 1],
                   ["AE", 30, 44, 1], ["T", 44, 51, 1], ["+NSN+", 51, 60, -1]], "id": "c1"}"#;

    #[test]
    fn helper_answers_become_tiers() {
        let a = parse_answer(&ANSWER.replace('\n', " "), "c1").unwrap();
        assert_eq!(a.attempt, 1);
        assert_eq!(a.words, [(0.12, 0.2, "the".to_string()), (0.2, 0.51, "cat".to_string())]);
        let labels: Vec<&str> = a.phones.iter().map(|p| p.2.as_str()).collect();
        assert_eq!(labels, ["DH", "AH", "K", "AE", "T"], "silence and noise phones are gaps");
        assert_eq!((a.phones[2].0, a.phones[2].1), (0.2, 0.3));
        // Tiers over the clip: silence gaps filled, spans past the end clipped.
        let (w, p) = a.tiers(0.45);
        let wl: Vec<(&str, f64, f64)> = w.intervals.iter().map(|i| (i.text.as_str(), i.xmin, i.xmax)).collect();
        assert_eq!(wl, [("", 0.0, 0.12), ("the", 0.12, 0.2), ("cat", 0.2, 0.45)]);
        assert_eq!(p.intervals.last().unwrap().text, "T");
        assert_eq!(p.intervals.last().unwrap().xmax, 0.45);
        assert_eq!(p.intervals.len(), 6, "a leading silence and five phones (the T ends at the clip's end)");
    }

    #[test]
    fn bad_answers_are_reasons_not_panics() {
        let fail = r#"{"id": "c1", "ok": false, "error": "no word alignment"}"#;
        assert_eq!(parse_answer(fail, "c1").unwrap_err(), "no word alignment");
        assert!(parse_answer(ANSWER, "c2").unwrap_err().contains("instead of `c2`"));
        assert!(parse_answer("not json", "c1").unwrap_err().contains("unreadable"));
        let disorder = ANSWER.replace(r#"["cat", 20, 51]"#, r#"["cat", 10, 51]"#);
        assert!(parse_answer(&disorder, "c1").unwrap_err().contains("out of order"));
        let unknown = ANSWER.replace(r#"["K", 20, 30, 1]"#, r#"["QQ", 20, 30, 1]"#);
        assert!(parse_answer(&unknown, "c1").unwrap_err().contains("`QQ`"));
        let frame = ANSWER.replace("0.01", "0");
        assert!(parse_answer(&frame, "c1").unwrap_err().contains("frame length"));
    }

    #[test]
    fn dictionaries_convert_to_cmu_arpabet() {
        let dir = std::env::temp_dir().join(format!("audiosae-ps-dict-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("in.dict");
        // MFA (probabilities, then IPA), CMU (stress digits) and an entry with an unknown phone.
        std::fs::write(&src, "aligner\t0.99\t0.14\t1.0\t1.0\tə l aj n ɚ\nPUTTY  P AH1 T IY0\nodd ʘ a\n;;; comment\n")
            .unwrap();
        let dst = dir.join("out.dict");
        assert_eq!(convert_dictionary(&src, &dst).unwrap(), (2, 1));
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), "aligner AH L AY N ER\nputty P AH T IY\n");
        std::fs::write(&src, "x ʘ\n").unwrap();
        assert!(convert_dictionary(&src, &dst).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
