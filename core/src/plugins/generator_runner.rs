//! [`GeneratorRunner`]: the interventions callbacks over a model that generates text, Whisper or
//! Qwen2-Audio, at the layer the store was extracted from. Audio embeddings are a clip's rows
//! at that layer (valid frames, as `extract` stores them); generation splices given (possibly
//! edited) rows in at that layer, runs the rest of the model ([`AudioModel::resume_from`]) and
//! decodes greedily, or teacher-forces given tokens. Whisper transcribes (no text prompt);
//! Qwen2-Audio answers the Instruct prompt.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Result};
use audiosae_plugin_api::{AudioEmbeddings, FrameTiming as ApiTiming, Generation, GenerationRequest};
use tch::{Device, Kind, Tensor};

use super::host::ModelRunner;
use crate::models::instruct::{InstructChat, Turn};
use crate::models::splice::GeneratorInput;
use crate::models::whisper_generation::Task;
use crate::models::{load_clip, AudioModel, LayerSpec};

/// The user prompt of Qwen2-Audio when a request has none.
pub const DEFAULT_PROMPT: &str = "Transcribe the audio.";

/// One clip's clean run up to the layer: what every condition of an intervention starts from.
struct CleanClip {
    clip: PathBuf,
    feat_len: usize,
    /// The layer's output over the whole 30 s window, `[1, P, d]`.
    full: Tensor,
    rows: usize,
}

pub struct GeneratorRunner {
    model: AudioModel,
    layer: LayerSpec,
    /// Qwen2-Audio's chat template and ids; None for Whisper.
    chat: Option<InstructChat>,
    clean: RefCell<Option<CleanClip>>,
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?)
}

impl GeneratorRunner {
    /// Loads `spec` with what generation needs; `layer` is the store's layer (the model's default
    /// layer when None).
    pub fn load(spec: &str, layer: Option<LayerSpec>, device: Device, kind: Kind) -> Result<Self> {
        let model = AudioModel::load(spec, device, kind, true)?;
        let layer = layer.unwrap_or(model.default_layer());
        model.timing(layer)?;
        let chat = match model.qwen2_audio() {
            Ok(_) => Some(InstructChat::new(&model)?),
            Err(_) => None,
        };
        Ok(GeneratorRunner { model, layer, chat, clean: RefCell::new(None) })
    }

    /// Runs `clip` up to the layer, once per clip.
    fn with_clean<T>(&self, clip: &Path, f: impl FnOnce(&CleanClip) -> Result<T>) -> Result<T> {
        let mut slot = self.clean.borrow_mut();
        if slot.as_ref().is_none_or(|c| c.clip != clip) {
            let samples = load_clip(clip)?;
            ensure!(
                samples.len() <= crate::mel::N_SAMPLES,
                "{}: {:.1} s long; an intervention edits one 30 s window: cut the clip (e.g. `sox IN OUT trim 0 30`)",
                clip.display(),
                samples.len() as f64 / crate::mel::SAMPLE_RATE as f64
            );
            let batch = self.model.mel.compute_batch(&[&samples]);
            let feat_len = batch.feat_lens[0];
            let full = self.model.layer_output(&batch.features, &batch.feat_lens, self.layer)?;
            let rows = self.model.valid_frames(self.layer, feat_len)?;
            *slot = Some(CleanClip { clip: clip.to_path_buf(), feat_len, full, rows });
        }
        f(slot.as_ref().expect("just filled"))
    }

    /// Greedy tokens (or `forced` ones) and their per-step logits `[steps, vocab]`.
    fn decode(&self, input: GeneratorInput, request: &GenerationRequest) -> Result<(Vec<i64>, Tensor, usize, String)> {
        let forced = &request.forced_tokens;
        match input {
            GeneratorInput::Whisper(encoded) => {
                let (_, g) = self.model.whisper_generator()?;
                if request.prompt.is_some() {
                    bail!("Whisper takes no text prompt: its decoder transcribes; leave prompt= unset");
                }
                let prompt = g.spec.prompt(None, Task::Transcribe)?;
                let tokens = match forced.is_empty() {
                    true => g.greedy(&encoded, &prompt, request.max_new_tokens)?.remove(0),
                    false => forced.clone(),
                };
                let logits = g.forced_logits(&encoded, &prompt, std::slice::from_ref(&tokens))?.get(0);
                let logits = logits.narrow(0, 0, tokens.len() as i64);
                let text = g.decode(&tokens)?;
                Ok((tokens, logits, g.decoder.config.vocab_size as usize, text))
            }
            GeneratorInput::Qwen2Audio(mut rows) => {
                let q = self.model.qwen2_audio()?;
                let chat = self.chat.as_ref().expect("Qwen2-Audio runners have a chat template");
                let audio = rows.remove(0);
                let turn = Turn { system: None, prompt: request.prompt.as_deref().unwrap_or(DEFAULT_PROMPT) };
                let tokens = match forced.is_empty() {
                    true => chat.generate(q, &turn, &audio, request.max_new_tokens)?,
                    false => forced.clone(),
                };
                let logits = chat.forced_logits(q, &turn, &audio, &tokens)?;
                let text = chat.tokenizer.decode(&tokens)?;
                Ok((tokens, logits, q.config.text_config.vocab_size as usize, text))
            }
        }
    }
}

impl ModelRunner for GeneratorRunner {
    fn audio_embeddings(&self, clip: &Path) -> Result<AudioEmbeddings> {
        let timing = self.model.timing(self.layer)?;
        self.with_clean(clip, |c| {
            let d = c.full.size()[2] as usize;
            Ok(AudioEmbeddings {
                rows: c.rows,
                d,
                timing: ApiTiming { hop_s: timing.hop_s, offset_s: timing.offset_s },
                values: to_vec(&c.full.get(0).narrow(0, 0, c.rows as i64))?,
            })
        })
    }

    fn generate(&self, request: &GenerationRequest, embeddings: &[f32]) -> Result<Generation> {
        let clip = Path::new(&request.clip);
        let input = self.with_clean(clip, |c| {
            let width = c.full.size()[2] as usize;
            ensure!(
                request.d == width,
                "{}: embeddings of width {} but layer {} of the model is {width} wide",
                request.clip,
                request.d,
                self.layer
            );
            ensure!(
                request.rows == c.rows && embeddings.len() == request.rows * request.d,
                "{}: {} values in {} rows of {}; layer {} of this clip has {} rows",
                request.clip,
                embeddings.len(),
                request.rows,
                request.d,
                self.layer,
                c.rows
            );
            let edited = c.full.copy();
            let rows = Tensor::from_slice(embeddings).view([1, c.rows as i64, width as i64]);
            edited.narrow(1, 0, c.rows as i64).copy_(&rows.to_kind(edited.kind()).to_device(edited.device()));
            self.model.resume_from(self.layer, &edited, &[c.feat_len])
        })?;
        let (tokens, logits, vocab, text) = self.decode(input, request)?;
        let logits = if tokens.is_empty() { Vec::new() } else { to_vec(&logits)? };
        Ok(Generation { text, tokens, vocab, logits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::read_i64;

    fn fixture(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(rel)
    }

    fn runner() -> GeneratorRunner {
        GeneratorRunner::load(fixture("qwen2_audio_tiny").to_str().unwrap(), None, Device::Cpu, Kind::Float).unwrap()
    }

    fn request(e: &AudioEmbeddings, forced_tokens: Vec<i64>) -> GenerationRequest {
        GenerationRequest {
            clip: fixture("speech/61-70968-0000.flac").to_string_lossy().into_owned(),
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
    fn qwen2_audio_spliced_at_an_encoder_layer_gives_the_same_tokens_unedited() {
        let clip = fixture("speech/61-70968-0000.flac");
        let want = Vec::<i64>::try_from(read_i64(&fixture("qwen2_audio_ref/a_speech_greedy.npy")).unwrap()).unwrap();
        let dir = fixture("qwen2_audio_tiny");
        for layer in [LayerSpec::EncoderLayer(0), LayerSpec::Encoder] {
            let r = GeneratorRunner::load(dir.to_str().unwrap(), Some(layer), Device::Cpu, Kind::Float).unwrap();
            let e = r.audio_embeddings(&clip).unwrap();
            assert_eq!(e.rows, if layer == LayerSpec::Encoder { 123 } else { 246 }, "{layer}");
            assert_eq!(r.generate(&request(&e, vec![]), &e.values).unwrap().tokens, want, "{layer}");
        }
    }

    #[test]
    fn whisper_spliced_at_any_layer_transcribes_like_transcribe_unedited_and_edits_change_it() {
        let dir = fixture("whisper_tiny_gen");
        let clip = fixture("speech/61-70968-0000.flac");
        let m = AudioModel::load(dir.to_str().unwrap(), Device::Cpu, Kind::Float, true).unwrap();
        let samples = load_clip(&clip).unwrap();
        let opts = crate::transcribe::TranscribeOptions { max_new_tokens: 30, ..Default::default() };
        let want = crate::transcribe::transcribe(&m, &[&samples], &opts).unwrap().remove(0).token_ids;
        for layer in [LayerSpec::EncoderLayer(0), LayerSpec::EncoderLayer(1), LayerSpec::Encoder] {
            let r = GeneratorRunner::load(dir.to_str().unwrap(), Some(layer), Device::Cpu, Kind::Float).unwrap();
            let e = r.audio_embeddings(&clip).unwrap();
            assert_eq!((e.rows, e.d), (246, 64), "{layer}");
            let mut req = request(&e, vec![]);
            req.prompt = None;
            req.max_new_tokens = 30;
            let g = r.generate(&req, &e.values).unwrap();
            assert_eq!(g.tokens, want, "{layer}: unedited splice");
            // Zeroing every valid row changes what the model says.
            let zeroed = r.generate(&req, &vec![0.0; e.values.len()]).unwrap();
            assert_ne!(zeroed.tokens, want, "{layer}: zeroed rows");
            // Teacher forcing reproduces the greedy logits.
            let forced = r.generate(&request_forced(&req, g.tokens.clone()), &e.values).unwrap();
            assert_eq!(forced.logits, g.logits, "{layer}");
        }
    }

    fn request_forced(req: &GenerationRequest, tokens: Vec<i64>) -> GenerationRequest {
        GenerationRequest { forced_tokens: tokens, ..req.clone() }
    }

    #[test]
    fn wrong_width_and_a_text_prompt_for_whisper_are_refused() {
        let clip = fixture("speech/61-70968-0000.flac").to_string_lossy().into_owned();
        let r = runner();
        let req = GenerationRequest {
            clip: clip.clone(),
            prompt: None,
            max_new_tokens: 2,
            rows: 123,
            d: 16,
            forced_tokens: vec![],
        };
        let err = r.generate(&req, &[0.0; 123 * 16]).unwrap_err().to_string();
        assert!(err.contains("61-70968-0000.flac") && err.contains("width 16"), "{err}");
        let w = GeneratorRunner::load(fixture("whisper_tiny_gen").to_str().unwrap(), None, Device::Cpu, Kind::Float)
            .unwrap();
        let e = w.audio_embeddings(Path::new(&clip)).unwrap();
        let err = w.generate(&request(&e, vec![]), &e.values).unwrap_err().to_string();
        assert!(err.contains("no text prompt"), "{err}");
    }
}
