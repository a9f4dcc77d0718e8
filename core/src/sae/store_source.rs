//! The activation store (`crate::store`) as a training [`BatchSource`] and an evaluation
//! [`ItemSource`], with a train/test split by item.
//!
//! An item is held out when a hash of its id falls below `test_frac`; the hash depends on the id
//! alone, so the split is the same for every run, seed and SAE on a store, and a store that grows
//! keeps its old items on the same side.

use std::path::Path;
use std::rc::Rc;

use anyhow::{ensure, Result};
use tch::{Device, Tensor};

use super::data::{BatchSource, ItemSource};
use crate::store::{EpochSampler, RowSet, StoreReader};

/// FNV-1a of an item id, then splitmix64's finaliser (FNV alone barely moves its top bits with
/// the last bytes, so ids like `clip-00200`..`clip-00219` fell on one side together), mapped to [0, 1).
fn id_fraction(id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

pub fn is_test_item(id: &str, test_frac: f64) -> bool {
    id_fraction(id) < test_frac
}

/// An opened store with its split.
pub struct SplitStore {
    pub reader: Rc<StoreReader>,
    pub test_frac: f64,
}

impl SplitStore {
    pub fn open(dir: &Path, test_frac: f64) -> Result<SplitStore> {
        ensure!((0.0..1.0).contains(&test_frac), "test fraction {test_frac} must be in [0, 1)");
        Ok(SplitStore { reader: Rc::new(StoreReader::open(dir)?), test_frac })
    }

    pub fn train_rows(&self) -> RowSet {
        self.reader.rows_of(|it| !is_test_item(&it.meta.id, self.test_frac))
    }

    /// Shuffled training batches over the training items.
    pub fn train_source(&self, seed: u64) -> Result<StoreBatches> {
        let rows = self.train_rows();
        ensure!(
            !rows.is_empty(),
            "{}: no training items (all {} are held out)",
            self.reader.dir().display(),
            self.reader.items().len()
        );
        Ok(StoreBatches {
            reader: self.reader.clone(),
            sampler: EpochSampler::new(rows.clone(), seed)?,
            rows,
            seed,
            position: 0,
        })
    }

    /// Indices of the held-out items (every item when none is held out).
    pub fn test_indices(&self) -> Vec<usize> {
        let items = self.reader.items();
        let held: Vec<usize> = (0..items.len()).filter(|&i| is_test_item(&items[i].meta.id, self.test_frac)).collect();
        if held.is_empty() {
            (0..items.len()).collect()
        } else {
            held
        }
    }

    /// The held-out items (every item when none is held out).
    pub fn test_items(&self) -> StoreItems {
        StoreItems { reader: self.reader.clone(), indices: self.test_indices() }
    }
}

/// [`BatchSource`] over a store's training rows.
pub struct StoreBatches {
    reader: Rc<StoreReader>,
    sampler: EpochSampler,
    rows: RowSet,
    seed: u64,
    position: u64,
}

impl BatchSource for StoreBatches {
    fn d_in(&self) -> usize {
        self.reader.d()
    }

    fn next_batch(&mut self, batch: usize, device: Device) -> Result<Tensor> {
        self.position += batch as u64;
        Ok(self.sampler.next_batch(&self.reader, batch).to_tensor(device))
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn seek(&mut self, position: u64) -> Result<()> {
        // The sampler is a pure function of (seed, rows drawn): replay from the epoch start.
        let per_epoch = self.rows.len() as u64;
        self.sampler = EpochSampler::new(self.rows.clone(), self.seed)?;
        let mut skip = position;
        while skip > 0 {
            let n = skip.min(per_epoch.min(1 << 20));
            let _ = self.sampler.next_rows(n as usize);
            skip -= n;
        }
        self.position = position;
        Ok(())
    }
}

/// [`ItemSource`] over a store's held-out items.
pub struct StoreItems {
    reader: Rc<StoreReader>,
    indices: Vec<usize>,
}

impl ItemSource for StoreItems {
    fn n_items(&self) -> usize {
        self.indices.len()
    }

    fn item(&self, i: usize) -> Result<(String, Tensor)> {
        let it = self.reader.item_at(self.indices[i]);
        let (n, d) = it.frames.dim();
        let data = it.frames.as_standard_layout().to_owned().into_raw_vec_and_offset().0;
        Ok((it.meta.id, Tensor::from_slice(&data).view([n as i64, d as i64])))
    }

    fn frame_hop_s(&self) -> Option<f64> {
        Some(self.reader.config().timing.hop_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_by_id_and_near_the_fraction() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("clip-{i}")).collect();
        let held = ids.iter().filter(|id| is_test_item(id, 0.1)).count();
        assert!((800..1200).contains(&held), "{held} of 10000 held out at 10%");
        assert_eq!(is_test_item("clip-7", 0.1), is_test_item("clip-7", 0.1));
    }

    /// Zero-padded sequential ids (the demo corpus's) interleave, without long held-out runs.
    #[test]
    fn padded_sequential_ids_interleave() {
        let test: Vec<bool> = (0..2000).map(|i| is_test_item(&format!("espeak-{i:05}"), 0.1)).collect();
        let frac = test.iter().filter(|&&t| t).count() as f64 / test.len() as f64;
        assert!((0.08..0.12).contains(&frac), "held out {frac}");
        let longest = test.split(|&t| !t).map(|run| run.len()).max().unwrap();
        assert!(longest <= 4, "a run of {longest} consecutive held-out ids");
    }
}
