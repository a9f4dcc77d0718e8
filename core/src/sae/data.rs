//! Where the trainer and the evaluator get activations from.
//!
//! [`BatchSource`] hands out shuffled training batches and can report and restore its position,
//! so that a resumed run sees exactly the batches an uninterrupted run would have seen.
//! [`ItemSource`] hands out whole held-out items (one clip's frames) for evaluation.
//! [`InMemorySource`] implements both over a `[frames, d_in]` tensor; the activation store has
//! its own adapter.

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Shuffled training batches with a restorable position.
pub trait BatchSource {
    fn d_in(&self) -> usize;
    /// The next `batch` frames, `[batch, d_in]` float32 on `device`.
    fn next_batch(&mut self, batch: usize, device: Device) -> Result<Tensor>;
    /// How many frames have been handed out so far (the data position saved in checkpoints).
    fn position(&self) -> u64;
    /// Continues as if `position` frames had been handed out already.
    fn seek(&mut self, position: u64) -> Result<()>;
}

/// Whole items (clips) for evaluation: name and `[frames, d_in]` activations.
pub trait ItemSource {
    fn n_items(&self) -> usize;
    fn item(&self, i: usize) -> Result<(String, Tensor)>;
    /// Seconds between frames, for the per-item error plots (None if unknown).
    fn frame_hop_s(&self) -> Option<f64> {
        None
    }
}

/// SplitMix64: a small, fast, seedable generator for the shuffles (no state beyond one u64).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// A seeded permutation of `0..n` (Fisher-Yates).
pub fn permutation(n: usize, seed: u64) -> Vec<i64> {
    let mut p: Vec<i64> = (0..n as i64).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..n).rev() {
        p.swap(i, rng.below(i as u64 + 1) as usize);
    }
    p
}

/// Frames held in memory, with item boundaries. Training batches walk a fresh seeded
/// permutation of all frames each epoch.
pub struct InMemorySource {
    frames: Tensor,
    /// `(name, start, len)` per item, in frame order.
    items: Vec<(String, usize, usize)>,
    seed: u64,
    position: u64,
    epoch_perm: Option<(u64, Tensor)>,
}

impl InMemorySource {
    /// `frames` is `[n, d_in]`; every frame is its own item unless [`Self::with_items`] says otherwise.
    pub fn new(frames: Tensor, seed: u64) -> Result<Self> {
        let (n, _) = frames.size2()?;
        ensure!(n > 0, "in-memory source: no frames");
        let frames = frames.to_kind(Kind::Float).to_device(Device::Cpu).contiguous();
        Ok(InMemorySource { frames, items: vec![("all".into(), 0, n as usize)], seed, position: 0, epoch_perm: None })
    }

    /// Sets the item boundaries: consecutive runs of `lens[i]` frames named `names[i]`.
    pub fn with_items(mut self, names: Vec<String>, lens: &[usize]) -> Result<Self> {
        ensure!(names.len() == lens.len(), "in-memory source: {} names for {} items", names.len(), lens.len());
        let total: usize = lens.iter().sum();
        ensure!(total == self.n_frames(), "in-memory source: items cover {total} of {} frames", self.n_frames());
        let mut start = 0;
        self.items = names
            .into_iter()
            .zip(lens)
            .map(|(name, &len)| {
                start += len;
                (name, start - len, len)
            })
            .collect();
        Ok(self)
    }

    pub fn n_frames(&self) -> usize {
        self.frames.size()[0] as usize
    }

    pub fn frames(&self) -> &Tensor {
        &self.frames
    }

    fn perm(&mut self, epoch: u64) -> &Tensor {
        if self.epoch_perm.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let p = permutation(self.n_frames(), self.seed ^ epoch.wrapping_mul(0xA24B_AED4_963E_E407));
            self.epoch_perm = Some((epoch, Tensor::from_slice(&p)));
        }
        &self.epoch_perm.as_ref().unwrap().1
    }
}

impl BatchSource for InMemorySource {
    fn d_in(&self) -> usize {
        self.frames.size()[1] as usize
    }

    fn next_batch(&mut self, batch: usize, device: Device) -> Result<Tensor> {
        let n = self.n_frames() as u64;
        let mut parts = Vec::new();
        let mut need = batch as u64;
        while need > 0 {
            let (epoch, off) = (self.position / n, self.position % n);
            let take = need.min(n - off);
            parts.push(self.perm(epoch).narrow(0, off as i64, take as i64));
            self.position += take;
            need -= take;
        }
        let idx = Tensor::cat(&parts, 0);
        Ok(self.frames.index_select(0, &idx).to_device(device))
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn seek(&mut self, position: u64) -> Result<()> {
        self.position = position;
        Ok(())
    }
}

impl ItemSource for InMemorySource {
    fn n_items(&self) -> usize {
        self.items.len()
    }

    fn item(&self, i: usize) -> Result<(String, Tensor)> {
        let (name, start, len) = &self.items[i];
        Ok((name.clone(), self.frames.narrow(0, *start as i64, *len as i64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_replays_the_same_batches() {
        let frames = Tensor::arange(40, (Kind::Float, Device::Cpu)).view([20, 2]);
        let mut a = InMemorySource::new(frames.shallow_clone(), 7).unwrap();
        let _ = a.next_batch(7, Device::Cpu).unwrap();
        let pos = a.position();
        let next: Vec<f32> = a.next_batch(30, Device::Cpu).unwrap().flatten(0, -1).try_into().unwrap();
        let mut b = InMemorySource::new(frames, 7).unwrap();
        b.seek(pos).unwrap();
        let replay: Vec<f32> = b.next_batch(30, Device::Cpu).unwrap().flatten(0, -1).try_into().unwrap();
        assert_eq!(next, replay);
    }

    #[test]
    fn an_epoch_visits_every_frame_once() {
        let frames = Tensor::arange(10, (Kind::Float, Device::Cpu)).view([10, 1]);
        let mut s = InMemorySource::new(frames, 3).unwrap();
        let mut seen: Vec<f32> = s.next_batch(10, Device::Cpu).unwrap().flatten(0, -1).try_into().unwrap();
        assert_ne!(seen, (0..10).map(|i| i as f32).collect::<Vec<_>>(), "batch should be shuffled");
        seen.sort_by(f32::total_cmp);
        assert_eq!(seen, (0..10).map(|i| i as f32).collect::<Vec<_>>());
    }
}
