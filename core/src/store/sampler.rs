//! Seeded random row samplers over a set of store rows: an epoch sampler (a uniform random
//! permutation per epoch, every row once per epoch) and an i.i.d. sampler (uniform draws with
//! replacement). Both are deterministic given the seed (ChaCha8).

use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::reader::{Batch, StoreReader};

/// A sorted set of global row indices, stored as disjoint ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowSet {
    ranges: Vec<(usize, usize)>,
    /// Rows in the ranges before each range.
    before: Vec<usize>,
    len: usize,
}

impl RowSet {
    /// The union of the half-open ranges `start..end`.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (usize, usize)>) -> Self {
        let mut sorted: Vec<(usize, usize)> = ranges.into_iter().filter(|(s, e)| s < e).collect();
        sorted.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(sorted.len());
        for (s, e) in sorted {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut before = Vec::with_capacity(merged.len());
        let mut len = 0;
        for (s, e) in &merged {
            before.push(len);
            len += e - s;
        }
        RowSet { ranges: merged, before, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `j`-th smallest row of the set.
    pub fn nth(&self, j: usize) -> usize {
        assert!(j < self.len, "row {j} of a set of {}", self.len);
        let k = self.before.partition_point(|&b| b <= j) - 1;
        self.ranges[k].0 + (j - self.before[k])
    }
}

/// Shuffled passes over a row set: epoch `e` is a uniform random permutation drawn from
/// `(seed, e)`; batches are cut from consecutive epochs (a batch may straddle two).
pub struct EpochSampler {
    rows: RowSet,
    seed: u64,
    epoch: u64,
    /// Positions into `rows`, in this epoch's order.
    order: Vec<u32>,
    next: usize,
}

impl EpochSampler {
    pub fn new(rows: RowSet, seed: u64) -> Result<Self> {
        ensure!(!rows.is_empty(), "cannot sample from an empty set of rows");
        ensure!(rows.len() <= u32::MAX as usize, "the epoch sampler handles at most 2^32 - 1 rows");
        let mut sampler = EpochSampler { rows, seed, epoch: 0, order: Vec::new(), next: 0 };
        sampler.shuffle();
        Ok(sampler)
    }

    /// Epoch of the next row to be drawn (0 first).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn next_rows(&mut self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if self.next == self.order.len() {
                self.epoch += 1;
                self.shuffle();
            }
            let take = (n - out.len()).min(self.order.len() - self.next);
            out.extend(self.order[self.next..self.next + take].iter().map(|&j| self.rows.nth(j as usize)));
            self.next += take;
        }
        out
    }

    pub fn next_batch(&mut self, reader: &StoreReader, n: usize) -> Batch {
        reader.gather(&self.next_rows(n))
    }

    fn shuffle(&mut self) {
        self.order.clear();
        self.order.extend(0..self.rows.len() as u32);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.epoch);
        self.order.shuffle(&mut rng);
        self.next = 0;
    }
}

/// Independent uniform draws (with replacement) from a row set.
pub struct IidSampler {
    rows: RowSet,
    rng: ChaCha8Rng,
}

impl IidSampler {
    pub fn new(rows: RowSet, seed: u64) -> Result<Self> {
        ensure!(!rows.is_empty(), "cannot sample from an empty set of rows");
        Ok(IidSampler { rows, rng: ChaCha8Rng::seed_from_u64(seed) })
    }

    pub fn next_rows(&mut self, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.rows.nth(self.rng.gen_range(0..self.rows.len()))).collect()
    }

    pub fn next_batch(&mut self, reader: &StoreReader, n: usize) -> Batch {
        reader.gather(&self.next_rows(n))
    }
}
