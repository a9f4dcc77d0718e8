//! Splicing: replace the output of any layer a model can extract and run the rest of the model
//! from there, up to what the generator reads (Whisper's decoder: the encoder output; Qwen2-Audio's
//! language model: the projector rows).
//!
//! [`AudioModel::layer_output`] gives a layer's output over the whole 30 s window, exactly as
//! extraction computes it (its first valid rows are what `extract` stores); the caller edits rows
//! and hands the tensor to [`AudioModel::resume_from`]. An unedited tensor gives back the clean
//! generator input exactly.

use anyhow::{bail, ensure, Result};
use tch::Tensor;

use super::qwen2_audio::audio_token_count;
use super::{Arch, AudioModel, LayerSpec};

/// What the generator reads, for a batch of 30 s windows.
pub enum GeneratorInput {
    /// Whisper: encoder output after its final LayerNorm, `[B, 1500, d]`.
    Whisper(Tensor),
    /// Qwen2-Audio: each clip's projector rows (valid rows only), `[n_b, d_text]`.
    Qwen2Audio(Vec<Tensor>),
}

impl AudioModel {
    /// The output of `layer` over whole windows, `[B, P, d]`, from log-mel `[B, n_mels, 3000]`
    /// with `feat_lens` valid frames each (exact mode).
    pub fn layer_output(&self, mel: &Tensor, feat_lens: &[usize], layer: LayerSpec) -> Result<Tensor> {
        self.timing(layer)?;
        tch::no_grad(|| match (&self.arch, layer) {
            (Arch::Whisper { encoder, .. }, LayerSpec::EncoderLayer(n)) => {
                Ok(encoder.run_layers(encoder.embed(mel)?, None, n + 1, &[n]).1.remove(0))
            }
            (Arch::Whisper { encoder, .. }, LayerSpec::Encoder) => encoder.forward(mel),
            (Arch::Qwen2Audio(q), LayerSpec::EncoderLayer(n)) => q.encoder_layer(mel, feat_lens, n),
            (Arch::Qwen2Audio(q), LayerSpec::Encoder) => Ok(q.encode_audio(mel, feat_lens)?.last_hidden_state),
            (Arch::Qwen2Audio(q), LayerSpec::Projector) => {
                Ok(q.project(&q.encode_audio(mel, feat_lens)?.last_hidden_state))
            }
            (Arch::Whisper { .. }, LayerSpec::Projector) => bail!("Whisper has no projector layer"),
        })
    }

    /// Runs the model from `h`, the (possibly edited) output of `layer` as
    /// [`Self::layer_output`] gives it, to the generator's input.
    pub fn resume_from(&self, layer: LayerSpec, h: &Tensor, feat_lens: &[usize]) -> Result<GeneratorInput> {
        self.timing(layer)?;
        ensure!(
            h.size().first() == Some(&(feat_lens.len() as i64)),
            "resume_from: {} windows of activations for {} lengths",
            h.size().first().unwrap_or(&0),
            feat_lens.len()
        );
        let kind = match &self.arch {
            Arch::Whisper { encoder, .. } => encoder.kind(),
            Arch::Qwen2Audio(q) => q.audio_tower.kind(),
        };
        let h = &h.to_device(self.device).to_kind(kind);
        tch::no_grad(|| match (&self.arch, layer) {
            (Arch::Whisper { encoder, .. }, LayerSpec::EncoderLayer(n)) => {
                let h = encoder.run_layers_from(h.shallow_clone(), None, n + 1);
                Ok(GeneratorInput::Whisper(encoder.layer_norm.forward(&h)))
            }
            (Arch::Whisper { .. }, LayerSpec::Encoder) => Ok(GeneratorInput::Whisper(h.shallow_clone())),
            (Arch::Whisper { .. }, LayerSpec::Projector) => bail!("Whisper has no projector layer"),
            (Arch::Qwen2Audio(q), _) => {
                let projected = match layer {
                    LayerSpec::EncoderLayer(n) => q.project(&q.resume_tower(h, feat_lens, n + 1)?),
                    LayerSpec::Encoder => q.project(h),
                    LayerSpec::Projector => h.shallow_clone(),
                };
                let rows = feat_lens.iter().enumerate();
                Ok(GeneratorInput::Qwen2Audio(
                    rows.map(|(i, &l)| projected.get(i as i64).narrow(0, 0, audio_token_count(l) as i64)).collect(),
                ))
            }
        })
    }
}
