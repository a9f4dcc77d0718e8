//! `audiosae align`: word and phone TextGrids for audio with transcripts, by pocketsphinx
//! ([`super::pocketsphinx`]), written as a corpus directory like the demo's.
//!
//! Each clip's audio is copied into the output and its TextGrid written last, atomically, so a
//! clip whose TextGrid is there and reads with both tiers is done: a rerun (after `kill -9` too)
//! skips it. A clip that cannot be aligned is reported with its reason and left out; the run
//! goes on.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::pocketsphinx::{transcript_words, Aligner};
use super::{Corpus, CorpusItem, Manifest, Split};
use crate::textgrid::{PhoneSet, TextGrid, Tier};

/// Written first into an `align` output folder, so that a rerun knows it as its own.
pub const ALIGN_MARKER: &str = ".audiosae-align";
/// Clips that could not be aligned, one JSON object per line, rewritten by each run.
pub const ERRORS_FILE: &str = "errors.jsonl";

/// True for a folder `audiosae align` wrote or started.
pub fn is_align_output(dir: &Path) -> bool {
    dir.join(ALIGN_MARKER).is_file()
}

/// One clip to align.
#[derive(Clone, Debug)]
pub struct AlignJob {
    pub id: String,
    /// The source audio (any format audiosae decodes).
    pub audio: PathBuf,
    /// Where its copy goes, relative to the output corpus; the TextGrid goes beside it.
    pub out_rel: PathBuf,
    pub transcript: String,
    pub speaker: String,
    pub split: Split,
    pub source: String,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct AlignRun {
    pub items: Vec<CorpusItem>,
    /// `(audio file, reason)` of clips left out.
    pub failed: Vec<(String, String)>,
    pub aligned: usize,
    pub reused: usize,
    /// Seconds of audio aligned now, and the wall time it took.
    pub aligned_s: f64,
    pub wall_s: f64,
}

/// The TextGrid path of a job in `root`.
pub fn textgrid_rel(job: &AlignJob) -> PathBuf {
    job.out_rel.with_extension("TextGrid")
}

/// True when `path` is a TextGrid with words and phones tiers (what this module writes).
fn complete(path: &Path) -> bool {
    TextGrid::read(path).is_ok_and(|tg| tg.words().is_ok() && tg.phones().is_ok())
}

/// Aligns every job into `root` (skipping those already done), with a progress bar.
pub fn align_jobs(aligner: &mut Aligner, jobs: &[AlignJob], root: &Path, label: &str) -> Result<AlignRun> {
    let work = root.join(".work");
    std::fs::create_dir_all(&work).with_context(|| format!("{}: cannot create", work.display()))?;
    let bar = ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{label} {{bar:40}} {{pos}}/{{len}} clips, {{msg}} ({{eta}} left)"))
            .expect("valid template"),
    );
    let mut run = AlignRun::default();
    let start = std::time::Instant::now();
    for job in jobs {
        bar.inc(1);
        let tg_path = root.join(textgrid_rel(job));
        let audio_out = root.join(&job.out_rel);
        if complete(&tg_path) && audio_out.is_file() {
            run.reused += 1;
        } else {
            match align_one(aligner, job, root, &work)? {
                Ok(d) => {
                    run.aligned += 1;
                    run.aligned_s += d;
                }
                Err(reason) => {
                    run.failed.push((job.audio.display().to_string(), reason));
                    bar.set_message(format!("{} failed", run.failed.len()));
                    continue;
                }
            }
        }
        // Read back the same way for new and reused clips, so that a resumed run writes the
        // same manifest.
        let duration_s = match super::audio_duration_s(&audio_out) {
            Ok(d) => d,
            Err(e) => {
                run.failed.push((job.audio.display().to_string(), format!("{e:#}")));
                continue;
            }
        };
        run.items.push(CorpusItem {
            id: job.id.clone(),
            audio: job.out_rel.clone(),
            transcript: job.transcript.clone(),
            textgrid: Some(textgrid_rel(job)),
            duration_s,
            split: job.split,
            speaker: job.speaker.clone(),
            source: job.source.clone(),
        });
    }
    bar.finish_and_clear();
    run.wall_s = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&work);
    Ok(run)
}

/// Aligns one clip; `Ok(Err(reason))` for a clip that is skipped, `Err` for a run that cannot go
/// on (the helper died, the output folder cannot be written).
fn align_one(
    aligner: &mut Aligner,
    job: &AlignJob,
    root: &Path,
    work: &Path,
) -> Result<std::result::Result<f64, String>> {
    let words = transcript_words(&job.transcript);
    if words.is_empty() {
        return Ok(Err("no transcript (give STEM.lab or STEM.txt beside the audio, or a manifest)".into()));
    }
    let audio = match crate::audio::load_audio(&job.audio) {
        Ok(a) => a,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let pcm = work.join("clip.pcm");
    super::pocketsphinx::write_pcm(&pcm, &audio.samples)?;
    let alignment = match aligner.align(&job.id, &pcm, &words)? {
        Ok(a) => a,
        Err(reason) => return Ok(Err(reason)),
    };
    let duration_s = audio.duration_s();
    let (w, p) = alignment.tiers(duration_s);
    let audio_out = root.join(&job.out_rel);
    if let Some(dir) = audio_out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let tmp = audio_out.with_extension("copy.tmp");
    std::fs::copy(&job.audio, &tmp)
        .with_context(|| format!("cannot copy {} to {}", job.audio.display(), tmp.display()))?;
    std::fs::rename(&tmp, &audio_out).with_context(|| format!("{}: cannot write", audio_out.display()))?;
    let tg = TextGrid {
        path: root.join(textgrid_rel(job)),
        xmin: 0.0,
        xmax: duration_s,
        tiers: vec![Tier::Intervals(w), Tier::Intervals(p)],
    };
    super::write_textgrid(&tg)?;
    Ok(Ok(duration_s))
}

/// The jobs of `audiosae align`: every item of `corpus` (its audio relative to the corpus root
/// keeps its relative path in the output; items outside the root go under `audio/`).
pub fn jobs_of(corpus: &Corpus) -> Vec<AlignJob> {
    corpus
        .manifest
        .items
        .iter()
        .map(|item| {
            let audio = corpus.audio_path(item);
            let inside = item.audio.is_relative() && !item.audio.components().any(|c| c.as_os_str() == "..");
            let out_rel = if inside {
                item.audio.clone()
            } else {
                Path::new("audio").join(format!(
                    "{}.{}",
                    item.id,
                    audio.extension().and_then(|e| e.to_str()).unwrap_or("wav")
                ))
            };
            AlignJob {
                id: item.id.clone(),
                audio,
                out_rel,
                transcript: item.transcript.clone(),
                speaker: item.speaker.clone(),
                split: item.split,
                source: item.source.clone(),
            }
        })
        .collect()
}

/// Writes the output corpus's manifest (phones in ARPAbet-39) and `errors.jsonl`.
pub fn finish(root: &Path, name: &str, run: &AlignRun) -> Result<Corpus> {
    let corpus = Corpus {
        root: root.to_path_buf(),
        manifest: Manifest { name: name.into(), phone_set: PhoneSet::Arpabet39, items: run.items.clone() },
    };
    corpus.save()?;
    let errors: String = run
        .failed
        .iter()
        .map(|(file, reason)| format!("{}\n", serde_json::json!({ "audio": file, "error": reason })))
        .collect();
    let path = root.join(ERRORS_FILE);
    std::fs::write(&path, errors).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(corpus)
}
