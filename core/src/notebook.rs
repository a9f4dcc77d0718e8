//! Helpers for the evcxr notebooks: the one parameter file every notebook reads, and rich
//! display (PNG, HTML, playable audio) through evcxr's content protocol.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// `notebooks/params.toml`: change it once to point every notebook at another model or corpus
/// (e.g. Qwen/Qwen2-Audio-7B-Instruct in the HF cache and a LibriSpeech manifest).
#[derive(Debug, Clone, Deserialize)]
pub struct NotebookParams {
    /// Audio model for extraction (`--model`): a directory or a hub id. Empty: Whisper tiny.en.
    #[serde(default)]
    pub model: String,
    /// Layer to extract (`projector`, `encoder`, `encoder.N`); empty: the model's default.
    #[serde(default)]
    pub layer: String,
    /// Corpus manifest or directory; empty: the demo corpus.
    #[serde(default)]
    pub corpus: String,
    /// Where notebooks write stores, SAEs and reports (relative to the repository root).
    pub work_dir: PathBuf,
    /// Qwen2-Audio checkpoint used for generation and interventions (the tiny fixture by default).
    pub generator: String,
    /// SAE width and k for the notebooks' training runs.
    pub sae_width: usize,
    pub sae_k: usize,
    pub sae_steps: usize,
    pub seeds: Vec<u64>,
    pub device: String,
}

impl NotebookParams {
    /// Reads `$AUDIOSAE_NOTEBOOK_PARAMS` or `<repo>/notebooks/params.toml`, filling in the
    /// defaults installed by the set-up.
    pub fn load() -> Result<Self> {
        let path = std::env::var("AUDIOSAE_NOTEBOOK_PARAMS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("notebooks/params.toml"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut p: NotebookParams = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if p.model.is_empty() {
            p.model = crate::cli::default_model().display().to_string();
        }
        if p.corpus.is_empty() {
            p.corpus = crate::cli::cache_dir().join("corpus/demo").display().to_string();
        }
        let root = repo_root();
        p.work_dir = root.join(&p.work_dir);
        if Path::new(&p.generator).is_relative() && root.join(&p.generator).exists() {
            p.generator = root.join(&p.generator).display().to_string();
        }
        Ok(p)
    }
}

/// The repository root (`AUDIOSAE_ROOT`, else the source tree this crate was built from).
pub fn repo_root() -> PathBuf {
    std::env::var("AUDIOSAE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn emit(mime: &str, payload: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{payload}\nEVCXR_END_CONTENT");
}

/// Shows a PNG file as an image output.
pub fn show_png(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    emit("image/png", &base64(&bytes));
    Ok(())
}

/// Shows an HTML fragment.
pub fn show_html(html: &str) {
    emit("text/html", html);
}

/// An `<audio>` element playing `samples` (16 kHz mono) between `t0` and `t1` seconds,
/// embedded as a WAV data URI.
pub fn audio_html(samples: &[f32], t0: f64, t1: f64) -> Result<String> {
    let sr = crate::mel::SAMPLE_RATE as f64;
    let a = ((t0.max(0.0) * sr) as usize).min(samples.len());
    let b = ((t1 * sr) as usize).clamp(a, samples.len());
    let mut buf = Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut buf, spec)?;
    for &x in &samples[a..b] {
        w.write_sample((x.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    w.finalize()?;
    Ok(format!("<audio controls src=\"data:audio/wav;base64,{}\"></audio>", base64(buf.get_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn audio_html_embeds_a_wav() {
        let html = audio_html(&vec![0.1; 16000], 0.25, 0.5).unwrap();
        assert!(html.starts_with("<audio controls src=\"data:audio/wav;base64,UklGR"));
    }
}
