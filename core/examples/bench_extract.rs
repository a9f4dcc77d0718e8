//! Extraction throughput of audiosae (fast and exact) against transformers' WhisperFeatureExtractor
//! + WhisperModel encoder on the same clips, weights, threads and batch size, in one run.
//!
//! ```sh
//! ./audiosae.sh setup && tests/fixtures/make_fixtures.sh   # the peer needs the dev venv
//! cargo run --example bench_extract -- --clips-dir ~/.cache/audiosae/corpus/demo --max-seconds 10
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use audiosae::models::{AudioModel, LayerSpec, Trim};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Whisper model (default: the tiny.en CTranslate2 checkpoint from the setup).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Directory searched recursively for .wav/.flac clips.
    #[arg(long)]
    clips_dir: PathBuf,
    /// Only clips shorter than this.
    #[arg(long, default_value_t = 10.0)]
    max_seconds: f64,
    #[arg(long, default_value_t = 200)]
    max_clips: usize,
    #[arg(long, default_value_t = 2)]
    threads: i32,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Python with torch + transformers (the fixtures venv).
    #[arg(long, default_value = ".cache/venv-fixtures/bin/python")]
    python: PathBuf,
}

fn find_clips(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            find_clips(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "wav" || x == "flac") {
            out.push(p);
        }
    }
    Ok(())
}

/// Best-of-`repeats` seconds to extract every clip in batches.
fn time_extract(m: &AudioModel, clips: &[Vec<f32>], batch: usize, trim: Trim, repeats: usize) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t = Instant::now();
        for chunk in clips.chunks(batch) {
            let refs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
            m.extract(&refs, &[LayerSpec::Encoder], trim)?;
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn main() -> Result<()> {
    let a = Args::parse();
    tch::set_num_threads(a.threads);
    let model = a.model.unwrap_or_else(audiosae::cli::default_model);
    let m = AudioModel::load(model.to_str().unwrap(), tch::Device::Cpu, tch::Kind::Float, false)?;
    let mut paths = Vec::new();
    find_clips(&a.clips_dir, &mut paths)?;
    paths.sort();
    // Both sides read the same 16 kHz mono samples: clips at other rates are resampled once and
    // written as float WAVs for the peer.
    let peer_dir = std::env::temp_dir().join(format!("bench-extract-{}", std::process::id()));
    std::fs::create_dir_all(&peer_dir)?;
    let mut clips = Vec::new();
    let mut used = Vec::new();
    for p in paths {
        let Ok(audio) = audiosae::audio::load_audio(&p) else { continue };
        if audio.duration_s() >= a.max_seconds {
            continue;
        }
        let wav = peer_dir.join(format!("{:04}.wav", clips.len()));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&wav, spec)?;
        for &x in &audio.samples {
            w.write_sample(x)?;
        }
        w.finalize()?;
        clips.push(audio.samples);
        used.push(wav);
        if clips.len() == a.max_clips {
            break;
        }
    }
    if clips.is_empty() {
        bail!("no clips under {} s in {}", a.max_seconds, a.clips_dir.display());
    }
    let audio_s: f64 = clips.iter().map(|c| c.len() as f64 / 16000.0).sum();
    println!("{} clips, {audio_s:.1} s of audio, batch {}, {} threads", clips.len(), a.batch_size, a.threads);

    // Warm-up, and the fast-vs-exact deviation on the same clips.
    let mut max_dev = 0f64;
    for chunk in clips.chunks(a.batch_size) {
        let refs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
        let e = m.extract(&refs, &[LayerSpec::Encoder], Trim::Exact)?.remove(0);
        let f = m.extract(&refs, &[LayerSpec::Encoder], Trim::Fast)?.remove(0);
        for (x, y) in e.iter().zip(&f) {
            max_dev = max_dev.max((&x.frames - &y.frames).abs().max().double_value(&[]));
        }
    }
    let exact = time_extract(&m, &clips, a.batch_size, Trim::Exact, a.repeats)?;
    let fast = time_extract(&m, &clips, a.batch_size, Trim::Fast, a.repeats)?;

    let peer = Command::new(&a.python)
        .arg("benches/whisper_extract_peer.py")
        .args(["--ct2-model-dir", model.to_str().unwrap()])
        .args(["--threads", &a.threads.to_string(), "--batch-size", &a.batch_size.to_string()])
        .args(["--repeats", &a.repeats.to_string()])
        .args(&used)
        .env("OMP_NUM_THREADS", a.threads.to_string())
        .output()
        .with_context(|| format!("running the peer with {}", a.python.display()))?;
    if !peer.status.success() {
        bail!("peer failed: {}", String::from_utf8_lossy(&peer.stderr));
    }
    let stdout = String::from_utf8_lossy(&peer.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))?;
    let peer_rate = json["audio_s_per_s"].as_f64().context("peer output")?;

    println!("{:<44} {:>14} {:>10}", "", "audio-s / s", "vs peer");
    println!("{:<44} {:>14.1} {:>9.2}x", "transformers WhisperFeatureExtractor+encoder", peer_rate, 1.0);
    println!("{:<44} {:>14.1} {:>9.2}x", "audiosae extract --exact", audio_s / exact, audio_s / exact / peer_rate);
    println!("{:<44} {:>14.1} {:>9.2}x", "audiosae extract (fast)", audio_s / fast, audio_s / fast / peer_rate);
    std::fs::remove_dir_all(&peer_dir)?;
    println!("fast vs exact max abs deviation on these clips: {max_dev:.3e} (Whisper attends to its 30 s padding)");
    Ok(())
}
