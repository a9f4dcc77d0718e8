//! `audiosae store merge`: joins the stores of `--shard i/N` jobs into one store, item by item,
//! through a [`StoreWriter`], so the result has the usual fixed-size shards and an interrupted
//! merge resumes where it stopped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::manifest::Manifest;
use super::reader::StoreReader;
use super::writer::StoreWriter;

#[derive(Debug, PartialEq, Eq)]
pub struct MergeSummary {
    /// Items copied by this call.
    pub copied: usize,
    /// Items already in `out` from an interrupted earlier merge.
    pub resumed: usize,
    /// Frames in the merged store.
    pub rows: usize,
}

/// Merges `inputs` (finished stores of the same model, layer, timing, dtype and d, with disjoint
/// item ids) into the store `out`, in input order.
pub fn merge(out: &Path, inputs: &[PathBuf], progress: bool) -> Result<MergeSummary> {
    ensure!(!inputs.is_empty(), "merge needs at least one input store");
    let readers = inputs.iter().map(|p| StoreReader::open(p)).collect::<Result<Vec<_>>>()?;
    let first = &readers[0];
    let mut owner: HashMap<&str, &Path> = HashMap::new();
    for (path, r) in inputs.iter().zip(&readers) {
        if out.exists() && out.canonicalize()? == path.canonicalize()? {
            bail!("{} is both the output and an input", path.display());
        }
        let m = r.manifest();
        ensure!(
            m.finished && m.committed_rows() == m.shard_rows_total(),
            "{} is not a finished store; run its job to completion before merging",
            path.display()
        );
        let diff = first.config().differences(r.config(), false);
        ensure!(
            diff.is_empty(),
            "{} does not match {} ({} vs {}):\n  {}",
            path.display(),
            inputs[0].display(),
            inputs[0].display(),
            path.display(),
            diff.join("\n  ")
        );
        for item in r.items() {
            if let Some(other) = owner.insert(&item.meta.id, path) {
                bail!("item {:?} is in both {} and {}", item.meta.id, other.display(), path.display());
            }
        }
    }
    let mut writer = if Manifest::is_in(out) {
        let w = StoreWriter::open(out)?;
        ensure!(!w.manifest().finished, "{} is already a finished store; merge into a new directory", out.display());
        let diff = first.config().differences(w.config(), false);
        ensure!(
            diff.is_empty(),
            "{} holds a store that does not match the inputs:\n  {}",
            out.display(),
            diff.join("\n  ")
        );
        if let Some(item) = w.manifest().items.iter().find(|i| !owner.contains_key(i.meta.id.as_str())) {
            bail!("{} holds item {:?}, which is in no input; merge into a new directory", out.display(), item.meta.id);
        }
        w
    } else {
        StoreWriter::create(out, first.config().clone())?
    };
    let total: usize = readers.iter().map(|r| r.rows()).sum();
    let bar = if progress { ProgressBar::new(total as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("merge {bar:40} {human_pos}/{human_len} frames {per_sec} eta {eta}")
            .expect("static template"),
    );
    let (mut copied, mut resumed) = (0, 0);
    for r in &readers {
        for (i, item) in r.items().iter().enumerate() {
            if writer.is_committed(&item.meta.id) {
                resumed += 1;
            } else {
                let f = r.item_at(i);
                writer.append_item(f.meta, f.frames.as_slice().expect("standard layout"))?;
                copied += 1;
            }
            bar.inc(item.rows() as u64);
        }
    }
    let manifest = writer.finish()?;
    bar.finish_and_clear();
    Ok(MergeSummary { copied, resumed, rows: manifest.committed_rows() })
}
