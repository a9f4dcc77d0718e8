//! [`Analysis`]: one plugin run as `audiosae analyze` does it (find the plugin, open the store,
//! SAEs, labels and model, run, write the report), callable from the CLI and from notebooks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use audiosae_plugin_api::{Params, Report};

use super::{find, search_dirs, AnalysisHost, CorpusLabels, GeneratorRunner, LoadedPlugin};
use crate::corpus::Corpus;
use crate::device::DType;
use crate::textgrid::PhoneSet;

/// What to run; [`Analysis::new`] gives the CLI's defaults.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Plugin name or library path.
    pub plugin: String,
    pub saes: Vec<PathBuf>,
    pub store: PathBuf,
    /// Corpus (manifest, directory or glob) whose TextGrids label the frames.
    pub labels: Option<String>,
    pub phone_set: PhoneSet,
    /// `KEY=VALUE` plugin parameters.
    pub params: Vec<String>,
    /// Receives `report.json`, one CSV per table and the figures.
    pub out: PathBuf,
    pub device: String,
    /// Mel bins of log-mel patches (unit cards).
    pub n_mels: usize,
    /// Qwen2-Audio checkpoint that runs generation (interventions).
    pub model: Option<String>,
    pub dtype: DType,
}

impl Analysis {
    pub fn new(plugin: &str, store: &Path, saes: &[PathBuf], out: &Path) -> Analysis {
        Analysis {
            plugin: plugin.to_string(),
            saes: saes.to_vec(),
            store: store.to_path_buf(),
            labels: None,
            phone_set: PhoneSet::Arpabet39,
            params: Vec::new(),
            out: out.to_path_buf(),
            device: "cpu".into(),
            n_mels: 80,
            model: None,
            dtype: DType::F32,
        }
    }

    pub fn labels(mut self, corpus: &str) -> Self {
        self.labels = Some(corpus.to_string());
        self
    }

    pub fn param(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.params.push(format!("{key}={value}"));
        self
    }

    pub fn model(mut self, model: &str) -> Self {
        self.model = Some(model.to_string());
        self
    }

    pub fn device(mut self, device: &str) -> Self {
        self.device = device.to_string();
        self
    }

    /// Runs the plugin and writes its report to `out`; returns the report.
    pub fn run(&self) -> Result<Report> {
        let params = Params::parse(&self.params).map_err(|e| anyhow::anyhow!("{e}"))?;
        let plugin = find(&self.plugin, &search_dirs())?;
        let labels = match &self.labels {
            Some(spec) => Some(CorpusLabels::new(Corpus::open(spec)?, self.phone_set)),
            None => None,
        };
        let device = crate::device::parse_device(&self.device)?;
        let mut host = AnalysisHost::open(&self.store, &self.saes, labels, device, self.n_mels)?;
        if let Some(model) = &self.model {
            // Interventions splice edits in at the layer the store was extracted from.
            let layer = host.store_layer()?;
            host.model = Some(Box::new(GeneratorRunner::load(model, Some(layer), device, self.dtype.kind())?));
        }
        eprintln!("running {} {} ({})", plugin.info.name, plugin.info.version, plugin.path.display());
        let t = Instant::now();
        let result = plugin.run(&host, params.values());
        host.finish_progress();
        let report = result?;
        let elapsed_s = t.elapsed().as_secs_f64();
        if let Some(unknown) = host.labels().map(|l| l.unknown_phones()).filter(|u| !u.is_empty()) {
            eprintln!("warning: phone labels kept as they are (not in {}): {unknown}", self.phone_set);
        }
        let inputs = serde_json::json!({
            "store": self.store, "sae": self.saes, "labels": self.labels, "phone_set": self.phone_set.to_string(),
            "model": self.model, "params": params.values(),
        });
        let written = write_report(&self.out, &plugin, inputs, elapsed_s, &report)?;
        eprintln!(
            "{} finished in {elapsed_s:.2} s; wrote {} files to {}",
            plugin.info.name,
            written,
            self.out.display()
        );
        Ok(report)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_plain_and_not_hidden() {
        assert_eq!(file_stem("matches_0_1"), "matches_0_1");
        assert_eq!(file_stem("../a b/c"), "_a_b_c");
        assert_eq!(file_stem(".hidden"), "hidden");
    }

    #[test]
    fn builder_collects_params_like_the_cli() {
        let a = Analysis::new("selectivity", Path::new("s"), &[PathBuf::from("sae")], Path::new("o"))
            .labels("corpus")
            .param("threshold", 0.5)
            .param("seed", 3);
        assert_eq!(a.params, ["threshold=0.5", "seed=3"]);
        assert_eq!((a.device.as_str(), a.n_mels, a.labels.as_deref()), ("cpu", 80, Some("corpus")));
    }
}
