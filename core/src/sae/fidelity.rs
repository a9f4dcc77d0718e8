//! Downstream fidelity: what the model says when an SAE's reconstruction replaces the layer it
//! was trained on (SAELens reports the same idea as "CE loss recovered").
//!
//! For each held-out item (whole clips of at most 30 s), the layer's clean output `x` is
//! recomputed from the audio, and four versions of it are run through the rest of the model
//! ([`AudioModel::resume_from`]) with the item's target transcript teacher-forced:
//! - clean: `x` itself;
//! - SAE: `x̂ = D(E(x))` on the valid rows;
//! - zero ablation: the valid rows set to 0;
//! - mean ablation: the valid rows set to the mean frame of the evaluated items.
//!
//! Cross-entropies are token-weighted means over every target token, end token included.
//! `ce_loss_recovered = (CE_abl − CE_sae) / (CE_abl − CE_clean)`: 1 when the splice is as good as
//! the clean layer, 0 when it is as bad as the ablation (reported against both ablations; the
//! zero ablation is SAELens's reference point). `kl` is the mean over target tokens of
//! KL(clean ‖ SAE). For Whisper, the greedy transcriptions of the clean and SAE runs are also
//! compared (WER of the SAE run against the clean run, and of both against the reference); those
//! greedy runs stop at twice the reference's length plus 16 tokens, so that a repetition loop
//! costs a bounded WER.
//!
//! The target is the item's reference transcript when the corpus gives one, else the clean
//! greedy transcription (`target` in the output says which).

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use audiosae_plugin_api::error_rate::{edit_distance, normalise};

use super::arch::Sae;
use super::store_source::SplitStore;
use crate::models::instruct::{InstructChat, Turn};
use crate::models::splice::GeneratorInput;
use crate::models::whisper_generation::Task;
use crate::models::{load_clip, AudioModel, LayerSpec};
use crate::store::ItemEntry;

/// The Qwen2-Audio user prompt under which transcripts are teacher-forced.
pub const QWEN2_AUDIO_PROMPT: &str = "Transcribe the audio.";
/// Held-out items scored when no other limit is given.
pub const DEFAULT_MAX_ITEMS: usize = 50;

/// `(CE_ablated − CE_spliced) / (CE_ablated − CE_clean)`; None when the ablation does not hurt.
pub fn ce_loss_recovered(ce_clean: f64, ce_spliced: f64, ce_ablated: f64) -> Option<f64> {
    let gap = ce_ablated - ce_clean;
    (gap.abs() > 1e-12).then(|| (ce_ablated - ce_spliced) / gap)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ItemFidelity {
    pub item: String,
    /// `reference` or `clean greedy`.
    pub target: String,
    pub tokens: usize,
    pub ce_clean: f64,
    pub ce_sae: f64,
    pub ce_zero_ablation: f64,
    pub ce_mean_ablation: f64,
    pub kl: f64,
    /// Whisper: greedy transcriptions of the clean and SAE runs.
    pub text_clean: Option<String>,
    pub text_sae: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fidelity {
    pub model: String,
    pub layer: String,
    pub items: usize,
    /// Items whose target was the reference transcript (the others: the clean greedy output).
    pub items_with_reference: usize,
    pub tokens: usize,
    pub ce_clean: f64,
    pub ce_sae: f64,
    pub ce_zero_ablation: f64,
    pub ce_mean_ablation: f64,
    /// Against the zero ablation (SAELens's reference point).
    pub ce_loss_recovered: Option<f64>,
    pub ce_loss_recovered_mean_ablation: Option<f64>,
    /// Mean over target tokens of KL(clean ‖ SAE), nats.
    pub kl: f64,
    /// Whisper: WER of the SAE run's greedy transcription against the clean run's.
    pub wer_sae_vs_clean: Option<f64>,
    /// Whisper, items with a reference: WER of the clean and the SAE transcriptions.
    pub wer_clean_vs_reference: Option<f64>,
    pub wer_sae_vs_reference: Option<f64>,
    pub per_item: Vec<ItemFidelity>,
}

/// How targets are tokenised and scored for each generator.
enum Scorer {
    Whisper { prompt: Vec<i64> },
    Qwen2Audio(Box<InstructChat>),
}

impl Scorer {
    fn new(model: &AudioModel) -> Result<Scorer> {
        match model.whisper_generator() {
            Ok((_, g)) => Ok(Scorer::Whisper { prompt: g.spec.prompt(None, Task::Transcribe)? }),
            Err(_) => Ok(Scorer::Qwen2Audio(Box::new(InstructChat::new(model)?))),
        }
    }

    /// Target ids of `text`, end token included.
    fn target(&self, model: &AudioModel, text: &str) -> Result<Vec<i64>> {
        match self {
            Scorer::Whisper { .. } => {
                let (_, g) = model.whisper_generator()?;
                // Whisper's transcriptions start with a space.
                let mut ids = g.encode(&format!(" {}", text.trim()))?;
                ids.push(g.spec.end_of_text);
                Ok(ids)
            }
            Scorer::Qwen2Audio(chat) => {
                let mut ids = chat.tokenizer.encode_text(text.trim())?.0;
                ids.push(chat.eos()[0]);
                Ok(ids)
            }
        }
    }

    /// f32 logits `[target.len(), vocab]`: row `i` predicts `target[i]`.
    fn logits(&self, model: &AudioModel, input: &GeneratorInput, target: &[i64]) -> Result<Tensor> {
        match (self, input) {
            (Scorer::Whisper { prompt }, GeneratorInput::Whisper(enc)) => {
                let (_, g) = model.whisper_generator()?;
                let body = target[..target.len() - 1].to_vec();
                Ok(g.forced_logits(enc, prompt, &[body])?.get(0))
            }
            (Scorer::Qwen2Audio(chat), GeneratorInput::Qwen2Audio(rows)) => {
                let turn = Turn { system: None, prompt: QWEN2_AUDIO_PROMPT };
                chat.forced_logits(model.qwen2_audio()?, &turn, &rows[0], target)
            }
            _ => bail!("generator input does not match the model"),
        }
    }

    /// Whisper's greedy transcriptions of `inputs` (one window each), at most `caps[i]` tokens,
    /// decoded in batches; None for Qwen2-Audio.
    fn greedy_texts(
        &self,
        model: &AudioModel,
        inputs: &[&GeneratorInput],
        caps: &[usize],
    ) -> Result<Vec<Option<String>>> {
        let Scorer::Whisper { prompt } = self else { return Ok(vec![None; inputs.len()]) };
        let (_, g) = model.whisper_generator()?;
        let mut out = Vec::with_capacity(inputs.len());
        let batch = crate::transcribe::DEFAULT_BATCH_WINDOWS;
        for (chunk, caps) in inputs.chunks(batch).zip(caps.chunks(batch)) {
            let encoded = chunk
                .iter()
                .map(|i| match i {
                    GeneratorInput::Whisper(e) => Ok(e.shallow_clone()),
                    GeneratorInput::Qwen2Audio(_) => bail!("generator input does not match the model"),
                })
                .collect::<Result<Vec<_>>>()?;
            let longest = caps.iter().copied().max().unwrap_or(0);
            for (ids, &cap) in g.greedy(&Tensor::cat(&encoded, 0), prompt, longest)?.into_iter().zip(caps) {
                out.push(Some(g.decode(&ids[..ids.len().min(cap)])?));
            }
        }
        Ok(out)
    }
}

/// Greedy transcriptions scored for WER stop at twice the reference's tokens plus this many, so
/// that a repetition loop costs a bounded WER (and time) instead of running to 224 tokens.
const GREEDY_SLACK_TOKENS: usize = 16;

fn greedy_cap(reference_tokens: Option<usize>) -> usize {
    reference_tokens.map_or(crate::transcribe::DEFAULT_MAX_NEW_TOKENS, |n| {
        (2 * n + GREEDY_SLACK_TOKENS).min(crate::transcribe::DEFAULT_MAX_NEW_TOKENS)
    })
}

/// Mean over rows of the cross-entropy of `target` under `logits` `[T, vocab]`.
fn cross_entropy(logits: &Tensor, target: &[i64]) -> f64 {
    let logp = logits.to_kind(Kind::Double).log_softmax(-1, Kind::Double);
    let idx = Tensor::from_slice(target).to_device(logits.device()).unsqueeze(1);
    -logp.gather(1, &idx, false).mean(Kind::Double).double_value(&[])
}

/// Mean over rows of KL(reference ‖ logits), both `[T, vocab]` logits.
fn mean_kl(reference: &Tensor, logits: &Tensor) -> f64 {
    let p = reference.to_kind(Kind::Double).log_softmax(-1, Kind::Double);
    let q = logits.to_kind(Kind::Double).log_softmax(-1, Kind::Double);
    (p.exp() * (&p - q)).sum_dim_intlist(-1, false, Kind::Double).mean(Kind::Double).double_value(&[])
}

/// The held-out items that are whole clips of at most 30 s (the splice runs one window).
fn scorable_items(store: &SplitStore) -> Vec<&ItemEntry> {
    let max_s = crate::mel::CHUNK_SECONDS as f64;
    let items = store.reader.items();
    store
        .test_indices()
        .into_iter()
        .map(|i| &items[i])
        .filter(|it| it.meta.time_offset_s == 0.0 && it.meta.duration_s <= max_s)
        .collect()
}

/// Scores `sae` (trained on inputs × `input_scale`) spliced at `layer` of `model` on up to
/// `max_items` held-out items of `store`; `transcript` gives an item's reference, if any.
pub fn downstream_fidelity(
    model: &AudioModel,
    layer: LayerSpec,
    sae: &Sae,
    input_scale: f64,
    store: &SplitStore,
    transcript: &dyn Fn(&ItemEntry) -> Option<String>,
    max_items: usize,
) -> Result<Fidelity> {
    let _g = tch::no_grad_guard();
    let scorer = Scorer::new(model)?;
    let items: Vec<&ItemEntry> = scorable_items(store).into_iter().take(max_items).collect();
    if items.is_empty() {
        bail!(
            "{}: no held-out item is a whole clip of at most 30 s, so nothing can be spliced and scored",
            store.reader.dir().display()
        );
    }
    let bar = ProgressBar::new(items.len() as u64).with_style(
        ProgressStyle::with_template("{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta}")
            .expect("valid template"),
    );
    bar.set_message("fidelity");
    // Pass 1: each item's clean layer output (the mean ablation needs all of them). An item whose
    // audio cannot be read is reported and left out; the others are still scored.
    let mut clean = Vec::with_capacity(items.len());
    let mut readable = Vec::with_capacity(items.len());
    for it in items {
        let samples = match load_clip(&it.meta.audio) {
            Ok(s) => s,
            Err(e) => {
                bar.suspend(|| eprintln!("warning: fidelity leaves out item {}: {e:#}", it.meta.id));
                continue;
            }
        };
        readable.push(it);
        let batch = model.mel.compute_batch(&[&samples]);
        let full = model.layer_output(&batch.features, &batch.feat_lens, layer)?;
        let rows = model.valid_frames(layer, batch.feat_lens[0])?;
        clean.push((full, rows, batch.feat_lens[0]));
    }
    let items = readable;
    if items.is_empty() {
        bail!("{}: no held-out item's audio could be read", store.reader.dir().display());
    }
    bar.set_length(items.len() as u64);
    let valid: Vec<Tensor> = clean.iter().map(|(f, r, _)| f.get(0).narrow(0, 0, *r as i64)).collect();
    let mean_frame = Tensor::cat(&valid, 0).to_kind(Kind::Float).mean_dim(0, false, Kind::Float);

    // Pass 2: the clean and SAE versions of every item and their greedy transcriptions, in
    // batches (Whisper); then, item by item, the two ablations and teacher forcing. Only two
    // versions are held for all items at once.
    let with_rows = |full: &Tensor, feat_len: usize, r: &Tensor| -> Result<GeneratorInput> {
        let h = full.copy();
        h.get(0).narrow(0, 0, r.size()[0]).copy_(&r.to_kind(h.kind()).to_device(h.device()));
        model.resume_from(layer, &h, &[feat_len])
    };
    let valid_rows = |full: &Tensor, rows: usize| full.get(0).narrow(0, 0, rows as i64).to_kind(Kind::Float);
    let mut versions = Vec::with_capacity(items.len());
    for (full, rows, feat_len) in &clean {
        let x = valid_rows(full, *rows).to_device(sae.device());
        let x_hat = sae.decode(&sae.encode(&(&x * input_scale))) / input_scale;
        versions.push([model.resume_from(layer, full, &[*feat_len])?, with_rows(full, *feat_len, &x_hat)?]);
    }
    let references: Vec<Option<String>> = items.iter().map(|it| transcript(it)).collect();
    let reference_ids = references
        .iter()
        .map(|r| r.as_ref().map(|r| scorer.target(model, r)).transpose())
        .collect::<Result<Vec<_>>>()?;
    let caps: Vec<usize> = reference_ids.iter().map(|r| greedy_cap(r.as_ref().map(Vec::len))).collect();
    let texts_clean = scorer.greedy_texts(model, &versions.iter().map(|v| &v[0]).collect::<Vec<_>>(), &caps)?;
    // Without a reference, the clean transcription is the target and sets the SAE run's cap.
    let caps: Vec<usize> = caps
        .iter()
        .zip(&reference_ids)
        .zip(&texts_clean)
        .map(|((&cap, r), clean)| match (r, clean) {
            (None, Some(text)) => scorer.target(model, text).map(|t| greedy_cap(Some(t.len()))),
            _ => Ok(cap),
        })
        .collect::<Result<_>>()?;
    let texts_sae = scorer.greedy_texts(model, &versions.iter().map(|v| &v[1]).collect::<Vec<_>>(), &caps)?;
    let mut per_item = Vec::with_capacity(items.len());
    for (((((it, [clean_input, sae_input]), (full, rows, feat_len)), text_clean), text_sae), reference) in
        items.iter().zip(&versions).zip(&clean).zip(texts_clean).zip(texts_sae).zip(&references)
    {
        let (target_text, target) = match (&reference, &text_clean) {
            (Some(r), _) => (r.clone(), "reference"),
            (None, Some(t)) => (t.clone(), "clean greedy"),
            (None, None) => bail!(
                "{}: item {} has no reference transcript; give --labels CORPUS with transcripts",
                store.reader.dir().display(),
                it.meta.id
            ),
        };
        let ids = scorer.target(model, &target_text)?;
        let x = valid_rows(full, *rows);
        let zero = with_rows(full, *feat_len, &x.zeros_like())?;
        let mean = with_rows(full, *feat_len, &mean_frame.unsqueeze(0).expand_as(&x))?;
        let logits = [clean_input, sae_input, &zero, &mean]
            .into_iter()
            .map(|i| scorer.logits(model, i, &ids))
            .collect::<Result<Vec<_>>>()?;
        per_item.push(ItemFidelity {
            item: it.meta.id.clone(),
            target: target.to_string(),
            tokens: ids.len(),
            ce_clean: cross_entropy(&logits[0], &ids),
            ce_sae: cross_entropy(&logits[1], &ids),
            ce_zero_ablation: cross_entropy(&logits[2], &ids),
            ce_mean_ablation: cross_entropy(&logits[3], &ids),
            kl: mean_kl(&logits[0], &logits[1]),
            text_clean,
            text_sae,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(summarise(model, layer, per_item, &references))
}

/// Token-weighted means and corpus-level WERs of the items; `references[i]` is item `i`'s.
fn summarise(
    model: &AudioModel,
    layer: LayerSpec,
    per_item: Vec<ItemFidelity>,
    references: &[Option<String>],
) -> Fidelity {
    let tokens: usize = per_item.iter().map(|i| i.tokens).sum();
    let weighted = |f: fn(&ItemFidelity) -> f64| {
        per_item.iter().map(|i| f(i) * i.tokens as f64).sum::<f64>() / tokens.max(1) as f64
    };
    let (ce_clean, ce_sae) = (weighted(|i| i.ce_clean), weighted(|i| i.ce_sae));
    let (ce_zero, ce_mean) = (weighted(|i| i.ce_zero_ablation), weighted(|i| i.ce_mean_ablation));
    // Corpus-level WER: total word edits over total reference words.
    let wer = |pairs: Vec<(String, String)>| -> Option<f64> {
        let (mut edits, mut words) = (0usize, 0usize);
        for (r, h) in &pairs {
            let (r, h) = (normalise(r), normalise(h));
            edits += edit_distance(&r, &h);
            words += r.len();
        }
        (words > 0).then(|| edits as f64 / words as f64)
    };
    let texts: Vec<(&ItemFidelity, &Option<String>)> = per_item.iter().zip(references).collect();
    let both = |f: &ItemFidelity| f.text_clean.clone().zip(f.text_sae.clone());
    Fidelity {
        model: model.id.clone(),
        layer: layer.to_string(),
        items: per_item.len(),
        items_with_reference: per_item.iter().filter(|i| i.target == "reference").count(),
        tokens,
        ce_clean,
        ce_sae,
        ce_zero_ablation: ce_zero,
        ce_mean_ablation: ce_mean,
        ce_loss_recovered: ce_loss_recovered(ce_clean, ce_sae, ce_zero),
        ce_loss_recovered_mean_ablation: ce_loss_recovered(ce_clean, ce_sae, ce_mean),
        kl: weighted(|i| i.kl),
        wer_sae_vs_clean: wer(per_item.iter().filter_map(both).collect()),
        wer_clean_vs_reference: wer(texts
            .iter()
            .filter_map(|(f, r)| Some((r.as_ref()?.clone(), f.text_clean.clone()?)))
            .collect()),
        wer_sae_vs_reference: wer(texts
            .iter()
            .filter_map(|(f, r)| Some((r.as_ref()?.clone(), f.text_sae.clone()?)))
            .collect()),
        per_item,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovered_is_one_for_a_perfect_splice_and_zero_for_the_ablation() {
        assert_eq!(ce_loss_recovered(2.0, 2.0, 6.0), Some(1.0));
        assert_eq!(ce_loss_recovered(2.0, 6.0, 6.0), Some(0.0));
        // Planted: the splice closes three quarters of the gap.
        assert_eq!(ce_loss_recovered(2.0, 3.0, 6.0), Some(0.75));
        // Worse than the ablation is negative, not clipped.
        assert_eq!(ce_loss_recovered(2.0, 8.0, 6.0), Some(-0.5));
        assert_eq!(ce_loss_recovered(2.0, 3.0, 2.0), None);
    }

    #[test]
    fn cross_entropy_and_kl_match_hand_computed_values() {
        // Two tokens over a vocabulary of 2: uniform, then p = (e/(1+e), 1/(1+e)).
        let logits = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 0.0]).view([2, 2]);
        let want = (2f64.ln() + (1.0 + 1f64.exp()).ln() - 1.0) / 2.0;
        assert!((cross_entropy(&logits, &[1, 0]) - want).abs() < 1e-12);
        assert!(mean_kl(&logits, &logits).abs() < 1e-12);
        let flat = Tensor::zeros([2, 2], (Kind::Float, tch::Device::Cpu));
        // KL(p || uniform) on the second row only, halved by the mean.
        let p = 1f64.exp() / (1.0 + 1f64.exp());
        let kl = (p * (p / 0.5).ln() + (1.0 - p) * ((1.0 - p) / 0.5).ln()) / 2.0;
        assert!((mean_kl(&logits, &flat) - kl).abs() < 1e-12);
    }
}
