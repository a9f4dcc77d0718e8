//! `audiosae analyze` (run an analysis plugin, write its report) and `audiosae plugins list`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::device::DType;
use crate::output::OutputDir;
use crate::plugins::{discover, search_dirs, Analysis};
use crate::textgrid::PhoneSet;

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Plugin name (see `audiosae plugins list`) or path of a plugin library.
    #[arg(long)]
    plugin: String,
    /// SAE checkpoint directory; repeat for plugins that compare several.
    #[arg(long, required = true)]
    sae: Vec<PathBuf>,
    /// Activation store directory.
    #[arg(long)]
    store: PathBuf,
    /// Corpus with TextGrids (manifest, directory or glob) for phone and word labels.
    #[arg(long)]
    labels: Option<String>,
    /// Phone labels: arpabet39 (stress and MFA IPA mapped to a common set) or raw.
    #[arg(long, default_value = "arpabet39")]
    phone_set: PhoneSet,
    /// Plugin parameter KEY=VALUE; repeatable.
    #[arg(long = "param")]
    params: Vec<String>,
    /// Output directory: report.json, one CSV per table, the figures.
    #[arg(long)]
    out: PathBuf,
    /// Write into OUT even when it already holds files (an earlier report there is replaced).
    #[arg(long)]
    force: bool,
    /// Device for the SAE: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu", value_parser = crate::device::device_spec)]
    device: String,
    /// Mel bins of log-mel patches (unit cards): 80 (Whisper) or 128 (Whisper large v3, Qwen2-Audio).
    #[arg(long, default_value_t = 80)]
    n_mels: usize,
    /// Qwen2-Audio checkpoint that runs generation for the interventions plugin (on --device).
    #[arg(long)]
    model: Option<String>,
    /// Model weights and activations: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    dtype: DType,
}

#[derive(Subcommand)]
pub enum PluginsCommand {
    /// Name, version, path and description of every plugin found; refused files on stderr.
    List,
}

pub fn list(_command: PluginsCommand) -> Result<()> {
    let dirs = search_dirs();
    let (plugins, errors) = discover(&dirs);
    for e in &errors {
        eprintln!("warning: {e:#}");
    }
    if plugins.is_empty() {
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        println!("no plugins found in {}", searched.join(", "));
    }
    for p in &plugins {
        println!("{:<20} {:<8} {}", p.info.name, p.info.version, p.path.display());
        println!("    {}", p.info.description);
    }
    Ok(())
}

pub fn run(args: AnalyzeArgs) -> Result<()> {
    OutputDir::new(&args.out, "a plugin report", args.force).claim()?;
    let analysis = Analysis {
        plugin: args.plugin,
        saes: args.sae,
        store: args.store,
        labels: args.labels,
        phone_set: args.phone_set,
        params: args.params,
        out: args.out,
        device: args.device,
        n_mels: args.n_mels,
        model: args.model,
        dtype: args.dtype,
    };
    let report = analysis.run()?;
    println!("{}", serde_json::to_string_pretty(&report.summary)?);
    Ok(())
}
