//! Audio models behind one interface: load a checkpoint, get frame-level features of a layer
//! with their [`FrameTiming`].

pub mod instruct;
pub mod layers;
pub mod qwen2;
pub mod qwen2_audio;
pub mod splice;
pub mod whisper;
pub mod whisper_decoder;
pub mod whisper_generation;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::ctranslate2::{whisper_decoder_tensors, whisper_encoder_tensors, Ct2Model};
use crate::mel::{LogMel, MelBatch, MelConfig};
use crate::timing::FrameTiming;
use crate::weights::{self, Weights};
use qwen2_audio::Qwen2Audio;
pub use whisper::AttentionImpl;
use whisper::{conv_out_len, WhisperEncoder};
use whisper_decoder::{DecoderConfig, WhisperDecoder};
use whisper_generation::{GenerationSpec, WhisperGenerator};

/// Which representation to read out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerSpec {
    /// Qwen2-Audio `multi_modal_projector` output (40 ms frames).
    Projector,
    /// Encoder output after its final LayerNorm (Qwen2-Audio: after the avg-pool, 40 ms;
    /// Whisper: 20 ms).
    Encoder,
    /// Raw output of encoder layer N, before any pool or final norm (20 ms frames).
    EncoderLayer(usize),
}

impl FromStr for LayerSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "projector" => Ok(LayerSpec::Projector),
            "encoder" => Ok(LayerSpec::Encoder),
            _ => match s.strip_prefix("encoder.").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(LayerSpec::EncoderLayer(n)),
                _ => bail!("unknown layer {s:?}: use projector, encoder or encoder.N"),
            },
        }
    }
}

impl fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSpec::Projector => write!(f, "projector"),
            LayerSpec::Encoder => write!(f, "encoder"),
            LayerSpec::EncoderLayer(n) => write!(f, "encoder.{n}"),
        }
    }
}

pub enum Arch {
    /// The encoder, and the decoder when loaded for generation.
    Whisper {
        encoder: WhisperEncoder,
        generator: Option<Box<WhisperGenerator>>,
    },
    Qwen2Audio(Box<Qwen2Audio>),
}

/// A loaded audio model with its log-mel front end.
pub struct AudioModel {
    pub dir: PathBuf,
    /// What the user passed (`--model`).
    pub id: String,
    pub arch: Arch,
    pub mel: LogMel,
    pub device: Device,
}

/// Frames of one clip at one layer.
pub struct LayerFeatures {
    /// `[frames, dim]`, f32, CPU, valid frames only.
    pub frames: Tensor,
    pub timing: FrameTiming,
}

/// Checkpoint format found in a model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Qwen2Audio,
    WhisperHf,
    WhisperCt2,
}

impl Format {
    /// The layer extracted when none is named, known before loading any weights; the same as
    /// [`AudioModel::default_layer`] of the loaded model.
    pub fn default_layer(self) -> LayerSpec {
        match self {
            Format::Qwen2Audio => LayerSpec::Projector,
            Format::WhisperHf | Format::WhisperCt2 => LayerSpec::Encoder,
        }
    }
}

pub fn detect_format(dir: &Path) -> Result<Format> {
    let cfg_path = dir.join("config.json");
    // A config.json that exists but cannot be read or parsed is reported as such, with serde's
    // line and column, not as a missing model.
    let model_type = match std::fs::read_to_string(&cfg_path) {
        Ok(text) => {
            let value: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", cfg_path.display()))?;
            value.get("model_type").and_then(|m| m.as_str()).map(str::to_string)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", cfg_path.display())),
    };
    match model_type.as_deref() {
        Some("qwen2_audio") => Ok(Format::Qwen2Audio),
        Some("whisper") => Ok(Format::WhisperHf),
        _ if dir.join("model.bin").exists() => Ok(Format::WhisperCt2),
        Some(other) => bail!("{}: model_type {other:?} is not supported (qwen2_audio, whisper)", cfg_path.display()),
        None if cfg_path.exists() => bail!(
            "{}: no \"model_type\" field (expected qwen2_audio or whisper), and no CTranslate2 model.bin beside it",
            cfg_path.display()
        ),
        None => bail!(
            "{}: no config.json with a model_type and no CTranslate2 model.bin: not a model directory",
            dir.display()
        ),
    }
}

impl AudioModel {
    /// Loads a model from a directory or a Hugging Face repo id in the local cache.
    /// `with_lm` also loads what generation needs: Qwen2-Audio's language model, Whisper's
    /// decoder with its special tokens.
    pub fn load(spec: &str, device: Device, kind: Kind, with_lm: bool) -> Result<Self> {
        let dir = crate::hub::resolve_model(spec)?;
        let format = detect_format(&dir)?;
        let arch = match format {
            Format::Qwen2Audio => Arch::Qwen2Audio(Box::new(Qwen2Audio::load(&dir, device, kind, with_lm)?)),
            Format::WhisperHf => {
                let cfg = whisper::read_config(&dir)?;
                let w = Weights::from_safetensors_dir(&dir, |k| whisper::canonical_name(k, with_lm), device, kind)?;
                let encoder = WhisperEncoder::load(&w, "encoder", cfg)?;
                let generator = match with_lm {
                    true => {
                        let cfg: DecoderConfig = read_json(&dir.join("config.json"))?;
                        let spec = GenerationSpec::from_hf(&dir, cfg.vocab_size)?;
                        let decoder = WhisperDecoder::load(&w, cfg)?;
                        let tokenizer = WhisperGenerator::read_tokenizer(&dir)?;
                        Some(Box::new(WhisperGenerator::new(decoder, spec, tokenizer, dir.join("tokenizer.json"))))
                    }
                    false => None,
                };
                Arch::Whisper { encoder, generator }
            }
            Format::WhisperCt2 => {
                let path = dir.join("model.bin");
                let ct2 = Ct2Model::open(&path)?;
                let (mut tensors, heads) = whisper_encoder_tensors(&ct2)?;
                let decoder_parts = match with_lm {
                    true => {
                        let (decoder, heads, scaled) = whisper_decoder_tensors(&ct2)?;
                        tensors.extend(decoder);
                        Some((heads, scaled))
                    }
                    false => None,
                };
                let tensors = tensors.into_iter().map(|(k, t)| (k, weights::convert(t, device, kind))).collect();
                let w = Weights::new(tensors, path, device, kind);
                let encoder = WhisperEncoder::load(&w, "encoder", whisper::config_from_tensors(&w, heads)?)?;
                let generator = match decoder_parts {
                    Some((heads, scaled)) => {
                        let cfg = DecoderConfig::from_tensors(&w, heads, scaled)?;
                        let tokenizer = WhisperGenerator::read_tokenizer(&dir)?.with_context(|| {
                            format!(
                                "{}: no tokenizer.json beside model.bin; Whisper generation needs it",
                                dir.display()
                            )
                        })?;
                        let spec = GenerationSpec::from_ct2(&dir, &tokenizer, cfg.vocab_size)?;
                        let decoder = WhisperDecoder::load(&w, cfg)?;
                        Some(Box::new(WhisperGenerator::new(
                            decoder,
                            spec,
                            Some(tokenizer),
                            dir.join("tokenizer.json"),
                        )))
                    }
                    None => None,
                };
                Arch::Whisper { encoder, generator }
            }
        };
        let n_mels = match &arch {
            Arch::Whisper { encoder: e, .. } => e.config.num_mel_bins,
            Arch::Qwen2Audio(q) => q.config.audio_config.num_mel_bins,
        } as usize;
        let pre = dir.join("preprocessor_config.json");
        if pre.exists() {
            let cfg = MelConfig::from_file(&pre)?;
            if cfg.feature_size != n_mels {
                bail!("{}: feature_size {} but the encoder takes {n_mels} mel bins", pre.display(), cfg.feature_size);
            }
        }
        Ok(AudioModel { dir, id: spec.to_string(), arch, mel: LogMel::new(n_mels, device), device })
    }

    /// Chooses the encoder's attention implementation (default: fused SDPA).
    pub fn set_attention(&mut self, imp: AttentionImpl) {
        match &mut self.arch {
            Arch::Whisper { encoder, generator } => {
                encoder.attention = imp;
                if let Some(g) = generator {
                    g.decoder.attention = imp;
                }
            }
            Arch::Qwen2Audio(q) => q.audio_tower.attention = imp,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.arch {
            Arch::Whisper { .. } => "whisper",
            Arch::Qwen2Audio(_) => "qwen2_audio",
        }
    }

    pub fn default_layer(&self) -> LayerSpec {
        match self.arch {
            Arch::Whisper { .. } => LayerSpec::Encoder,
            Arch::Qwen2Audio(_) => LayerSpec::Projector,
        }
    }

    pub fn n_encoder_layers(&self) -> usize {
        match &self.arch {
            Arch::Whisper { encoder: e, .. } => e.n_layers(),
            Arch::Qwen2Audio(q) => q.audio_tower.n_layers(),
        }
    }

    /// Frame timing of `layer`'s output; errors for layers this model does not have.
    pub fn timing(&self, layer: LayerSpec) -> Result<FrameTiming> {
        match (&self.arch, layer) {
            (Arch::Whisper { .. }, LayerSpec::Projector) => {
                bail!("Whisper has no projector layer: use encoder or encoder.N")
            }
            (_, LayerSpec::EncoderLayer(n)) if n >= self.n_encoder_layers() => {
                bail!(
                    "layer encoder.{n} does not exist: the encoder has {} layers (0..{})",
                    self.n_encoder_layers(),
                    self.n_encoder_layers() - 1
                )
            }
            (Arch::Qwen2Audio(_), LayerSpec::Projector | LayerSpec::Encoder) => Ok(FrameTiming::POOLED),
            _ => Ok(FrameTiming::ENCODER),
        }
    }

    /// Valid rows of `layer`'s output for a window with `feat_len` valid mel frames (what
    /// extraction keeps): 20 ms frames before Qwen2-Audio's pool, 40 ms after it.
    pub fn valid_frames(&self, layer: LayerSpec, feat_len: usize) -> Result<usize> {
        Ok(match (&self.arch, layer) {
            (Arch::Qwen2Audio(_), LayerSpec::Projector | LayerSpec::Encoder) => {
                qwen2_audio::audio_token_count(feat_len)
            }
            _ => {
                self.timing(layer)?;
                conv_out_len(feat_len)
            }
        })
    }

    /// Width of `layer`'s output.
    pub fn dim(&self, layer: LayerSpec) -> Result<usize> {
        self.timing(layer)?;
        Ok(match (&self.arch, layer) {
            (Arch::Qwen2Audio(q), LayerSpec::Projector) => q.config.text_config.hidden_size,
            (Arch::Qwen2Audio(q), _) => q.config.audio_config.d_model,
            (Arch::Whisper { encoder: e, .. }, _) => e.config.d_model,
        } as usize)
    }

    /// Features of one 16 kHz mono clip (its first 30 s) at `layer`, exact mode.
    /// A clip longer than 30 s runs as consecutive 30 s windows whose frames are concatenated
    /// (as `extract` stores it): each window is exactly 1500 (20 ms) or 750 (40 ms) frames, so the
    /// layer's timing holds across the whole clip.
    pub fn features(&self, samples: &[f32], layer: LayerSpec) -> Result<LayerFeatures> {
        const WINDOWS_PER_PASS: usize = 8;
        if samples.len() <= crate::mel::N_SAMPLES {
            return Ok(self.features_batch(&[samples], layer)?.remove(0));
        }
        let windows = crate::mel::windows(samples);
        let mut parts = Vec::with_capacity(windows.len());
        for pass in windows.chunks(WINDOWS_PER_PASS) {
            parts.extend(self.features_batch(pass, layer)?);
        }
        let timing = parts[0].timing;
        let frames = Tensor::cat(&parts.iter().map(|p| &p.frames).collect::<Vec<_>>(), 0);
        Ok(LayerFeatures { frames, timing })
    }

    /// Features of a batch of clips at one layer, exact mode; each keeps only its valid frames.
    pub fn features_batch(&self, clips: &[&[f32]], layer: LayerSpec) -> Result<Vec<LayerFeatures>> {
        Ok(self.extract(clips, &[layer], Trim::Exact)?.remove(0))
    }

    /// Whether [`Trim::Fast`] gives the same frames as exact mode for this model: true for
    /// Qwen2-Audio (its key-padding mask hides padded frames), false for Whisper (which attends
    /// to the 30 s padding, so trimming changes its outputs).
    pub fn fast_is_exact(&self) -> bool {
        matches!(self.arch, Arch::Qwen2Audio(_))
    }

    /// Features of a batch of clips at several layers in one encoder pass: `[layer][clip]`.
    pub fn extract(&self, clips: &[&[f32]], layers: &[LayerSpec], trim: Trim) -> Result<Vec<Vec<LayerFeatures>>> {
        let MelBatch { features, feat_lens } = self.mel.compute_batch(clips);
        self.extract_from_mel(&features, &feat_lens, layers, trim)
    }

    /// Like [`Self::extract`] from precomputed log-mel `[B, n_mels, 3000]`.
    pub fn extract_from_mel(
        &self,
        features: &Tensor,
        feat_lens: &[usize],
        layers: &[LayerSpec],
        trim: Trim,
    ) -> Result<Vec<Vec<LayerFeatures>>> {
        let timings = layers.iter().map(|&l| self.timing(l)).collect::<Result<Vec<_>>>()?;
        let frames = match trim {
            Trim::Exact => features.size()[2],
            Trim::Fast => trimmed_mel_frames(feat_lens, features.size()[2] as usize) as i64,
        };
        let features = features.narrow(2, 0, frames);
        let keep: Vec<usize> =
            layers.iter().filter_map(|l| if let LayerSpec::EncoderLayer(n) = l { Some(*n) } else { None }).collect();
        let needs_final = layers.iter().any(|l| !matches!(l, LayerSpec::EncoderLayer(_)));
        let outputs: Vec<Tensor> = tch::no_grad(|| -> Result<_> {
            let (final_out, kept) = match &self.arch {
                Arch::Whisper { encoder: e, .. } => {
                    let h = e.embed(&features)?;
                    let n = if needs_final { e.n_layers() } else { keep.iter().max().map_or(0, |m| m + 1) };
                    let (h, kept) = e.run_layers(h, None, n, &keep);
                    (needs_final.then(|| e.layer_norm.forward(&h)), kept)
                }
                Arch::Qwen2Audio(q) => q.run_tower(&features, feat_lens, &keep, needs_final)?,
            };
            let mut kept = kept.into_iter();
            layers
                .iter()
                .map(|l| {
                    Ok(match (l, &self.arch) {
                        (LayerSpec::EncoderLayer(_), _) => kept.next().expect("one output per kept layer"),
                        (LayerSpec::Encoder, _) => final_out.as_ref().expect("final output computed").shallow_clone(),
                        (LayerSpec::Projector, Arch::Qwen2Audio(q)) => {
                            q.project(final_out.as_ref().expect("final output computed"))
                        }
                        (LayerSpec::Projector, Arch::Whisper { .. }) => bail!("Whisper has no projector layer"),
                    })
                })
                .collect()
        })?;
        let valid =
            |layer: LayerSpec| feat_lens.iter().map(|&l| self.valid_frames(layer, l)).collect::<Result<Vec<_>>>();
        let valid = layers.iter().map(|&l| valid(l)).collect::<Result<Vec<_>>>()?;
        let outputs: Vec<(Tensor, Vec<usize>)> = outputs.into_iter().zip(valid).collect();
        Ok(outputs
            .into_iter()
            .zip(timings)
            .map(|((out, valid), timing)| {
                let out = out.to_kind(Kind::Float).to_device(Device::Cpu);
                valid
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| LayerFeatures {
                        frames: out.get(i as i64).narrow(0, 0, n as i64).contiguous(),
                        timing,
                    })
                    .collect()
            })
            .collect())
    }

    pub fn qwen2_audio(&self) -> Result<&Qwen2Audio> {
        match &self.arch {
            Arch::Qwen2Audio(q) => Ok(q),
            Arch::Whisper { .. } => {
                bail!("{}: a Whisper encoder cannot generate text; pass a Qwen2-Audio checkpoint", self.id)
            }
        }
    }
    /// Whisper's encoder and generator; an error for other models or when the model was loaded
    /// without its decoder.
    pub fn whisper_generator(&self) -> Result<(&WhisperEncoder, &WhisperGenerator)> {
        match &self.arch {
            Arch::Whisper { encoder, generator: Some(g) } => Ok((encoder, g)),
            Arch::Whisper { generator: None, .. } => {
                bail!("{}: the Whisper decoder was not loaded (load with with_lm = true)", self.id)
            }
            Arch::Qwen2Audio(_) => bail!("{}: not a Whisper checkpoint", self.id),
        }
    }
}

/// How much of the 30 s input window the encoder runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    /// The whole 30 s window, exactly as the reference implementations run.
    Exact,
    /// Only the mel frames the valid outputs can see (see [`trimmed_mel_frames`]).
    Fast,
}

/// Mel frames the encoder needs so that its first `ceil(len/2)` outputs see the same inputs as
/// in the full window: conv1 (k3, p1) then conv2 (k3, s2, p1) give output `j` a receptive field
/// of mel frames `2j-2 ..= 2j+2`, so the last valid output `a-1` needs frames up to `2a`; the
/// cut must also be even for the stride. Result: `2a + 2`, capped at the window.
pub fn trimmed_mel_frames(feat_lens: &[usize], window: usize) -> usize {
    let a = feat_lens.iter().map(|&l| conv_out_len(l)).max().unwrap_or(0);
    (2 * a + 2).min(window)
}

/// Reads a JSON file into `T`, naming the file in errors.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: unexpected content", path.display()))
}

/// Loads the audio file and fails with its path in the message.
pub fn load_clip(path: &Path) -> Result<Vec<f32>> {
    Ok(crate::audio::load_audio(path)?.samples)
}
