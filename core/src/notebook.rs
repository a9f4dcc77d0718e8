//! Helpers for the evcxr notebooks: the one parameter file every notebook reads, rich display
//! (PNG, HTML, plugin tables, playable audio) through evcxr's content protocol, and building the
//! bundled plugins.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use audiosae_plugin_api::{Table, Value};
use base64::Engine;
use serde::Deserialize;

use crate::extract::JobShard;
use crate::models::detect_format;
use crate::sae::store_source::SplitStore;
use crate::sae::train::{train, TrainOptions, TrainResult};
use crate::sae::{Arch, SaeConfig, TrainConfig};

/// `notebooks/params.toml`: change it once to point every notebook at another model or corpus
/// (e.g. Qwen/Qwen2-Audio-7B-Instruct in the HF cache and a LibriSpeech manifest).
#[derive(Debug, Clone, Deserialize)]
pub struct NotebookParams {
    /// Audio model for extraction (`--model`): a directory or a hub id. Empty: Whisper tiny.en.
    #[serde(default)]
    pub model: String,
    /// Layer to extract (`projector`, `encoder`, `encoder.N`); empty: the model's default.
    #[serde(default)]
    pub layer: String,
    /// Corpus manifest or directory; empty: the demo corpus.
    #[serde(default)]
    pub corpus: String,
    /// Where notebooks write stores, SAEs and reports (relative to the repository root).
    pub work_dir: PathBuf,
    /// Qwen2-Audio checkpoint used for generation and interventions (the tiny fixture by default).
    pub generator: String,
    /// SAE width and k for the notebooks' training runs.
    pub sae_width: usize,
    pub sae_k: usize,
    pub sae_steps: usize,
    pub seeds: Vec<u64>,
    pub device: String,
    /// 01 extracts every N-th corpus clip (1: all).
    #[serde(default = "one")]
    pub clip_stride: usize,
    /// 08 and 09 extract the generator's projector frames from every N-th corpus clip (1: all).
    #[serde(default = "one")]
    pub generator_clip_stride: usize,
    /// The model whose output 08 edits. Empty: `model` itself (Whisper tiny.en by default, with its
    /// decoder), at 01's layer with 02's SAE; a Qwen2-Audio checkpoint (e.g. `generator`) runs the
    /// same cells on its projector rows with an SAE trained there.
    #[serde(default)]
    pub intervention_model: String,
}

fn one() -> usize {
    1
}

impl NotebookParams {
    /// Opens the corpus. The default demo corpus is built first when missing (idempotent; about
    /// two minutes on 2 cores), so the notebooks run on a machine that never ran the demo.
    pub fn open_corpus(&self) -> Result<crate::corpus::Corpus> {
        use crate::corpus::demo::{build, DemoOptions, DEFAULT_MINUTES};
        let demo = crate::cli::cache_dir().join("corpus/demo");
        if Path::new(&self.corpus) == demo && !demo.join(crate::corpus::MANIFEST).exists() {
            println!("building the demo corpus in {}", demo.display());
            build(&DemoOptions::new(Some(demo), DEFAULT_MINUTES))?;
        }
        crate::corpus::Corpus::open(&self.corpus)
    }

    /// The clips 01 extracts, as an extraction shard: every `clip_stride`-th (`None`: all).
    pub fn clip_shard(&self) -> Option<JobShard> {
        (self.clip_stride > 1).then_some(JobShard { index: 0, count: self.clip_stride })
    }

    /// Reads `$AUDIOSAE_NOTEBOOK_PARAMS` or `<repo>/notebooks/params.toml`, filling in the
    /// defaults installed by the set-up.
    pub fn load() -> Result<Self> {
        let path = std::env::var("AUDIOSAE_NOTEBOOK_PARAMS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("notebooks/params.toml"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut p: NotebookParams = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if p.model.is_empty() {
            p.model = crate::cli::default_model().display().to_string();
        }
        if p.corpus.is_empty() {
            p.corpus = crate::cli::cache_dir().join("corpus/demo").display().to_string();
        }
        let root = repo_root();
        p.work_dir = root.join(&p.work_dir);
        for path in [&mut p.generator, &mut p.intervention_model] {
            if !path.is_empty() && Path::new(path.as_str()).is_relative() && root.join(path.as_str()).exists() {
                *path = root.join(path.as_str()).display().to_string();
            }
        }
        if p.intervention_model.is_empty() {
            p.intervention_model = p.model.clone();
        }
        Ok(p)
    }

    /// `{work_dir}/store-{layer}`, where 01-extract writes the frames of `model`: `layer`, else
    /// the model's default (`projector` for Qwen2-Audio, `encoder` for Whisper).
    pub fn store_dir(&self) -> Result<PathBuf> {
        let layer = if self.layer.is_empty() {
            detect_format(&crate::hub::resolve_model(&self.model)?)?.default_layer()
        } else {
            self.layer.parse()?
        };
        Ok(self.work_dir.join(format!("store-{layer}")))
    }

    /// `{work_dir}/sae`, the SAE that 02-train writes.
    pub fn sae_dir(&self) -> PathBuf {
        self.work_dir.join("sae")
    }
}

/// The repository root (`AUDIOSAE_ROOT`, else the source tree this crate was built from).
pub fn repo_root() -> PathBuf {
    std::env::var("AUDIOSAE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// Standard base64 with padding (RFC 4648), as data URIs and evcxr's content protocol expect.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn emit(mime: &str, payload: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{payload}\nEVCXR_END_CONTENT");
}

/// Shows a PNG file as an image output.
pub fn show_png(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    emit("image/png", &base64(&bytes));
    Ok(())
}

/// Shows an HTML fragment.
pub fn show_html(html: &str) {
    emit("text/html", html);
}

/// An `<audio>` element playing `samples` (16 kHz mono) between `t0` and `t1` seconds,
/// embedded as a WAV data URI.
pub fn audio_html(samples: &[f32], t0: f64, t1: f64) -> Result<String> {
    Ok(format!("<audio controls src=\"{}\"></audio>", wav_data_uri(samples, t0, t1)?))
}

/// `samples` (16 kHz mono) between `t0` and `t1` seconds as a 16-bit WAV data URI.
fn wav_data_uri(samples: &[f32], t0: f64, t1: f64) -> Result<String> {
    let sr = crate::mel::SAMPLE_RATE as f64;
    let a = ((t0.max(0.0) * sr) as usize).min(samples.len());
    let b = ((t1 * sr) as usize).clamp(a, samples.len());
    let mut buf = Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut buf, spec)?;
    for &x in &samples[a..b] {
        w.write_sample((x.clamp(-1.0, 1.0) * 32767.0) as i16)?;
    }
    w.finalize()?;
    Ok(format!("data:audio/wav;base64,{}", base64(buf.get_ref())))
}

/// `s` with `&`, `<`, `>` and `"` escaped for HTML text and attributes.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
}

/// `PATH#t=T0,T1` as its parts.
fn segment(url: &str) -> Option<(&str, f64, f64)> {
    let (path, range) = url.rsplit_once("#t=")?;
    let (t0, t1) = range.split_once(',')?;
    Some((path, t0.parse().ok()?, t1.parse().ok()?))
}

/// An HTML page (e.g. the monosemanticity plugin's unit cards) with every
/// `src="file://PATH#t=T0,T1"` replaced by that segment of the clip as a WAV data URI, so that
/// its `<audio>` elements play inside a notebook.
pub fn inline_audio(html: &str) -> Result<String> {
    const SRC: &str = "src=\"file://";
    let mut clips: HashMap<String, Vec<f32>> = HashMap::new();
    let (mut out, mut rest) = (String::with_capacity(html.len()), html);
    while let Some(i) = rest.find(SRC) {
        out.push_str(&rest[..i]);
        let after = &rest[i + SRC.len()..];
        let end = after.find('"').context("unterminated src attribute")?;
        let url = html_unescape(&after[..end]);
        let (path, t0, t1) = segment(&url).with_context(|| format!("{url}: expected file://PATH#t=T0,T1"))?;
        if !clips.contains_key(path) {
            clips.insert(path.to_string(), crate::models::load_clip(Path::new(path))?);
        }
        out.push_str(&format!("src=\"{}\"", wav_data_uri(&clips[path], t0, t1)?));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A cell as a number (`NaN` for text and nulls).
pub fn num(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Null | Value::Text(_) => f64::NAN,
    }
}

/// The index of column `name` of `t`.
pub fn column_index(t: &Table, name: &str) -> Result<usize> {
    t.columns.iter().position(|c| c == name).with_context(|| format!("table {} has no column {name}", t.name))
}

/// `t` with only `columns`, in that order.
pub fn select(t: &Table, columns: &[&str]) -> Result<Table> {
    let idx: Vec<usize> = columns.iter().map(|c| column_index(t, c)).collect::<Result<_>>()?;
    Ok(Table {
        name: t.name.clone(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows: t.rows.iter().map(|r| idx.iter().map(|&i| r[i].clone()).collect()).collect(),
    })
}

/// Column `name` of `t` as numbers.
pub fn column_f64(t: &Table, name: &str) -> Result<Vec<f64>> {
    let c = column_index(t, name)?;
    Ok(t.rows.iter().map(|r| num(&r[c])).collect())
}

/// The rows of `t` whose cells equal every `(column, value)` of `filter` (compared as CSV text).
pub fn filter_rows(t: &Table, filter: &[(&str, &str)]) -> Result<Table> {
    let filter: Vec<(usize, &str)> =
        filter.iter().map(|(c, v)| Ok((column_index(t, c)?, *v))).collect::<Result<_>>()?;
    let rows = t.rows.iter().filter(|r| filter.iter().all(|(c, v)| r[*c].to_csv() == *v)).cloned().collect();
    Ok(Table { name: t.name.clone(), columns: t.columns.clone(), rows })
}

/// The `n` rows of [`filter_rows`] with the largest `by` (NaN last).
pub fn top_rows(t: &Table, by: &str, n: usize, filter: &[(&str, &str)]) -> Result<Table> {
    let by = column_index(t, by)?;
    let mut kept = filter_rows(t, filter)?;
    kept.rows.sort_by(|a, b| {
        let (x, y) = (num(&a[by]), num(&b[by]));
        x.is_nan().cmp(&y.is_nan()).then(y.total_cmp(&x))
    });
    kept.rows.truncate(n);
    Ok(kept)
}

/// `t` as an HTML table (its first `max_rows` rows; floats to 4 significant digits).
pub fn table_html(t: &Table, max_rows: usize) -> String {
    let cell = |v: &Value| match v {
        Value::Float(f) if f.abs() >= 1e4 || (f.abs() < 1e-3 && *f != 0.0) => format!("{f:.3e}"),
        Value::Float(f) => format!("{}", (f * 1e4).round() / 1e4),
        other => html_escape(&other.to_csv()),
    };
    let mut h = String::from("<table><thead><tr>");
    for c in &t.columns {
        h.push_str(&format!("<th>{}</th>", html_escape(c)));
    }
    h.push_str("</tr></thead><tbody>");
    for r in t.rows.iter().take(max_rows) {
        h.push_str("<tr>");
        for v in r {
            h.push_str(&format!("<td>{}</td>", cell(v)));
        }
        h.push_str("</tr>");
    }
    if t.rows.len() > max_rows {
        h.push_str(&format!(
            "<tr><td colspan=\"{}\">… {} more rows</td></tr>",
            t.columns.len(),
            t.rows.len() - max_rows
        ));
    }
    h.push_str("</tbody></table>");
    h
}

/// The notebooks' TopK SAE: `width` latents, `k` active per frame, `steps` batches of 512 frames
/// of width `d_in` on `device`; everything else at `audiosae train`'s defaults.
pub fn topk_config(d_in: usize, width: usize, k: usize, steps: usize, seed: u64, device: &str) -> TrainConfig {
    TrainConfig {
        sae: SaeConfig { arch: Arch::TopK, d_in, d_sae: width, k: Some(k), ..Default::default() },
        seed,
        steps,
        batch_size: 512,
        device: device.to_string(),
        ..Default::default()
    }
}

/// Trains `cfg` on `store` into `out` as `audiosae train --store` does (10 % of the items held
/// out, batches drawn with the run's seed).
pub fn train_on_store(store: &Path, out: &Path, cfg: TrainConfig) -> Result<TrainResult> {
    cfg.validate()?;
    let mut source = SplitStore::open(store, 0.1)?.train_source(cfg.seed)?;
    let opts = TrainOptions { out_dir: out.to_path_buf(), resume: false, progress: false, stop_after: None };
    train(cfg, &mut source, &opts)
}

/// Builds bundled plugins as `audiosae.sh demo` does (`cargo build --release -p
/// audiosae-plugin-NAME ...` in the repository) and returns `target/release`, where the plugin
/// loader's [`search_dirs`](crate::plugins::search_dirs) finds them.
pub fn build_plugins(names: &[&str]) -> Result<PathBuf> {
    let root = repo_root();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).env_remove("CARGO_TARGET_DIR").args(["build", "--release", "-q"]);
    for name in names {
        cmd.args(["-p", &format!("audiosae-plugin-{name}")]);
    }
    let out = cmd.output().context("running cargo")?;
    ensure!(out.status.success(), "cargo build of plugins {names:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    Ok(root.join("target/release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    fn table() -> Table {
        let mut t = Table::new("t", &["unit", "kind", "f1"]);
        t.push(vec![0usize.into(), "sae".into(), 0.25.into()]);
        t.push(vec![1usize.into(), "raw".into(), 0.9.into()]);
        t.push(vec![2usize.into(), "sae".into(), Value::Null]);
        t.push(vec![3usize.into(), "sae".into(), 0.5.into()]);
        t.push(vec![4usize.into(), "<b>".into(), 1e-5.into()]);
        t
    }

    #[test]
    fn top_rows_filters_and_sorts_with_nan_last() {
        let top = top_rows(&table(), "f1", 3, &[("kind", "sae")]).unwrap();
        assert_eq!(column_f64(&top, "unit").unwrap(), [3.0, 0.0, 2.0]);
        assert_eq!(top_rows(&table(), "f1", 1, &[]).unwrap().rows[0][0], Value::Int(1));
        assert!(top_rows(&table(), "nope", 1, &[]).is_err());
        let sae = filter_rows(&table(), &[("kind", "sae")]).unwrap();
        assert_eq!(column_f64(&sae, "unit").unwrap(), [0.0, 2.0, 3.0]);
    }

    #[test]
    fn select_keeps_the_named_columns_in_order() {
        let t = select(&table(), &["f1", "unit"]).unwrap();
        assert_eq!(t.columns, ["f1", "unit"]);
        assert_eq!(t.rows[1], [Value::Float(0.9), Value::Int(1)]);
        assert!(select(&table(), &["nope"]).is_err());
    }

    #[test]
    fn table_html_escapes_and_truncates() {
        let h = table_html(&table(), 4);
        assert!(h.contains("<th>f1</th>") && h.contains("<td>0.25</td>") && h.contains("… 1 more rows"));
        let h = table_html(&table(), 10);
        assert!(h.contains("&lt;b&gt;") && h.contains("1.000e-5"));
    }

    #[test]
    fn inline_audio_embeds_each_segment() {
        let dir = std::env::temp_dir().join(format!("audiosae-notebook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wav = dir.join("a&b.wav");
        crate::corpus::tests::write_wav(&wav, 1.0);
        let src = |t: &str| format!("<audio src=\"file://{}#t={t}\"></audio>", html_escape(&wav.display().to_string()));
        let html = format!("<p>{}</p>{}", src("0.1,0.2"), src("0.5,0.9"));
        let out = inline_audio(&html).unwrap();
        assert!(out.starts_with("<p><audio src=") && out.ends_with("</audio>") && !out.contains("file://"));
        let uris: Vec<&str> = out.split("src=\"").skip(1).map(|s| s.split('"').next().unwrap()).collect();
        assert_eq!(uris.len(), 2);
        assert!(uris.iter().all(|u| u.starts_with("data:audio/wav;base64,UklGR")));
        // 0.1 s and 0.4 s of 16-bit samples (base64: 4/3 of the bytes).
        let sizes: Vec<usize> = uris.iter().map(|u| u.len() - "data:audio/wav;base64,".len()).collect();
        assert!(sizes[0].abs_diff(4 * (44 + 3200) / 3) < 8 && sizes[1].abs_diff(4 * (44 + 12800) / 3) < 8, "{sizes:?}");
        assert!(inline_audio("<audio src=\"file:///x.wav\">").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn train_on_store_writes_a_checkpoint() {
        use crate::store::{ItemMeta, ModelRef, StoreConfig, StoreDType, StoreWriter};
        let dir = std::env::temp_dir().join(format!("audiosae-notebook-train-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = StoreConfig::new(
            ModelRef { id: "synthetic".into(), revision: None },
            "encoder",
            crate::FrameTiming::POOLED,
            StoreDType::F32,
            8,
        );
        let mut w = StoreWriter::create(&dir.join("store"), config).unwrap();
        for i in 0..20 {
            let frames: Vec<f32> = (0..50 * 8).map(|j| ((i * 400 + j) as f32 * 0.37).sin()).collect();
            w.append_item(ItemMeta::new(format!("item{i}"), "x.wav", 2.0), &frames).unwrap();
        }
        w.finish().unwrap();
        let cfg = topk_config(8, 16, 2, 5, 1, "cpu");
        let r = train_on_store(&dir.join("store"), &dir.join("sae"), cfg).unwrap();
        assert_eq!((r.sae.cfg.d_sae, r.sae.cfg.k), (16, Some(2)));
        let (sae, _) = crate::sae::checkpoint::load_sae(&dir.join("sae"), tch::Device::Cpu).unwrap();
        assert_eq!(sae.cfg.d_in, 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn store_dir_follows_the_layer_or_the_model_default_and_the_stride_makes_a_shard() {
        let fixture = repo_root().join("tests/fixtures/qwen2_audio_tiny").display().to_string();
        let mut p = NotebookParams {
            model: fixture,
            layer: String::new(),
            corpus: String::new(),
            work_dir: PathBuf::from("w"),
            generator: String::new(),
            sae_width: 8,
            sae_k: 2,
            sae_steps: 1,
            seeds: vec![0],
            device: "cpu".into(),
            clip_stride: 1,
            generator_clip_stride: 1,
            intervention_model: String::new(),
        };
        assert_eq!(p.store_dir().unwrap(), Path::new("w/store-projector"));
        p.layer = "encoder.3".into();
        assert_eq!(p.store_dir().unwrap(), Path::new("w/store-encoder.3"));
        assert_eq!(p.sae_dir(), Path::new("w/sae"));
        assert_eq!(p.clip_shard(), None);
        p.clip_stride = 3;
        assert_eq!(p.clip_shard(), Some(JobShard { index: 0, count: 3 }));
    }

    #[test]
    fn audio_html_embeds_a_wav() {
        let html = audio_html(&vec![0.1; 16000], 0.25, 0.5).unwrap();
        assert!(html.starts_with("<audio controls src=\"data:audio/wav;base64,UklGR"));
    }
}
