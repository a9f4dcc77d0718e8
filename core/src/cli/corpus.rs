//! `audiosae corpus demo|stats`: build the aligned demo corpus, describe a corpus.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use crate::corpus::demo::{self, DemoOptions};
use crate::corpus::{stats, Corpus};
use crate::output::OutputDir;
use crate::textgrid::PhoneSet;

#[derive(Subcommand)]
pub enum CorpusCommand {
    /// Builds the aligned demo corpus (real MFA/praatio clips + espeak-ng speech with exact
    /// alignments) and prints its statistics. Reuses what a previous run built.
    Demo {
        /// Default: $AUDIOSAE_CACHE/corpus/demo.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Minutes of synthetic speech (the real clips come on top).
        #[arg(long, default_value_t = demo::DEFAULT_MINUTES)]
        minutes: f64,
        /// Build into OUT even when it holds files that are not a demo corpus.
        #[arg(long)]
        force: bool,
    },
    /// Prints hours per source and split, words and phones per class of a corpus.
    Stats {
        /// MANIFEST (.json), DIR (with manifest.json, or of audio files) or GLOB.
        corpus: String,
        /// raw or arpabet39.
        #[arg(long, default_value = "arpabet39")]
        phone_set: PhoneSet,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: CorpusCommand) -> Result<()> {
    match command {
        CorpusCommand::Demo { out, minutes, force } => {
            let opts = DemoOptions::new(out, minutes);
            OutputDir { resumable: &demo::is_demo_corpus, ..OutputDir::new(&opts.out, "the demo corpus", force) }
                .claim()?;
            let (corpus, report) = demo::build(&opts)?;
            // Audio without any TextGrid is common in the sources (unaligned test clips): count it.
            let no_textgrid = report.skipped.iter().filter(|s| s.2 == crate::corpus::real::NO_TEXTGRID).count();
            for (source, file, reason) in report.skipped.iter().filter(|s| s.2 != crate::corpus::real::NO_TEXTGRID) {
                eprintln!("  skipped {source}/{file}: {reason}");
            }
            if no_textgrid > 0 {
                eprintln!("  skipped {no_textgrid} real clip(s) without a TextGrid");
            }
            if !report.unknown_phones.is_empty() {
                eprintln!("  phones outside the ARPAbet set, kept as they are: {}", report.unknown_phones);
            }
            let s = stats::compute(&corpus, corpus.manifest.phone_set)?;
            println!("audiosae demo corpus: {}", corpus.root.join(crate::corpus::MANIFEST).display());
            println!(
                "  {} clips ({} synthesised now, {} reused, {} real clips skipped); licences in {}",
                corpus.manifest.items.len(),
                report.synthesized,
                report.reused,
                report.skipped.len(),
                corpus.root.join("LICENSES.md").display()
            );
            println!("{s}");
            std::fs::write(corpus.root.join("stats.json"), serde_json::to_string_pretty(&s)?)?;
            Ok(())
        }
        CorpusCommand::Stats { corpus, phone_set, json } => {
            let corpus = Corpus::open(&corpus)?;
            let s = stats::compute(&corpus, phone_set)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("{s}");
            }
            Ok(())
        }
    }
}
