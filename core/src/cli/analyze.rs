//! `audiosae analyze` (run an analysis plugin, write its report) and `audiosae plugins list`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use audiosae_plugin_api::{Params, Report};
use clap::{Args, Subcommand};

use crate::corpus::Corpus;
use crate::device::DType;
use crate::plugins::{discover, find, search_dirs, AnalysisHost, CorpusLabels, LoadedPlugin, Qwen2Runner};
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
    /// Device for the SAE: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
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
    let params = Params::parse(&args.params).map_err(|e| anyhow::anyhow!("{e}"))?;
    let plugin = find(&args.plugin, &search_dirs())?;
    let labels = match &args.labels {
        Some(spec) => Some(CorpusLabels::new(Corpus::open(spec)?, args.phone_set)),
        None => None,
    };
    let device = crate::device::parse_device(&args.device)?;
    let mut host = AnalysisHost::open(&args.store, &args.sae, labels, device, args.n_mels)?;
    if let Some(model) = &args.model {
        host.model = Some(Box::new(Qwen2Runner::load(model, device, args.dtype.kind())?));
    }
    eprintln!("running {} {} ({})", plugin.info.name, plugin.info.version, plugin.path.display());
    let t = Instant::now();
    let result = plugin.run(&host, params.values());
    host.finish_progress();
    let report = result?;
    let elapsed_s = t.elapsed().as_secs_f64();
    if let Some(unknown) = host.labels().map(|l| l.unknown_phones()).filter(|u| !u.is_empty()) {
        eprintln!("warning: phone labels kept as they are (not in {}): {unknown}", args.phone_set);
    }
    let inputs = serde_json::json!({
        "store": args.store, "sae": args.sae, "labels": args.labels, "phone_set": args.phone_set.to_string(),
        "model": args.model, "params": params.values(),
    });
    let written = write_report(&args.out, &plugin, inputs, elapsed_s, &report)?;
    eprintln!("{} finished in {elapsed_s:.2} s; wrote {} files to {}", plugin.info.name, written, args.out.display());
    println!("{}", serde_json::to_string_pretty(&report.summary)?);
    Ok(())
}

/// A file name from a plugin-chosen name: letters, digits, `-`, `_` and `.` only, not hidden.
fn file_stem(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    s.trim_start_matches('.').to_string()
}

/// Writes `report.json`, `TABLE.csv` per table and `FIGURE.EXT` per figure; returns the file count.
fn write_report(
    out: &Path,
    plugin: &LoadedPlugin,
    inputs: serde_json::Value,
    elapsed_s: f64,
    r: &Report,
) -> Result<usize> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |file: &str, bytes: &[u8]| {
        let path = out.join(file);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    let mut tables = Vec::new();
    for t in &r.tables {
        let file = format!("{}.csv", file_stem(&t.name));
        write(&file, t.to_csv().as_bytes())?;
        tables.push(serde_json::json!({"name": t.name, "file": file, "columns": t.columns, "rows": t.rows.len()}));
    }
    let mut figures = Vec::new();
    for f in &r.figures {
        let file = format!("{}.{}", file_stem(&f.name), f.format.extension());
        write(&file, &f.bytes)?;
        figures.push(serde_json::json!({"name": f.name, "file": file}));
    }
    let info: BTreeMap<&str, String> = [
        ("name", plugin.info.name.clone()),
        ("version", plugin.info.version.clone()),
        ("path", plugin.path.display().to_string()),
    ]
    .into();
    let report = serde_json::json!({
        "plugin": info, "inputs": inputs, "elapsed_s": elapsed_s,
        "summary": r.summary, "tables": tables, "figures": figures,
    });
    write("report.json", serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(1 + tables.len() + figures.len())
}
