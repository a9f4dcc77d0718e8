//! Crash-safe, resumable appends to a store.
//!
//! Rows are buffered until a shard is full; the shard is then written to a temp file, fsynced and
//! renamed, and the manifest is rewritten atomically with every item whose rows are now all in
//! durable shards. A `kill -9` at any moment leaves the previous manifest or the new one, both
//! consistent. Rows of an item that was cut off may sit at the end of the last durable shards;
//! [`StoreWriter::open`] drops them: it reloads the committed rows of the last partial shard into
//! the buffer and the next commit replaces that shard (under a new file name) and the ones after it.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use half::f16;
use half::slice::HalfFloatSliceExt;

use super::files::{is_shard_file_name, sha256_bytes, shard_file_name, sync_dir, write_atomic, TMP_SUFFIX};
use super::manifest::{ItemEntry, ItemMeta, Manifest, ShardEntry, StoreConfig, StoreDType};
use super::npy_header::{npy_header, parse_npy_header};

/// An item the writer refused (bad frames, duplicate id, ...). The writer is unchanged and can go
/// on; find it with `err.downcast_ref::<InvalidItem>()`. Any other error from the writer is an
/// I/O failure after which the writer refuses further work (reopen it to resume).
#[derive(Debug, thiserror::Error)]
#[error("item {id:?}: {reason}")]
pub struct InvalidItem {
    pub id: String,
    pub reason: String,
}

/// Appends items to a store. One writer per store directory at a time.
pub struct StoreWriter {
    dir: PathBuf,
    /// The manifest as last saved.
    manifest: Manifest,
    /// Position of the shard being filled; the shards before it are full and final.
    open_shard: usize,
    /// Rows of the open shard, already in the store dtype.
    buffer: Vec<u8>,
    /// The open shard is listed in `manifest` with exactly the rows of `buffer`.
    buffer_on_disk: bool,
    /// Appended items whose last rows are not durable yet, in row order.
    pending: Vec<ItemEntry>,
    /// Ids of committed and pending items.
    ids: HashSet<String>,
    /// Set by an I/O error in the middle of a commit.
    failed: bool,
}

impl StoreWriter {
    /// Creates a new store in `dir` (created if missing; it must hold nothing else).
    pub fn create(dir: &Path, config: StoreConfig) -> Result<Self> {
        config.validate()?;
        if Manifest::path(dir).exists() {
            bail!("{} already holds an activation store; open it to resume", dir.display());
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !name.ends_with(TMP_SUFFIX) {
                bail!("{} holds {name} but no store; refusing to create a store there", dir.display());
            }
        }
        remove_scratch_files(dir, &[])?;
        let manifest = Manifest::new(config);
        manifest.save(dir)?;
        Ok(StoreWriter {
            dir: dir.to_path_buf(),
            manifest,
            open_shard: 0,
            buffer: Vec::new(),
            buffer_on_disk: false,
            pending: Vec::new(),
            ids: HashSet::new(),
            failed: false,
        })
    }

    /// Opens an existing store to append to it (resume after a crash, or add items).
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::load(dir)?;
        let listed: Vec<&str> = manifest.shards.iter().map(|s| s.file.as_str()).collect();
        remove_scratch_files(dir, &listed)?;
        let c = manifest.config.clone();
        let committed = manifest.committed_rows();
        ensure!(
            committed <= manifest.shard_rows_total(),
            "{}: items reach row {committed} but the shards hold {} rows",
            Manifest::path(dir).display(),
            manifest.shard_rows_total()
        );
        let open_shard = committed / c.shard_rows;
        for s in &manifest.shards[..open_shard] {
            let path = dir.join(&s.file);
            let len = fs::metadata(&path).with_context(|| format!("{}: missing shard", path.display()))?.len();
            ensure!(s.rows == c.shard_rows, "{}: {} rows, expected a full shard of {}", s.file, s.rows, c.shard_rows);
            ensure!(len == s.bytes, "{}: {len} bytes, the manifest says {}", path.display(), s.bytes);
        }
        let keep_rows = committed - open_shard * c.shard_rows;
        let buffer = if keep_rows > 0 {
            read_shard_prefix(dir, &manifest.shards[open_shard], &c, keep_rows)?
        } else {
            Vec::new()
        };
        let buffer_on_disk =
            keep_rows > 0 && manifest.shards.len() == open_shard + 1 && manifest.shards[open_shard].rows == keep_rows;
        let ids = manifest.items.iter().map(|i| i.meta.id.clone()).collect();
        Ok(StoreWriter {
            dir: dir.to_path_buf(),
            manifest,
            open_shard,
            buffer,
            buffer_on_disk,
            pending: Vec::new(),
            ids,
            failed: false,
        })
    }

    /// Opens the store in `dir` if there is one (its config must equal `config`), else creates it.
    pub fn open_or_create(dir: &Path, config: StoreConfig) -> Result<Self> {
        if !Manifest::is_in(dir) {
            return Self::create(dir, config);
        }
        let writer = Self::open(dir)?;
        let diff = writer.config().differences(&config, true);
        ensure!(
            diff.is_empty(),
            "{} holds a store with another config (store vs requested):\n  {}",
            dir.display(),
            diff.join("\n  ")
        );
        Ok(writer)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &StoreConfig {
        &self.manifest.config
    }

    /// The manifest as last saved (committed items only).
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether `id` was appended (committed, or pending in this writer).
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether `id` is in the durable manifest; a resumed extractor skips these.
    pub fn is_committed(&self, id: &str) -> bool {
        self.ids.contains(id) && !self.pending.iter().any(|p| p.meta.id == id)
    }

    /// Rows appended so far, committed or not.
    pub fn rows(&self) -> usize {
        self.open_shard * self.manifest.config.shard_rows + self.buffer.len() / self.manifest.config.row_bytes()
    }

    /// Appends one item: `frames` holds its rows, row-major, `rows * d` values. An item is
    /// committed (durable, listed in the manifest) once the shard holding its last row is written,
    /// at the latest by [`StoreWriter::finish`].
    pub fn append_item(&mut self, meta: ItemMeta, frames: &[f32]) -> Result<()> {
        self.check_usable()?;
        let bytes = self.encode(&meta, frames)?;
        let c = &self.manifest.config;
        let (shard_rows, shard_bytes) = (c.shard_rows, c.shard_rows * c.row_bytes());
        let start = self.rows();
        let end = start + bytes.len() / c.row_bytes();
        self.ids.insert(meta.id.clone());
        self.pending.push(ItemEntry::new(meta, start, end, shard_rows));
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            self.buffer_on_disk = false;
            let take = (shard_bytes - self.buffer.len()).min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == shard_bytes {
                self.commit(false)?;
            }
        }
        Ok(())
    }

    /// Writes the last (partial) shard, commits every pending item and marks the store finished.
    pub fn finish(mut self) -> Result<Manifest> {
        self.check_usable()?;
        self.commit(true)?;
        Ok(self.manifest)
    }

    fn check_usable(&self) -> Result<()> {
        ensure!(!self.failed, "{}: an earlier write failed; reopen the store to resume", self.dir.display());
        Ok(())
    }

    /// Checks an item and converts its rows to the store dtype.
    fn encode(&self, meta: &ItemMeta, frames: &[f32]) -> Result<Vec<u8>, InvalidItem> {
        let d = self.manifest.config.d;
        let bad = |reason: String| InvalidItem { id: meta.id.clone(), reason };
        if meta.id.is_empty() {
            return Err(bad("empty item id".into()));
        }
        if self.ids.contains(&meta.id) {
            return Err(bad(format!("already in the store {}", self.dir.display())));
        }
        if !(meta.duration_s.is_finite() && meta.duration_s >= 0.0 && meta.time_offset_s.is_finite()) {
            return Err(bad(format!("bad duration {} s or time offset {} s", meta.duration_s, meta.time_offset_s)));
        }
        if !frames.len().is_multiple_of(d) {
            return Err(bad(format!("{} values are not whole rows of d = {d} (wrong feature size?)", frames.len())));
        }
        if let Some(i) = frames.iter().position(|x| !x.is_finite()) {
            return Err(bad(format!("row {} column {} is {}", i / d, i % d, frames[i])));
        }
        match self.manifest.config.dtype {
            StoreDType::F32 => Ok(bytemuck::cast_slice(frames).to_vec()),
            StoreDType::F16 => {
                let mut half = vec![f16::ZERO; frames.len()];
                half.convert_from_f32_slice(frames);
                if let Some(i) = half.iter().position(|x| x.is_infinite()) {
                    return Err(bad(format!("row {} column {}: {} overflows f16", i / d, i % d, frames[i])));
                }
                Ok(bytemuck::cast_slice(half.reinterpret_cast()).to_vec())
            }
        }
    }

    /// Writes the open shard (if it has rows not yet on disk) and saves the manifest with every
    /// item that is now durable. Marks the writer failed if anything goes wrong.
    fn commit(&mut self, finished: bool) -> Result<()> {
        let result = self.try_commit(finished);
        self.failed = result.is_err();
        result
    }

    fn try_commit(&mut self, finished: bool) -> Result<()> {
        let c = self.manifest.config.clone();
        let rows = self.buffer.len() / c.row_bytes();
        let mut next = self.manifest.clone();
        let mut superseded = Vec::new();
        if !self.buffer_on_disk {
            superseded = next.shards.split_off(self.open_shard);
            if rows > 0 {
                let file = shard_file_name(next.next_file_id);
                next.next_file_id += 1;
                let header = npy_header(c.dtype.npy_descr(), rows, c.d);
                let (bytes, sha256) = write_atomic(&self.dir, &file, &[&header, &self.buffer])?;
                next.shards.push(ShardEntry { file, rows, bytes, sha256 });
            }
        }
        let durable = next.shard_rows_total();
        let n_committed = self.pending.iter().take_while(|i| i.end <= durable).count();
        next.items.extend(self.pending[..n_committed].iter().cloned());
        next.finished = finished && n_committed == self.pending.len();
        next.save(&self.dir)?;
        self.manifest = next;
        self.pending.drain(..n_committed);
        for s in superseded {
            remove_if_present(&self.dir.join(&s.file))?;
        }
        if rows == c.shard_rows {
            self.open_shard += 1;
            self.buffer.clear();
            self.buffer_on_disk = false;
        } else {
            self.buffer_on_disk = rows > 0;
        }
        Ok(())
    }
}

/// The first `rows` rows of a shard's data, after checking its header and checksum.
fn read_shard_prefix(dir: &Path, shard: &ShardEntry, c: &StoreConfig, rows: usize) -> Result<Vec<u8>> {
    let path = dir.join(&shard.file);
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        sha256_bytes(&bytes) == shard.sha256,
        "{}: checksum differs from the manifest (corrupted shard; the store cannot be resumed)",
        path.display()
    );
    let header = parse_npy_header(&bytes).with_context(|| path.display().to_string())?;
    let start = header.data_offset;
    ensure!(rows <= shard.rows, "{}: asked for {rows} of its {} rows", path.display(), shard.rows);
    let data = start.checked_add(rows * c.row_bytes()).and_then(|end| bytes.get(start..end));
    Ok(data.with_context(|| format!("{}: shorter than its {rows} rows (truncated shard)", path.display()))?.to_vec())
}

/// Deletes what a crash can leave behind: `*.tmp` files and shard files the manifest does not list.
fn remove_scratch_files(dir: &Path, listed: &[&str]) -> Result<()> {
    let mut removed = false;
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_SUFFIX) || (is_shard_file_name(&name) && !listed.contains(&name.as_str())) {
            remove_if_present(&dir.join(&name))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
