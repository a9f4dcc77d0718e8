//! `audiosae align`: word and phone TextGrids for the user's own recordings (pocketsphinx).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::corpus::align::{self, is_align_output};
use crate::corpus::pocketsphinx::{self, Aligner};
use crate::corpus::{stats, Corpus};
use crate::output::{refuse_in_place, OutputDir};

#[derive(Args)]
pub struct AlignArgs {
    /// Audio with transcripts: MANIFEST (.json), DIR (with manifest.json, or audio files with
    /// STEM.lab or STEM.txt beside each) or GLOB.
    #[arg(long)]
    corpus: String,
    /// The corpus folder to write: manifest.json, the audio and one TextGrid (words, phones) per clip.
    #[arg(long)]
    out: PathBuf,
    /// Extra pronunciations for words the CMU dictionary lacks: `word PH1 PH2 ...` in CMU
    /// ARPAbet, or an MFA dictionary (IPA phones, probabilities skipped).
    #[arg(long)]
    dict: Option<PathBuf>,
    /// Write into OUT even when it holds files that `align` did not write (same-named files are replaced).
    #[arg(long)]
    force: bool,
}

pub fn run(args: AlignArgs) -> Result<()> {
    // The folder is checked before the corpus is read, as every writing command does.
    OutputDir { resumable: &is_align_output, ..OutputDir::new(&args.out, "an aligned corpus", args.force) }.claim()?;
    let corpus = Corpus::open(&args.corpus)?;
    refuse_in_place(&corpus.root, &args.out, "the aligned corpus")?;
    std::fs::write(args.out.join(align::ALIGN_MARKER), "audiosae align writes here; rerunning it resumes\n")?;
    let helper = pocketsphinx::helper_path(&super::cache_dir());
    let dict = match &args.dict {
        Some(src) => {
            let dst = args.out.join("dictionary.txt");
            let (kept, dropped) = pocketsphinx::convert_dictionary(src, &dst)?;
            eprintln!(
                "dictionary {}: {kept} pronunciations ({dropped} left out: phones outside ARPAbet)",
                src.display()
            );
            Some(dst)
        }
        None => None,
    };
    let mut aligner = Aligner::start(&helper, dict.as_deref())?;
    let jobs = align::jobs_of(&corpus);
    let run = align::align_jobs(&mut aligner, &jobs, &args.out, "aligning")?;
    let name = format!("{}-aligned", corpus.manifest.name);
    let out = align::finish(&args.out, &name, &run)?;
    for (file, reason) in &run.failed {
        eprintln!("  skipped {file}: {reason}");
    }
    println!("aligned corpus: {}", args.out.join(crate::corpus::MANIFEST).display());
    println!(
        "  {} clips ({} aligned now in {:.1} s for {:.1} min of audio, {} reused), {} skipped (listed in {})",
        out.manifest.items.len(),
        run.aligned,
        run.wall_s,
        run.aligned_s / 60.0,
        run.reused,
        run.failed.len(),
        args.out.join(align::ERRORS_FILE).display()
    );
    if out.manifest.items.is_empty() {
        bail!("no clip could be aligned; the reasons are above");
    }
    println!("{}", stats::compute(&out, out.manifest.phone_set)?);
    if !run.failed.is_empty() {
        bail!(
            "{} clip(s) skipped (the others are aligned); details in {}",
            run.failed.len(),
            args.out.join(align::ERRORS_FILE).display()
        );
    }
    Ok(())
}
