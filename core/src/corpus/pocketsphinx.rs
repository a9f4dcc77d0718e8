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
/// (inner apostrophes and hyphens kept), and noise markers in brackets (`[laughter]`, `<unk>`,
/// `{CG}`, `<cutoff-x>`) dropped: they are not words of the dictionary, and the aligner's
/// silence and noise models cover the gap they leave.
pub fn transcript_words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|t| {
            let b = t.as_bytes();
            !matches!((b.first(), b.last()), (Some(b'['), Some(b']')) | (Some(b'<'), Some(b'>')) | (Some(b'{'), Some(b'}')))
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
    let text = std::fs::read_to_string(src).with_context(|| format!("{}: cannot read the dictionary", src.display()))?;
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
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run {} (reinstall it with scripts/build_pocketsphinx_align.sh)", helper.display()))?;
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
