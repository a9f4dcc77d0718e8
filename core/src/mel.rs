//! Whisper log-mel front end, identical to transformers' `WhisperFeatureExtractor` torch path
//! (400-point periodic Hann STFT, hop 160, Slaney mel filters, log10 clamped to max - 8, then (x + 4) / 4).

use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

/// Whisper/Qwen2-Audio constants (preprocessor_config.json of every released checkpoint).
pub const SAMPLE_RATE: usize = 16_000;
pub const N_FFT: usize = 400;
pub const HOP_LENGTH: usize = 160;
pub const CHUNK_SECONDS: usize = 30;
/// 30 s of samples: every clip is padded or truncated to this before the STFT.
pub const N_SAMPLES: usize = CHUNK_SECONDS * SAMPLE_RATE;
/// One clip cut into 30 s windows (the last one shorter), as long clips are run: every window
/// but the last gives a whole number of frames at every layer, so their frames concatenate.
pub fn windows(samples: &[f32]) -> Vec<&[f32]> {
    samples.chunks(N_SAMPLES).collect()
}

/// Mel frames per 30 s chunk (the last STFT frame is dropped).
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// Filterbank upper edge, hard-coded in transformers (not sr/2).
const F_MAX: f64 = 8000.0;

/// The fields of `preprocessor_config.json` that change the maths.
#[derive(Debug, Clone, Deserialize)]
pub struct MelConfig {
    #[serde(default = "default_n_mels", alias = "n_mels")]
    pub feature_size: usize,
    #[serde(default = "default_sr")]
    pub sampling_rate: usize,
    #[serde(default = "default_hop")]
    pub hop_length: usize,
    #[serde(default = "default_n_fft")]
    pub n_fft: usize,
    #[serde(default = "default_chunk")]
    pub chunk_length: usize,
}

fn default_n_mels() -> usize {
    80
}
fn default_sr() -> usize {
    SAMPLE_RATE
}
fn default_hop() -> usize {
    HOP_LENGTH
}
fn default_n_fft() -> usize {
    N_FFT
}
fn default_chunk() -> usize {
    CHUNK_SECONDS
}

impl MelConfig {
    pub fn whisper(n_mels: usize) -> Self {
        MelConfig {
            feature_size: n_mels,
            sampling_rate: SAMPLE_RATE,
            hop_length: HOP_LENGTH,
            n_fft: N_FFT,
            chunk_length: CHUNK_SECONDS,
        }
    }

    /// Reads `preprocessor_config.json`; only the Whisper geometry is supported.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: MelConfig = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let want = MelConfig::whisper(cfg.feature_size);
        anyhow::ensure!(
            (cfg.sampling_rate, cfg.hop_length, cfg.n_fft, cfg.chunk_length)
                == (want.sampling_rate, want.hop_length, want.n_fft, want.chunk_length),
            "{}: only the Whisper front end (16 kHz, hop 160, n_fft 400, 30 s) is supported, got {:?}",
            path.display(),
            cfg
        );
        Ok(cfg)
    }
}

/// Number of valid mel frames for a clip of `n_samples`: `ceil(min(n, 480000) / 160)`.
pub fn feat_len(n_samples: usize) -> usize {
    n_samples.min(N_SAMPLES).div_ceil(HOP_LENGTH)
}

fn hz_to_mel_slaney(f: f64) -> f64 {
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = 15.0;
    if f < MIN_LOG_HZ {
        3.0 * f / 200.0
    } else {
        MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() * 27.0 / 6.4f64.ln()
    }
}

fn mel_to_hz_slaney(m: f64) -> f64 {
    if m < 15.0 {
        200.0 * m / 3.0
    } else {
        1000.0 * ((6.4f64.ln() / 27.0) * (m - 15.0)).exp()
    }
}

/// Slaney-scale, Slaney-normalised triangular filterbank, `[n_freqs = 201, n_mels]` row-major,
/// computed in f64 like transformers' `mel_filter_bank`.
pub fn mel_filter_bank(n_mels: usize) -> Vec<f64> {
    let n_freqs = N_FFT / 2 + 1;
    let mel_max = hz_to_mel_slaney(F_MAX);
    let hz: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz_slaney(mel_max * i as f64 / (n_mels + 1) as f64)).collect();
    let mut fb = vec![0.0; n_freqs * n_mels];
    for k in 0..n_freqs {
        // linspace(0, sr // 2, 201)
        let f = (SAMPLE_RATE / 2) as f64 * k as f64 / (n_freqs - 1) as f64;
        for m in 0..n_mels {
            let lower = (f - hz[m]) / (hz[m + 1] - hz[m]);
            let upper = (hz[m + 2] - f) / (hz[m + 2] - hz[m + 1]);
            let enorm = 2.0 / (hz[m + 2] - hz[m]);
            fb[k * n_mels + m] = lower.min(upper).max(0.0) * enorm;
        }
    }
    fb
}

/// Computes Whisper log-mel spectrograms on a torch device.
pub struct LogMel {
    n_mels: usize,
    device: Device,
    /// `[n_mels, 201]` f32 (the transposed f64 bank, cast like transformers does).
    filters_t: Tensor,
    /// Periodic Hann window of length 400.
    window: Tensor,
}

/// Output of [`LogMel::compute_batch`].
pub struct MelBatch {
    /// `[B, n_mels, 3000]` f32: exactly the model input.
    pub features: Tensor,
    /// Valid mel frames per clip (`feature_attention_mask.sum(-1)`).
    pub feat_lens: Vec<usize>,
}

impl LogMel {
    pub fn new(n_mels: usize, device: Device) -> Self {
        let fb = mel_filter_bank(n_mels);
        let filters_t = Tensor::from_slice(&fb)
            .view([(N_FFT / 2 + 1) as i64, n_mels as i64])
            .to_kind(Kind::Float)
            .tr()
            .contiguous()
            .to_device(device);
        let window = Tensor::hann_window(N_FFT as i64, (Kind::Float, device));
        LogMel { n_mels, device, filters_t, window }
    }

    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// One clip (16 kHz mono): `[n_mels, 3000]` and its valid frame count.
    pub fn compute(&self, samples: &[f32]) -> (Tensor, usize) {
        let MelBatch { features, feat_lens } = self.compute_batch(&[samples]);
        (features.squeeze_dim(0), feat_lens[0])
    }

    /// A batch of clips, each right-padded with zeros (or head-truncated) to 30 s.
    pub fn compute_batch(&self, clips: &[&[f32]]) -> MelBatch {
        let b = clips.len() as i64;
        let mut padded = vec![0f32; clips.len() * N_SAMPLES];
        for (row, clip) in padded.chunks_mut(N_SAMPLES).zip(clips) {
            let n = clip.len().min(N_SAMPLES);
            row[..n].copy_from_slice(&clip[..n]);
        }
        let wave = Tensor::from_slice(&padded).view([b, N_SAMPLES as i64]).to_device(self.device);
        let features = tch::no_grad(|| self.log_mel(&wave));
        MelBatch { features, feat_lens: clips.iter().map(|c| feat_len(c.len())).collect() }
    }

    /// `[B, N]` waveform -> `[B, n_mels, N/160]`, following transformers'
    /// `_torch_extract_fbank_features` step by step.
    fn log_mel(&self, wave: &Tensor) -> Tensor {
        let (b, n) = wave.size2().unwrap();
        let pad = (N_FFT / 2) as i64;
        // torch.stft(center=True, pad_mode="reflect") pads a (1, B, N) view, then runs the
        // uncentred STFT; the ATen op does not centre by itself (spec §1.3).
        let centred = wave.view([1, b, n]).reflection_pad1d([pad, pad]).view([b, n + 2 * pad]);
        let stft =
            centred.stft(N_FFT as i64, HOP_LENGTH as i64, N_FFT as i64, Some(&self.window), false, true, true, false);
        let frames = stft.size()[2];
        let power = stft.narrow(2, 0, frames - 1).abs().square();
        let mel = self.filters_t.matmul(&power);
        let log = mel.clamp_min(1e-10).log10();
        let max = log.amax([1, 2], true);
        (log.maximum(&(max - 8.0)) + 4.0) / 4.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feat_len_is_ceil_of_samples_over_hop() {
        assert_eq!(feat_len(64123), 401);
        assert_eq!(feat_len(160), 1);
        assert_eq!(feat_len(161), 2);
        assert_eq!(feat_len(0), 0);
        assert_eq!(feat_len(10 * N_SAMPLES), N_FRAMES);
    }

    #[test]
    fn filterbank_has_no_empty_filter_and_slaney_area() {
        for n_mels in [80, 128] {
            let fb = mel_filter_bank(n_mels);
            for m in 0..n_mels {
                let col: f64 = (0..201).map(|k| fb[k * n_mels + m]).sum();
                assert!(col > 0.0, "filter {m} of {n_mels} is empty");
            }
        }
        assert!((hz_to_mel_slaney(F_MAX) - 45.245640471924965).abs() < 1e-12);
        assert!((mel_to_hz_slaney(hz_to_mel_slaney(3210.0)) - 3210.0).abs() < 1e-9);
    }

    #[test]
    fn padding_tail_is_max_minus_two() {
        // With a zero tail, padded frames equal (feature max) - 2 exactly.
        let clip: Vec<f32> = (0..16000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let (mel, len) = LogMel::new(80, Device::Cpu).compute(&clip);
        assert_eq!(mel.size(), [80, 3000]);
        assert_eq!(len, 100);
        let max = mel.max().double_value(&[]);
        let tail = mel.narrow(1, 200, 2800);
        assert!((tail.max().double_value(&[]) - (max - 2.0)).abs() < 1e-6);
        assert!((tail.min().double_value(&[]) - (max - 2.0)).abs() < 1e-6);
    }
}
