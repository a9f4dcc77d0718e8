//! Memory-mapped reads of a store: random rows gathered into a contiguous batch, or all frames of
//! one item with their absolute times.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use half::slice::HalfBitsSliceExt;
use half::{f16, slice::HalfFloatSliceExt};
use memmap2::Mmap;
use ndarray::{Array2, ArrayView2};
use tch::{Device, Tensor};

use super::manifest::{ItemEntry, ItemMeta, Manifest, StoreConfig, StoreDType};
use super::npy_header::parse_npy_header;
use super::sampler::RowSet;
use crate::timing::FrameTiming;

/// A store opened for reading. Sees the committed items of the manifest as it was at `open`;
/// a writer may keep appending meanwhile (its shard files are never rewritten in place).
pub struct StoreReader {
    dir: PathBuf,
    manifest: Manifest,
    /// The shards that hold committed rows, in order.
    shards: Vec<Mmap>,
    /// Byte offset of the data in each shard file.
    data_offsets: Vec<usize>,
    item_by_id: HashMap<String, usize>,
}

/// Rows gathered from the store: `data` is `[rows, d]`, row-major, f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub data: Vec<f32>,
    pub rows: usize,
    pub d: usize,
}

impl Batch {
    pub fn view(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape((self.rows, self.d), &self.data).expect("batch data is rows * d")
    }

    pub fn into_array(self) -> Array2<f32> {
        Array2::from_shape_vec((self.rows, self.d), self.data).expect("batch data is rows * d")
    }

    /// A `[rows, d]` f32 tensor on `device`.
    pub fn to_tensor(&self, device: Device) -> Tensor {
        Tensor::from_slice(&self.data).view([self.rows as i64, self.d as i64]).to_device(device)
    }
}

/// All frames of one item. Row `i` covers `[timing.start(i), timing.start(i) + hop)` seconds of
/// `meta.audio`: `timing` already includes the item's time offset.
#[derive(Clone, Debug)]
pub struct ItemFrames {
    pub meta: ItemMeta,
    pub frames: Array2<f32>,
    pub timing: FrameTiming,
}

impl StoreReader {
    /// Opens a store: reads the manifest and maps its shards, checking each header and size
    /// (checksums are left to [`verify`](super::verify)).
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = Manifest::load(dir)?;
        let c = &manifest.config;
        let n_shards = manifest.committed_rows().div_ceil(c.shard_rows);
        ensure!(
            n_shards <= manifest.shards.len(),
            "{}: items reach row {} but only {} shards are listed",
            Manifest::path(dir).display(),
            manifest.committed_rows(),
            manifest.shards.len()
        );
        let mut shards = Vec::with_capacity(n_shards);
        let mut data_offsets = Vec::with_capacity(n_shards);
        for (i, s) in manifest.shards[..n_shards].iter().enumerate() {
            let path = dir.join(&s.file);
            let file = File::open(&path).with_context(|| format!("opening shard {}", path.display()))?;
            // SAFETY: shard files are written once and never modified in place (see the writer).
            let map = unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
            let header = parse_npy_header(&map).with_context(|| format!("{}: bad .npy header", path.display()))?;
            ensure!(
                header.descr == c.dtype.npy_descr() && !header.fortran_order && header.shape == [s.rows, c.d],
                "{}: header says {} {:?}, the manifest {} [{}, {}]",
                path.display(),
                header.descr,
                header.shape,
                c.dtype.npy_descr(),
                s.rows,
                c.d
            );
            // Manifest::load bounds s.rows * row_bytes; the header's offset is the file's.
            let expected = (s.rows * c.row_bytes()).checked_add(header.data_offset);
            ensure!(
                expected == Some(map.len()),
                "{}: {} bytes, expected {} (truncated?)",
                path.display(),
                map.len(),
                expected.map_or("more than memory can address".to_string(), |e| e.to_string())
            );
            ensure!(
                i + 1 == n_shards || s.rows == c.shard_rows,
                "{}: {} rows, but every shard but the last must hold {}",
                path.display(),
                s.rows,
                c.shard_rows
            );
            ensure!(header.data_offset.is_multiple_of(4), "{}: data not 4-byte aligned", path.display());
            shards.push(map);
            data_offsets.push(header.data_offset);
        }
        let item_by_id = manifest.items.iter().enumerate().map(|(i, it)| (it.meta.id.clone(), i)).collect();
        Ok(StoreReader { dir: dir.to_path_buf(), manifest, shards, data_offsets, item_by_id })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn config(&self) -> &StoreConfig {
        &self.manifest.config
    }

    pub fn d(&self) -> usize {
        self.manifest.config.d
    }

    /// Committed rows: valid row indices are `0..rows()`.
    pub fn rows(&self) -> usize {
        self.manifest.committed_rows()
    }

    pub fn items(&self) -> &[ItemEntry] {
        &self.manifest.items
    }

    pub fn item_index(&self, id: &str) -> Option<usize> {
        self.item_by_id.get(id).copied()
    }

    /// All frames of item `id` with their absolute times.
    pub fn item(&self, id: &str) -> Result<ItemFrames> {
        let index = self.item_index(id).with_context(|| format!("{}: no item {id:?}", self.dir.display()))?;
        Ok(self.item_at(index))
    }

    /// All frames of the item at `index` in [`StoreReader::items`].
    pub fn item_at(&self, index: usize) -> ItemFrames {
        let item = &self.manifest.items[index];
        let mut data = vec![0f32; item.rows() * self.d()];
        self.read_range(item.start, item.end, &mut data);
        ItemFrames {
            meta: item.meta.clone(),
            frames: Array2::from_shape_vec((item.rows(), self.d()), data).expect("rows * d values"),
            timing: item.timing(self.manifest.config.timing),
        }
    }

    /// Copies the contiguous rows `start..end` into `out` (`(end - start) * d` values).
    pub fn read_range(&self, start: usize, end: usize, out: &mut [f32]) {
        let (d, shard_rows) = (self.d(), self.manifest.config.shard_rows);
        assert!(start <= end && end <= self.rows(), "rows {start}..{end} outside 0..{}", self.rows());
        assert_eq!(out.len(), (end - start) * d, "output buffer size");
        let mut row = start;
        while row < end {
            let shard = row / shard_rows;
            let stop = end.min((shard + 1) * shard_rows);
            let dst = &mut out[(row - start) * d..(stop - start) * d];
            self.decode(shard, row - shard * shard_rows, stop - row, dst);
            row = stop;
        }
    }

    /// Gathers `rows` (any order, repeats allowed) into a new batch.
    pub fn gather(&self, rows: &[usize]) -> Batch {
        let mut data = vec![0f32; rows.len() * self.d()];
        self.gather_into(rows, &mut data);
        Batch { data, rows: rows.len(), d: self.d() }
    }

    /// Gathers `rows` into `out` (`rows.len() * d` values), reusing the caller's buffer.
    pub fn gather_into(&self, rows: &[usize], out: &mut [f32]) {
        let (d, shard_rows, n) = (self.d(), self.manifest.config.shard_rows, self.rows());
        assert_eq!(out.len(), rows.len() * d, "output buffer size");
        for (&row, dst) in rows.iter().zip(out.chunks_exact_mut(d)) {
            assert!(row < n, "row {row} outside the store's {n} committed rows");
            self.decode(row / shard_rows, row % shard_rows, 1, dst);
        }
    }

    /// All committed rows.
    pub fn all_rows(&self) -> RowSet {
        RowSet::from_ranges([(0, self.rows())])
    }

    /// The rows of the items for which `keep` is true (a train or test split by item).
    pub fn rows_of(&self, mut keep: impl FnMut(&ItemEntry) -> bool) -> RowSet {
        RowSet::from_ranges(self.items().iter().filter(|it| keep(it)).map(|it| (it.start, it.end)))
    }

    /// Converts `rows` rows of shard `shard` from local row `local` on into f32.
    fn decode(&self, shard: usize, local: usize, rows: usize, out: &mut [f32]) {
        let row_bytes = self.manifest.config.row_bytes();
        let at = self.data_offsets[shard] + local * row_bytes;
        let src = &self.shards[shard][at..at + rows * row_bytes];
        match self.manifest.config.dtype {
            StoreDType::F32 => bytemuck::cast_slice_mut::<f32, u8>(out).copy_from_slice(src),
            StoreDType::F16 => {
                let bits: &[u16] = bytemuck::cast_slice(src);
                bits.reinterpret_cast::<f16>().convert_to_f32_slice(out);
            }
        }
    }
}
