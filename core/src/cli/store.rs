//! `audiosae store verify|info|merge`: check, describe and merge activation stores.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::output::OutputDir;
use crate::store::{self, Manifest};

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Checks shard sizes, .npy headers, row counts, sha256 checksums and item ranges; exits
    /// non-zero on any problem.
    Verify { dir: PathBuf },
    /// Prints a summary: model, layer, frame timing, frames, items, shards, state.
    Info { dir: PathBuf },
    /// Merges the finished stores of `extract --shard i/N` jobs into OUT (same model, layer,
    /// timing, dtype and d; no item in two inputs). Rerunning resumes an interrupted merge.
    Merge {
        out: PathBuf,
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Merge into OUT even when it holds files that are not a store.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(command: StoreCommand) -> Result<()> {
    match command {
        StoreCommand::Verify { dir } => {
            let report = store::verify(&dir, true)?;
            if !report.is_ok() {
                for problem in &report.problems {
                    eprintln!("  {problem}");
                }
                bail!("{}: {} problem(s) found", dir.display(), report.problems.len());
            }
            println!(
                "{}: OK ({} items, {} frames, {} shards, {:.1} MiB checked)",
                dir.display(),
                report.items,
                report.rows,
                report.shards,
                report.bytes as f64 / (1u64 << 20) as f64
            );
            Ok(())
        }
        StoreCommand::Info { dir } => {
            println!("{}", Manifest::load(&dir)?.summary(&dir));
            Ok(())
        }
        StoreCommand::Merge { out, inputs, force } => {
            OutputDir { resumable: &Manifest::is_in, ..OutputDir::new(&out, "the merged store", force) }.claim()?;
            let summary = store::merge(&out, &inputs, true)?;
            println!(
                "{}: merged {} stores: {} items copied, {} already there, {} frames",
                out.display(),
                inputs.len(),
                summary.copied,
                summary.resumed,
                summary.rows
            );
            Ok(())
        }
    }
}
