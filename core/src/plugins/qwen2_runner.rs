//! [`Qwen2Runner`]: the interventions callbacks over a Qwen2-Audio model. Audio embeddings are the
//! projector rows of a clip (valid frames); generation puts given (possibly edited) rows in the
//! Instruct prompt's audio slot and decodes greedily, or teacher-forces given tokens.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use audiosae_plugin_api::{AudioEmbeddings, FrameTiming as ApiTiming, Generation, GenerationRequest};
use tch::{Device, Kind, Tensor};

use super::host::ModelRunner;
use crate::models::instruct::{InstructChat, Turn};
use crate::models::{load_clip, AudioModel, LayerSpec};

/// The user prompt when a request has none.
pub const DEFAULT_PROMPT: &str = "Transcribe the audio.";

pub struct Qwen2Runner {
    model: AudioModel,
    chat: InstructChat,
}

impl Qwen2Runner {
    /// Loads `spec` with its language model; Whisper checkpoints are refused (they cannot generate).
    pub fn load(spec: &str, device: Device, kind: Kind) -> Result<Self> {
        let model = AudioModel::load(spec, device, kind, true)?;
        model.qwen2_audio().context(
            "--model must be a Qwen2-Audio checkpoint; for a Whisper store run without --model \
             (the interventions plugin then reports the change of the frames and SAE codes)",
        )?;
        let chat = InstructChat::new(&model)?;
        Ok(Qwen2Runner { model, chat })
    }
}

impl ModelRunner for Qwen2Runner {
    fn audio_embeddings(&self, clip: &Path) -> Result<AudioEmbeddings> {
        let q = self.model.qwen2_audio()?;
        let batch = self.model.mel.compute_batch(&[&load_clip(clip)?]);
        let rows = q.audio_embeddings(&batch.features, &batch.feat_lens)?.remove(0);
        let (n, d) = rows.size2()?;
        let timing = self.model.timing(LayerSpec::Projector)?;
        Ok(AudioEmbeddings {
            rows: n as usize,
            d: d as usize,
            timing: ApiTiming { hop_s: timing.hop_s, offset_s: timing.offset_s },
            values: Vec::<f32>::try_from(rows.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?,
        })
    }

    fn generate(&self, request: &GenerationRequest, embeddings: &[f32]) -> Result<Generation> {
        let q = self.model.qwen2_audio()?;
        let width = q.config.text_config.hidden_size as usize;
        ensure!(
            request.d == width,
            "{}: embeddings of width {} but the language model takes {width}",
            request.clip,
            request.d
        );
        ensure!(
            embeddings.len() == request.rows * request.d,
            "{}: {} embedding values are not {} rows of {}",
            request.clip,
            embeddings.len(),
            request.rows,
            request.d
        );
        let audio =
            Tensor::from_slice(embeddings).view([request.rows as i64, request.d as i64]).to_device(self.model.device);
        let turn = Turn { system: None, prompt: request.prompt.as_deref().unwrap_or(DEFAULT_PROMPT) };
        let tokens = if request.forced_tokens.is_empty() {
            self.chat.generate(q, &turn, &audio, request.max_new_tokens)?
        } else {
            request.forced_tokens.clone()
        };
        let vocab = q.config.text_config.vocab_size as usize;
        let logits = if tokens.is_empty() {
            Vec::new()
        } else {
            let l = self.chat.forced_logits(q, &turn, &audio, &tokens)?;
            Vec::<f32>::try_from(l.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?
        };
        Ok(Generation { text: self.chat.tokenizer.decode(&tokens)?, tokens, vocab, logits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::read_i64;

    fn fixture(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(rel)
    }

    fn runner() -> Qwen2Runner {
        Qwen2Runner::load(fixture("qwen2_audio_tiny").to_str().unwrap(), Device::Cpu, Kind::Float).unwrap()
    }

    fn request(e: &AudioEmbeddings, forced_tokens: Vec<i64>) -> GenerationRequest {
        GenerationRequest {
            clip: "clip".into(),
            prompt: Some("Transcribe the audio.".into()),
            max_new_tokens: 24,
            rows: e.rows,
            d: e.d,
            forced_tokens,
        }
    }

    #[test]
    fn unedited_embeddings_give_the_transformers_greedy_tokens() {
        let r = runner();
        let e = r.audio_embeddings(&fixture("speech/61-70968-0000.flac")).unwrap();
        assert_eq!((e.rows, e.d), (123, 32));
        let g = r.generate(&request(&e, vec![]), &e.values).unwrap();
        let want = Vec::<i64>::try_from(read_i64(&fixture("qwen2_audio_ref/a_speech_greedy.npy")).unwrap()).unwrap();
        assert_eq!(g.tokens, want);
        assert_eq!(g.logits.len(), g.tokens.len() * g.vocab);
        // Greedy: each token is the argmax of its step's logits.
        for (step, row) in g.logits.chunks_exact(g.vocab).enumerate() {
            let argmax = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as i64;
            assert_eq!(argmax, g.tokens[step], "step {step}");
        }
        // Teacher forcing on the greedy tokens gives the same logits.
        let forced = r.generate(&request(&e, g.tokens.clone()), &e.values).unwrap();
        assert_eq!((forced.tokens, forced.logits), (g.tokens, g.logits));
    }

    #[test]
    fn wrong_width_is_refused() {
        let r = runner();
        let req = GenerationRequest {
            clip: "c.wav".into(),
            prompt: None,
            max_new_tokens: 2,
            rows: 2,
            d: 16,
            forced_tokens: vec![],
        };
        let err = r.generate(&req, &[0.0; 32]).unwrap_err().to_string();
        assert!(err.contains("c.wav") && err.contains("width 16"), "{err}");
    }

    #[test]
    fn whisper_is_refused_with_a_clear_error() {
        let err = Qwen2Runner::load(fixture("whisper_tiny_random").to_str().unwrap(), Device::Cpu, Kind::Float)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("Whisper"), "{err:#}");
    }
}
