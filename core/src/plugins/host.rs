//! [`AnalysisHost`]: the host side of a plugin's `AnalysisContext` over an activation store,
//! SAE checkpoints, optional TextGrid labels and, for interventions, a model.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use audiosae_plugin_api::{
    AudioEmbeddings, Error, FrameTiming as ApiTiming, Generation, GenerationRequest, Host, ItemInfo, LogMelPatch,
    SaeInfo, StoreInfo,
};
use indicatif::{ProgressBar, ProgressStyle};
use tch::{Device, Kind, Tensor};

use super::labels::{CorpusLabels, TIERS};
use crate::mel::{LogMel, SAMPLE_RATE};
use crate::sae::arch::opensae;
use crate::sae::checkpoint::load_sae;
use crate::sae::{Arch, Sae};
use crate::store::StoreReader;
use crate::timing::FrameTiming;

/// Runs the model for the interventions callbacks; set [`AnalysisHost::model`] to offer them.
pub trait ModelRunner {
    /// The clip's rows at the store's layer (what an SAE of that layer reads).
    fn audio_embeddings(&self, clip: &Path) -> Result<AudioEmbeddings>;
    /// Greedy generation with `embeddings` spliced in at the store's layer, with per-step logits.
    fn generate(&self, request: &GenerationRequest, embeddings: &[f32]) -> Result<Generation>;
}

/// An SAE checkpoint with the input scale it was trained with: codes are `encode(x * scale)`,
/// reconstructions `decode(h) / scale`, so plugins see everything in the store's units.
struct LoadedSae {
    path: PathBuf,
    sae: Sae,
    scale: f64,
}

pub struct AnalysisHost {
    store: StoreReader,
    saes: Vec<LoadedSae>,
    labels: Option<CorpusLabels>,
    device: Device,
    mel: LogMel,
    /// The last clip decoded for a log-mel patch (unit cards ask for many patches per clip).
    clip_cache: RefCell<Option<(PathBuf, Vec<f32>)>>,
    progress: RefCell<Option<(String, ProgressBar)>>,
    pub model: Option<Box<dyn ModelRunner>>,
}

fn api<T>(r: Result<T>) -> Result<T, Error> {
    r.map_err(|e| Error::new(format!("{e:#}")))
}

fn api_timing(t: FrameTiming) -> ApiTiming {
    ApiTiming { hop_s: t.hop_s, offset_s: t.offset_s }
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?)
}

impl AnalysisHost {
    /// Opens the store and loads each SAE on `device`, checking that their `d_in` is the store's `d`.
    pub fn open(
        store: &Path,
        saes: &[PathBuf],
        labels: Option<CorpusLabels>,
        device: Device,
        n_mels: usize,
    ) -> Result<Self> {
        let store = StoreReader::open(store)?;
        let saes = saes
            .iter()
            .map(|path| {
                let (sae, scale) =
                    load_sae(path, device).with_context(|| format!("loading the SAE {}", path.display()))?;
                ensure!(
                    sae.cfg.d_in == store.d(),
                    "{}: SAE d_in {} but the store {} has d {}",
                    path.display(),
                    sae.cfg.d_in,
                    store.dir().display(),
                    store.d()
                );
                Ok(LoadedSae { path: path.clone(), sae, scale })
            })
            .collect::<Result<_>>()?;
        if let Some(l) = &labels {
            // Labels that match nothing would run every analysis on zero labelled frames.
            ensure!(
                store.items().iter().any(|it| l.covers(it)),
                "--labels {}: none of the {} items of the store {} has a TextGrid in that corpus (items are \
                 matched by id, then by audio file); is it the corpus the store was extracted from?",
                l.root().display(),
                store.items().len(),
                store.dir().display()
            );
        }
        let mel = LogMel::new(n_mels, Device::Cpu);
        Ok(AnalysisHost {
            store,
            saes,
            labels,
            device,
            mel,
            clip_cache: RefCell::default(),
            progress: RefCell::default(),
            model: None,
        })
    }

    pub fn labels(&self) -> Option<&CorpusLabels> {
        self.labels.as_ref()
    }

    /// The layer the store was extracted from.
    pub fn store_layer(&self) -> Result<crate::models::LayerSpec> {
        let layer = &self.store.config().layer;
        layer.parse().with_context(|| format!("{}: manifest layer {layer:?}", self.store.dir().display()))
    }

    /// Ends the current progress bar, if any.
    pub fn finish_progress(&self) {
        if let Some((_, bar)) = self.progress.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }

    fn sae(&self, i: usize) -> Result<&LoadedSae> {
        self.saes.get(i).with_context(|| format!("no SAE #{i}: {} given with --sae", self.saes.len()))
    }

    fn rows_tensor(&self, values: &[f32], width: usize, what: &str) -> Result<Tensor> {
        ensure!(values.len().is_multiple_of(width), "{what}: {} values are not rows of {width}", values.len());
        Ok(Tensor::from_slice(values).view([(values.len() / width) as i64, width as i64]).to_device(self.device))
    }

    fn item_entry(&self, item: usize) -> Result<&crate::store::ItemEntry> {
        self.store.items().get(item).with_context(|| format!("no item #{item} in {}", self.store.dir().display()))
    }

    fn clip_samples(&self, audio: &Path) -> Result<Vec<f32>> {
        let mut cache = self.clip_cache.borrow_mut();
        if let Some((p, s)) = cache.as_ref() {
            if p == audio {
                return Ok(s.clone());
            }
        }
        let samples = crate::audio::load_audio(audio)?.samples;
        *cache = Some((audio.to_path_buf(), samples.clone()));
        Ok(samples)
    }
}

impl Host for AnalysisHost {
    fn store(&self) -> Result<StoreInfo, Error> {
        let c = self.store.config();
        let label_tiers = if self.labels.is_some() { TIERS.iter().map(|t| t.to_string()).collect() } else { vec![] };
        Ok(StoreInfo {
            path: self.store.dir().display().to_string(),
            model: c.model.id.clone(),
            layer: c.layer.clone(),
            d: c.d,
            timing: api_timing(c.timing),
            n_items: self.store.items().len(),
            n_frames: self.store.rows(),
            label_tiers,
        })
    }

    fn items(&self) -> Result<Vec<ItemInfo>, Error> {
        let timing = self.store.config().timing;
        Ok(self
            .store
            .items()
            .iter()
            .map(|it| ItemInfo {
                id: it.meta.id.clone(),
                audio: it.meta.audio.display().to_string(),
                duration_s: it.meta.duration_s,
                time_offset_s: it.meta.time_offset_s,
                n_frames: it.rows(),
                first_frame: it.start,
                timing: api_timing(it.timing(timing)),
                transcript: self.labels.as_ref().and_then(|l| l.transcript(it)).map(str::to_string),
            })
            .collect())
    }

    fn frames(&self, item: usize) -> Result<Vec<f32>, Error> {
        let it = api(self.item_entry(item))?;
        let mut out = vec![0f32; it.rows() * self.store.d()];
        self.store.read_range(it.start, it.end, &mut out);
        Ok(out)
    }

    fn saes(&self) -> Result<Vec<SaeInfo>, Error> {
        Ok(self
            .saes
            .iter()
            .map(|s| SaeInfo {
                path: s.path.display().to_string(),
                arch: s.sae.cfg.arch.to_string(),
                d_in: s.sae.cfg.d_in,
                d_sae: s.sae.cfg.d_sae,
            })
            .collect())
    }

    fn encode(&self, sae: usize, rows: &[f32]) -> Result<Vec<f32>, Error> {
        api((|| {
            let s = self.sae(sae)?;
            let x = self.rows_tensor(rows, s.sae.cfg.d_in, "encode")?;
            to_vec(&s.sae.encode(&(x * s.scale)))
        })())
    }

    fn decode(&self, sae: usize, codes: &[f32]) -> Result<Vec<f32>, Error> {
        api((|| {
            let s = self.sae(sae)?;
            let h = self.rows_tensor(codes, s.sae.cfg.d_sae, "decode")?;
            to_vec(&(s.sae.decode(&h) / s.scale))
        })())
    }

    fn decoder_atoms(&self, sae: usize) -> Result<Vec<f32>, Error> {
        api((|| {
            let s = self.sae(sae)?;
            let dec = if s.sae.cfg.arch == Arch::OpenSae {
                opensae::normalized_dec(&s.sae.dec)
            } else {
                s.sae.dec.shallow_clone()
            };
            to_vec(&(dec / s.scale))
        })())
    }

    fn labels(&self, item: usize, tier: &str) -> Result<Option<Vec<String>>, Error> {
        let Some(labels) = &self.labels else { return Ok(None) };
        let it = api(self.item_entry(item))?;
        api(labels.frame_labels(it, it.timing(self.store.config().timing), tier))
    }

    fn log_mel(&self, item: usize, t0_s: f64, t1_s: f64) -> Result<LogMelPatch, Error> {
        api((|| {
            let it = self.item_entry(item)?;
            let samples = self.clip_samples(&it.meta.audio)?;
            let sr = SAMPLE_RATE as f64;
            let a = ((t0_s.max(0.0) * sr) as usize).min(samples.len());
            let b = ((t1_s * sr).max(0.0) as usize).clamp(a, samples.len()).min(a + crate::mel::N_SAMPLES);
            ensure!(b > a, "{}: window {t0_s:.3}..{t1_s:.3} s is outside the audio", it.meta.audio.display());
            let (mel, len) = self.mel.compute(&samples[a..b]);
            let len = len.max(1);
            Ok(LogMelPatch {
                n_mels: self.mel.n_mels(),
                n_frames: len,
                t0_s: a as f64 / sr,
                hop_s: crate::timing::MEL_HOP_S,
                values: to_vec(&mel.narrow(1, 0, len as i64).contiguous())?,
            })
        })())
    }

    fn audio_embeddings(&self, clip: &str) -> Result<AudioEmbeddings, Error> {
        match &self.model {
            Some(m) => api(m.audio_embeddings(Path::new(clip))),
            None => Err(Error::new(
                "this run has no model: give audiosae analyze --model WHISPER_OR_QWEN2_AUDIO_CHECKPOINT",
            )),
        }
    }

    fn generate(&self, request: &GenerationRequest, embeddings: &[f32]) -> Result<Generation, Error> {
        match &self.model {
            Some(m) => api(m.generate(request, embeddings)),
            None => Err(Error::new(
                "this run has no model: give audiosae analyze --model WHISPER_OR_QWEN2_AUDIO_CHECKPOINT",
            )),
        }
    }

    fn progress(&self, stage: &str, done: u64, total: u64) {
        let mut slot = self.progress.borrow_mut();
        if slot.as_ref().is_none_or(|(s, _)| s != stage) {
            if let Some((_, old)) = slot.take() {
                old.finish_and_clear();
            }
            let bar = ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta}")
                    .expect("valid template"),
            );
            bar.set_message(stage.to_string());
            *slot = Some((stage.to_string(), bar));
        }
        if let Some((_, bar)) = slot.as_ref() {
            bar.set_length(total);
            bar.set_position(done);
        }
    }
}
