//! The store manifest: what the frames are (model, layer, timing, dtype, d), where they are
//! (shards) and whose they are (items with row ranges).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::files::write_atomic;
use super::{FORMAT, FORMAT_VERSION, MANIFEST_FILE};
use crate::timing::FrameTiming;

/// Element type of the shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreDType {
    F32,
    F16,
}

impl StoreDType {
    pub fn size(self) -> usize {
        match self {
            StoreDType::F32 => 4,
            StoreDType::F16 => 2,
        }
    }

    /// numpy type string in the `.npy` header.
    pub fn npy_descr(self) -> &'static str {
        match self {
            StoreDType::F32 => "<f4",
            StoreDType::F16 => "<f2",
        }
    }
}

impl FromStr for StoreDType {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "float32" => Ok(StoreDType::F32),
            "f16" | "float16" => Ok(StoreDType::F16),
            _ => bail!("unknown store dtype {s:?}: use f32 or f16"),
        }
    }
}

impl fmt::Display for StoreDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreDType::F32 => "f32",
            StoreDType::F16 => "f16",
        })
    }
}

/// The model the frames came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// What the user passed as `--model` (a hub id or a directory).
    pub id: String,
    /// Hub commit or other version tag, when known.
    pub revision: Option<String>,
}

/// What every frame of a store is; fixed when the store is created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreConfig {
    pub model: ModelRef,
    /// Layer name as the extractor spells it, e.g. `encoder.16` or `projector`.
    pub layer: String,
    /// Timing of row `i` of an item, before the item's `time_offset_s`.
    pub timing: FrameTiming,
    pub dtype: StoreDType,
    /// Features per frame.
    pub d: usize,
    /// Rows of every shard but the last.
    pub shard_rows: usize,
}

impl StoreConfig {
    /// A config with shards of about [`StoreConfig::DEFAULT_SHARD_BYTES`].
    pub fn new(model: ModelRef, layer: impl Into<String>, timing: FrameTiming, dtype: StoreDType, d: usize) -> Self {
        let shard_rows = (Self::DEFAULT_SHARD_BYTES / (d.max(1) * dtype.size())).max(1);
        StoreConfig { model, layer: layer.into(), timing, dtype, d, shard_rows }
    }

    /// Default shard size: large enough to keep manifest rewrites rare, small enough to buffer.
    pub const DEFAULT_SHARD_BYTES: usize = 256 << 20;

    pub fn row_bytes(&self) -> usize {
        self.d * self.dtype.size()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        ensure!(self.d > 0, "store config: d must be positive");
        ensure!(self.shard_rows > 0, "store config: shard_rows must be positive");
        // Every byte count later derived from d and shard_rows must fit in a usize.
        ensure!(
            self.d.checked_mul(self.dtype.size()).and_then(|row| row.checked_mul(self.shard_rows)).is_some(),
            "store config: d = {} and shard_rows = {} describe shards larger than memory can address",
            self.d,
            self.shard_rows
        );
        ensure!(
            self.timing.hop_s > 0.0 && self.timing.hop_s.is_finite() && self.timing.offset_s.is_finite(),
            "store config: bad frame timing {:?}",
            self.timing
        );
        Ok(())
    }

    /// The fields in which `other` differs, as `name: self vs other` lines.
    pub(crate) fn differences(&self, other: &StoreConfig, with_shard_rows: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: {a} vs {b}"));
            }
        };
        check("model", format!("{:?}", self.model), format!("{:?}", other.model));
        check("layer", self.layer.clone(), other.layer.clone());
        check("timing", format!("{:?}", self.timing), format!("{:?}", other.timing));
        check("dtype", self.dtype.to_string(), other.dtype.to_string());
        check("d", self.d.to_string(), other.d.to_string());
        if with_shard_rows {
            check("shard_rows", self.shard_rows.to_string(), other.shard_rows.to_string());
        }
        out
    }
}

/// One shard file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the store directory.
    pub file: String,
    pub rows: usize,
    /// File size including the `.npy` header.
    pub bytes: u64,
    /// Lowercase hex sha256 of the whole file.
    pub sha256: String,
}

/// What the extractor knows about an item when it appends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemMeta {
    /// Unique within the store; the resume key.
    pub id: String,
    /// Source audio file.
    pub audio: PathBuf,
    /// Seconds of audio the frames cover (the window's length for a window of a long clip).
    pub duration_s: f64,
    /// Start of this item inside `audio` in seconds (a 30 s window of a long clip: 30, 60, ...).
    #[serde(default)]
    pub time_offset_s: f64,
    /// Text stores (`audiosae extract-text`): the token string of each row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<String>>,
}

impl ItemMeta {
    pub fn new(id: impl Into<String>, audio: impl Into<PathBuf>, duration_s: f64) -> Self {
        ItemMeta { id: id.into(), audio: audio.into(), duration_s, time_offset_s: 0.0, tokens: None }
    }

    pub fn with_tokens(self, tokens: Vec<String>) -> Self {
        ItemMeta { tokens: Some(tokens), ..self }
    }

    pub fn with_time_offset(self, time_offset_s: f64) -> Self {
        ItemMeta { time_offset_s, ..self }
    }
}

/// The rows `start..end` of shard `shard` (positions in the manifest's shard list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemSlice {
    pub shard: usize,
    pub start: usize,
    pub end: usize,
}

/// A committed item: its meta, its global rows `start..end`, and the same rows per shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemEntry {
    #[serde(flatten)]
    pub meta: ItemMeta,
    pub start: usize,
    pub end: usize,
    pub slices: Vec<ItemSlice>,
}

impl ItemEntry {
    pub fn new(meta: ItemMeta, start: usize, end: usize, shard_rows: usize) -> Self {
        ItemEntry { meta, start, end, slices: slices_of(start, end, shard_rows) }
    }

    pub fn rows(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Absolute timing of this item's rows within its audio file.
    pub fn timing(&self, store_timing: FrameTiming) -> FrameTiming {
        store_timing.shifted(self.meta.time_offset_s)
    }
}

/// Splits global rows `start..end` into per-shard slices.
pub fn slices_of(start: usize, end: usize, shard_rows: usize) -> Vec<ItemSlice> {
    let mut out = Vec::new();
    let mut row = start;
    while row < end {
        let shard = row / shard_rows;
        let stop = end.min((shard + 1) * shard_rows);
        out.push(ItemSlice { shard, start: row - shard * shard_rows, end: stop - shard * shard_rows });
        row = stop;
    }
    out
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] of the writer.
    pub version: u32,
    #[serde(flatten)]
    pub config: StoreConfig,
    /// Set by [`StoreWriter::finish`](super::StoreWriter::finish); false while a writer is running
    /// or after it was interrupted.
    pub finished: bool,
    /// Number for the next shard file name.
    pub next_file_id: u64,
    /// In row order. Rows past the last item's `end` belong to an item that was not committed.
    pub shards: Vec<ShardEntry>,
    /// Committed items, in row order, contiguous from row 0.
    pub items: Vec<ItemEntry>,
}

impl Manifest {
    pub fn new(config: StoreConfig) -> Self {
        Manifest {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            config,
            finished: false,
            next_file_id: 0,
            shards: Vec::new(),
            items: Vec::new(),
        }
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Whether `dir` holds a store (a manifest; whether it reads is `load`'s question).
    pub fn is_in(dir: &Path) -> bool {
        Self::path(dir).is_file()
    }

    /// Reads `dir/manifest.json`, with a clear error when `dir` is not a store, and refuses a
    /// manifest whose shard sizes or item ranges do not add up (see [`Manifest::layout_problems`]),
    /// so that readers can index shards with its numbers.
    pub fn load(dir: &Path) -> Result<Self> {
        let manifest = Self::load_unchecked(dir)?;
        let problems = manifest.layout_problems();
        if let Some(first) = problems.first() {
            bail!(
                "{}: {first}{} (run `audiosae store verify {}` for the full list)",
                Self::path(dir).display(),
                match problems.len() {
                    1 => String::new(),
                    n => format!(", and {} more problem(s)", n - 1),
                },
                dir.display()
            );
        }
        Ok(manifest)
    }

    /// Reads `dir/manifest.json` and checks its config, but not its shard and item layout: for
    /// `store verify`, which lists layout problems instead of stopping at the first.
    pub(crate) fn load_unchecked(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        if !path.is_file() {
            bail!("{} is not an activation store: it has no {MANIFEST_FILE}", dir.display());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            bail!("{} is not an activation store manifest (no \"format\": \"{FORMAT}\")", path.display());
        }
        let version = value.get("version").and_then(|v| v.as_u64());
        if version != Some(FORMAT_VERSION as u64) {
            bail!("{}: store format version {version:?}, this build reads version {FORMAT_VERSION}", path.display());
        }
        let manifest: Manifest =
            serde_json::from_value(value).with_context(|| format!("{}: bad manifest", path.display()))?;
        manifest.config.validate().with_context(|| path.display().to_string())?;
        Ok(manifest)
    }

    /// What is inconsistent in the manifest's own numbers: shard row counts against `shard_rows`,
    /// item ranges (contiguous from row 0, within the shards' rows), each item's shard slices and
    /// unique ids. Uses no count before checking it, so a lying manifest costs no more memory or
    /// time than its own size.
    pub fn layout_problems(&self) -> Vec<String> {
        let c = &self.config;
        let mut problems = Vec::new();
        let mut total = Some(0usize);
        for (i, s) in self.shards.iter().enumerate() {
            let last = i + 1 == self.shards.len();
            if s.rows == 0 || s.rows > c.shard_rows || (!last && s.rows != c.shard_rows) {
                problems.push(format!(
                    "shard {}: {} rows; shards hold {} rows (the last 1 to {})",
                    s.file, s.rows, c.shard_rows, c.shard_rows
                ));
            }
            total = total.and_then(|t| t.checked_add(s.rows));
        }
        let Some(total) = total else {
            problems.push("the shards' row counts add up past what memory can address".into());
            return problems;
        };
        if self.shards.iter().try_fold(0u64, |sum, s| sum.checked_add(s.bytes)).is_none() {
            problems.push("the shards' bytes add up past 2^64".into());
        }
        let mut ids = std::collections::HashSet::new();
        let mut expected_start = 0;
        for item in &self.items {
            let id = &item.meta.id;
            if !ids.insert(id.as_str()) {
                problems.push(format!("item {id:?} appears more than once"));
            }
            if item.start != expected_start || item.end < item.start {
                problems.push(format!(
                    "item {id:?}: rows {}..{}, expected to start at {expected_start} (overlap or gap)",
                    item.start, item.end
                ));
            }
            if item.end > total {
                problems
                    .push(format!("item {id:?}: rows {}..{} beyond the shards' {total} rows", item.start, item.end));
            } else if item.start <= item.end && item.slices != slices_of(item.start, item.end, c.shard_rows) {
                // Only within the shards' rows: slices_of then makes at most one slice per shard.
                problems.push(format!("item {id:?}: shard slices do not match rows {}..{}", item.start, item.end));
            }
            if !(item.meta.duration_s.is_finite() && item.meta.duration_s >= 0.0 && item.meta.time_offset_s.is_finite())
            {
                problems.push(format!("item {id:?}: bad duration or time offset"));
            }
            expected_start = item.end.max(item.start);
        }
        problems
    }

    /// Writes the manifest atomically (temp file, fsync, rename, directory fsync).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        write_atomic(dir, MANIFEST_FILE, &[&json])?;
        Ok(())
    }

    /// Rows that belong to committed items: `0..committed_rows()`.
    pub fn committed_rows(&self) -> usize {
        self.items.last().map_or(0, |i| i.end)
    }

    /// Rows in the listed shards (committed or not).
    pub fn shard_rows_total(&self) -> usize {
        self.shards.iter().fold(0, |sum, s| sum.saturating_add(s.rows))
    }

    pub fn bytes(&self) -> u64 {
        self.shards.iter().fold(0, |sum, s| sum.saturating_add(s.bytes))
    }

    pub fn audio_seconds(&self) -> f64 {
        self.items.iter().map(|i| i.meta.duration_s).sum()
    }

    /// A human-readable summary (`audiosae store info`).
    pub fn summary(&self, dir: &Path) -> String {
        let c = &self.config;
        let revision = c.model.revision.as_deref().map_or(String::new(), |r| format!(" @ {r}"));
        let uncommitted = self.shard_rows_total() - self.committed_rows().min(self.shard_rows_total());
        let state = match (self.finished, uncommitted) {
            (true, _) => "finished".to_string(),
            (false, 0) => "not finished (writer running or interrupted)".to_string(),
            (false, n) => format!("not finished: {n} rows of an uncommitted item (rerun the writer to resume)"),
        };
        let windows = self.items.iter().filter(|i| i.meta.time_offset_s != 0.0).count();
        [
            format!("store      {} (format {} v{})", dir.display(), self.format, self.version),
            format!("model      {}{revision}", c.model.id),
            format!("layer      {}", c.layer),
            format!("timing     hop {:.1} ms, offset {:.1} ms", c.timing.hop_s * 1e3, c.timing.offset_s * 1e3),
            format!("frames     {} x d={} ({})", self.committed_rows(), c.d, c.dtype),
            format!(
                "items      {} ({windows} with a time offset), {:.3} h of audio",
                self.items.len(),
                self.audio_seconds() / 3600.0
            ),
            format!(
                "shards     {} of {} rows, {:.1} MiB in all",
                self.shards.len(),
                c.shard_rows,
                self.bytes() as f64 / (1u64 << 20) as f64
            ),
            format!("state      {state}"),
        ]
        .join("\n")
    }
}
