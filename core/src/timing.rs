//! Frame timing of a layer's output, carried with every feature matrix so that alignment code
//! never hard-codes a hop.

use serde::{Deserialize, Serialize};

/// Mel hop: 160 samples at 16 kHz (WhisperFeatureExtractor `hop_length`).
pub const MEL_HOP_S: f64 = 0.010;

/// Frame `i` of a layer covers `[offset_s + i*hop_s, offset_s + (i+1)*hop_s)`.
///
/// With `center=True` the STFT centres mel frame `t` on `t * 10 ms`. Whisper's conv2 (stride 2)
/// centres encoder frame `j` on mel frame `2j`, i.e. on `j * 20 ms`, so its cell starts 10 ms
/// earlier; Qwen2-Audio's avg-pool averages encoder frames `2j, 2j+1` (centres `40j` and
/// `40j + 20` ms), so its cell `[40j - 10, 40j + 30)` ms also starts 10 ms before `j * hop`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameTiming {
    pub hop_s: f64,
    pub offset_s: f64,
}

impl FrameTiming {
    /// Whisper encoder layers and Qwen2-Audio pre-pool layers: 20 ms frames.
    pub const ENCODER: FrameTiming = FrameTiming { hop_s: 2.0 * MEL_HOP_S, offset_s: -MEL_HOP_S };
    /// Qwen2-Audio after the avg-pool (final encoder output and projector): 40 ms frames.
    pub const POOLED: FrameTiming = FrameTiming { hop_s: 4.0 * MEL_HOP_S, offset_s: -MEL_HOP_S };
    /// Log-mel frames themselves: 10 ms, centred on `t * 10 ms`.
    pub const MEL: FrameTiming = FrameTiming { hop_s: MEL_HOP_S, offset_s: -MEL_HOP_S / 2.0 };

    /// Text stores: one row per token, "time" is the token index.
    pub const TOKENS: FrameTiming = FrameTiming { hop_s: 1.0, offset_s: 0.0 };

    pub fn start(&self, i: usize) -> f64 {
        self.offset_s + i as f64 * self.hop_s
    }

    pub fn center(&self, i: usize) -> f64 {
        self.offset_s + (i as f64 + 0.5) * self.hop_s
    }

    /// Index of the frame whose cell contains time `t` (clamped at 0).
    pub fn frame_at(&self, t: f64) -> usize {
        ((t - self.offset_s) / self.hop_s).floor().max(0.0) as usize
    }

    /// Shifts the timing by `seconds`, for windows cut from a longer clip.
    pub fn shifted(&self, seconds: f64) -> FrameTiming {
        FrameTiming { hop_s: self.hop_s, offset_s: self.offset_s + seconds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_frame_centres_average_two_encoder_frames() {
        for j in 0..10 {
            let avg = (FrameTiming::ENCODER.center(2 * j) + FrameTiming::ENCODER.center(2 * j + 1)) / 2.0;
            assert!((FrameTiming::POOLED.center(j) - avg).abs() < 1e-12);
        }
        assert!((FrameTiming::ENCODER.center(3) - 0.06).abs() < 1e-12);
    }

    #[test]
    fn frame_at_inverts_center() {
        for t in [FrameTiming::ENCODER, FrameTiming::POOLED, FrameTiming::MEL] {
            for i in 0..50 {
                assert_eq!(t.frame_at(t.center(i)), i);
            }
        }
        assert_eq!(FrameTiming::POOLED.frame_at(0.0), 0);
        assert_eq!(FrameTiming::POOLED.frame_at(0.031), 1);
    }
}
