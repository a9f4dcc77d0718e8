//! The interventions plugin: edit chosen SAE units in a clip's representation and see what the
//! model says with it.
//!
//! `x` are the clip's rows at the store's layer (Whisper: `encoder` or `encoder.N`; Qwen2-Audio:
//! also `projector`), `h = encode(x)` its SAE codes. The chosen units are masked (0) or boosted
//! (set to a value, scaled, or the seed's additive `h + v`) in every frame or in the frames whose
//! centre lies in `[t0, t1)`, giving `h'`, and the edit is spliced back with the SAE's error term
//! kept: `x' = x + D(h') − D(h)`. The host runs the rest of the model from `x'` (the encoder
//! layers above, then Whisper's decoder or Qwen2-Audio's language model) and decodes greedily;
//! per-step KL(baseline || edited) is taken teacher-forced on the baseline tokens so that the
//! steps line up. Two controls run the same way: the same edit on random units that are active
//! on the edited frames, matched in count and in the code mass moved, and Gaussian noise with
//! the edit's norm, frame by frame. Each condition's transcription is scored by WER/CER against
//! the clean transcription and, when the labelled corpus has one, the reference transcript.
//!
//! Without a model (Whisper stores, or no `--model`), the clip's frames are taken from the store
//! and the report gives the change of the frames and of their re-encoded SAE codes instead.

mod compare;
mod edit;
mod plot;

use std::path::Path;
use std::str::FromStr;

use audiosae_plugin_api::{
    export_plugin, AnalysisContext, Error, FrameTiming, GenerationRequest, Params, Plugin, Report, SaeInfo, Table,
    Value,
};
use serde_json::json;

use audiosae_plugin_api::error_rate::{char_error_rate, word_error_rate};
use compare::{first_difference, kl_per_step, token_diff, DiffOp};
use edit::{activity_matched_units, edit_codes, edit_mass, frames_in, matched_noise, row_norms, splice, Edit};
use plot::{lines_png, Series};

#[derive(Default)]
pub struct Interventions;

/// The run's settings, from the parameters.
struct Setup {
    clip: String,
    sae: usize,
    units: Vec<usize>,
    mode: String,
    edit: Edit,
    t0: Option<f64>,
    t1: Option<f64>,
    prompt: Option<String>,
    /// The clip's reference transcript; else the labelled corpus's, if the clip is in the store.
    reference: Option<String>,
    max_new_tokens: usize,
    seed: u64,
}

fn optional<T: FromStr>(p: &Params, key: &str) -> Result<Option<T>, Error>
where
    T::Err: std::fmt::Display,
{
    p.str(key).map(|s| s.parse().map_err(|e| Error::new(format!("parameter {key}={s}: {e}")))).transpose()
}

/// `"1,2,3"` -> sorted distinct units; `""` -> none.
fn parse_units(s: &str) -> Result<Vec<usize>, Error> {
    let mut units = s
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| u.parse().map_err(|e| Error::new(format!("parameter units={s}: `{u}`: {e}"))))
        .collect::<Result<Vec<usize>, Error>>()?;
    units.sort_unstable();
    units.dedup();
    Ok(units)
}

impl Setup {
    fn from_params(p: &Params) -> Result<Setup, Error> {
        let clip = p.str("clip").ok_or_else(|| Error::new("parameter clip=PATH (the audio file) is required"))?;
        let units = p.str("units").ok_or_else(|| Error::new("parameter units=1,2,3 is required (units= for none)"))?;
        let mode = p.str("mode").unwrap_or("mask").to_string();
        let amounts = (optional::<f32>(p, "value")?, optional::<f32>(p, "scale")?, optional::<f32>(p, "add")?);
        let edit = match (mode.as_str(), amounts) {
            ("mask", (None, None, None)) => Edit::Mask,
            ("mask", _) => return Err(Error::new("mode=mask takes no value=, scale= or add=")),
            ("boost", (Some(v), None, None)) => Edit::Set(v),
            ("boost", (None, Some(s), None)) => Edit::Scale(s),
            ("boost", (None, None, Some(v))) => Edit::Add(v),
            ("boost", _) => return Err(Error::new("mode=boost needs exactly one of value=V, scale=S or add=V")),
            (other, _) => return Err(Error::new(format!("mode={other}: use mask or boost"))),
        };
        let setup = Setup {
            clip: clip.to_string(),
            units: parse_units(units)?,
            sae: p.get("sae", 0)?,
            mode,
            edit,
            t0: optional(p, "t0")?,
            t1: optional(p, "t1")?,
            prompt: p.str("prompt").map(str::to_string),
            reference: p.str("reference").map(str::to_string),
            max_new_tokens: p.get("max_new_tokens", 32)?,
            seed: p.get("seed", 0)?,
        };
        p.check_all_used()?;
        Ok(setup)
    }

    /// The frames to edit; an error when a time range selects none.
    fn frames(&self, timing: &FrameTiming, rows: usize) -> Result<Vec<usize>, Error> {
        let frames = frames_in(timing, rows, self.t0, self.t1);
        if frames.is_empty() {
            return Err(Error::new(format!(
                "{}: no frame has its centre in t0={:?}..t1={:?} s ({rows} frames)",
                self.clip, self.t0, self.t1
            )));
        }
        Ok(frames)
    }

    fn summary(&self, sae: &SaeInfo, frames: &[usize], rows: usize) -> serde_json::Value {
        json!({
            "clip": self.clip, "sae": sae.path, "d_in": sae.d_in, "d_sae": sae.d_sae,
            "mode": self.mode, "edit": format!("{:?}", self.edit), "units": self.units,
            "t0_s": self.t0, "t1_s": self.t1, "frames_edited": frames.len(), "frames": rows, "seed": self.seed,
        })
    }
}

/// The clip's representation `[rows, d]`: model audio embeddings or store frames.
struct Frames {
    x: Vec<f32>,
    rows: usize,
    d: usize,
    timing: FrameTiming,
}

/// One edited version of the representation: the edit itself or a control.
struct Condition {
    name: &'static str,
    units: Vec<usize>,
    x: Vec<f32>,
    /// Σ |h' − h| over the edited frames and the condition's units (0 for noise).
    code_mass: f64,
}

impl Condition {
    fn delta_norms(&self, f: &Frames) -> Vec<f64> {
        let delta: Vec<f32> = self.x.iter().zip(&f.x).map(|(a, b)| a - b).collect();
        row_norms(&delta, f.d)
    }
}

fn norm(rows: impl IntoIterator<Item = f64>) -> f64 {
    rows.into_iter().map(|r| r * r).sum::<f64>().sqrt()
}

/// The edit plus its two controls, all spliced with the error term kept.
struct Conditions {
    /// SAE codes of the clean representation.
    codes: Vec<f32>,
    list: Vec<Condition>,
    /// How the random-unit control was drawn.
    control: serde_json::Value,
}

fn conditions(
    ctx: &AnalysisContext,
    s: &Setup,
    sae: &SaeInfo,
    f: &Frames,
    frames: &[usize],
) -> Result<Conditions, Error> {
    if sae.d_in != f.d {
        return Err(Error::new(format!(
            "{}: the SAE {} has d_in {} but the representation of {} is {} wide; use an SAE trained on \
             this layer (Qwen2-Audio audio embeddings: the projector)",
            s.clip, sae.path, sae.d_in, s.clip, f.d
        )));
    }
    if let Some(u) = s.units.iter().find(|&&u| u >= sae.d_sae) {
        return Err(Error::new(format!("units: unit {u} does not exist (the SAE has {} units)", sae.d_sae)));
    }
    let h = ctx.encode(s.sae, &f.x)?;
    let decoded = ctx.decode(s.sae, &h)?;
    let spliced = |units: &[usize]| -> Result<Vec<f32>, Error> {
        let edited = edit_codes(&h, sae.d_sae, frames, units, s.edit);
        Ok(splice(&f.x, &ctx.decode(s.sae, &edited)?, &decoded))
    };
    let matched = activity_matched_units(&h, sae.d_sae, frames, &s.units, s.edit, s.seed)?;
    let ratio = (matched.chosen_mass > 0.0).then(|| matched.mass / matched.chosen_mass);
    let control = json!({
        "drawn_from": "units active on the edited frames, outside the chosen ones",
        "active_pool": matched.active_pool, "chosen_code_mass": matched.chosen_mass,
        "control_code_mass": matched.mass,
        "mass_ratio": ratio,
        "mass_matched_within_10pct": ratio.is_some_and(|r| (0.9..=1.1).contains(&r)),
    });
    let edit = Condition {
        name: "edit",
        units: s.units.clone(),
        x: spliced(&s.units)?,
        code_mass: edit_mass(&h, sae.d_sae, frames, &s.units, s.edit),
    };
    let random =
        Condition { name: "random_units", x: spliced(&matched.units)?, units: matched.units, code_mass: matched.mass };
    let delta: Vec<f32> = edit.x.iter().zip(&f.x).map(|(a, b)| a - b).collect();
    let noise = Condition { name: "noise", units: vec![], x: matched_noise(&f.x, &delta, f.d, s.seed), code_mass: 0.0 };
    Ok(Conditions { codes: h, list: vec![edit, random, noise], control })
}

/// The reference transcript of `clip` from the store's items (a labelled corpus gives them).
fn reference_transcript(ctx: &AnalysisContext, clip: &str) -> Option<String> {
    ctx.items().ok()?.into_iter().find(|it| same_file(&it.audio, clip)).and_then(|it| it.transcript)
}

/// Per-frame table: centre time, whether the frame was edited, and per-condition columns.
fn frames_table(f: &Frames, frames: &[usize], columns: &[(String, Vec<f64>)]) -> Table {
    let mut names = vec!["frame".to_string(), "centre_s".into(), "edited".into()];
    names.extend(columns.iter().map(|(n, _)| n.clone()));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut t = Table::new("frames", &names);
    for i in 0..f.rows {
        let mut row: Vec<Value> = vec![i.into(), f.timing.center(i).into(), frames.binary_search(&i).is_ok().into()];
        row.extend(columns.iter().map(|(_, v)| Value::from(v[i])));
        t.push(row);
    }
    t
}

fn units_text(units: &[usize]) -> String {
    units.iter().map(usize::to_string).collect::<Vec<_>>().join(" ")
}

/// Generation from the edited embeddings, compared with the baseline.
fn with_model(ctx: &AnalysisContext, s: &Setup, sae: &SaeInfo, f: &Frames) -> Result<Report, Error> {
    let frames = s.frames(&f.timing, f.rows)?;
    let Conditions { list: conds, control, .. } = conditions(ctx, s, sae, f, &frames)?;
    let reference = s.reference.clone().or_else(|| reference_transcript(ctx, &s.clip));
    let request = |forced_tokens: Vec<i64>| GenerationRequest {
        clip: s.clip.clone(),
        prompt: s.prompt.clone(),
        max_new_tokens: s.max_new_tokens,
        rows: f.rows,
        d: f.d,
        forced_tokens,
    };
    let total = 1 + 2 * conds.len() as u64;
    ctx.progress("generating", 0, total);
    let base = ctx.generate(&request(vec![]), &f.x)?;
    let x_rows = row_norms(&f.x, f.d);
    let x_norm = norm(frames.iter().map(|&i| x_rows[i]));
    let mut summary = s.summary(sae, &frames, f.rows);
    summary["prompt"] = json!(s.prompt);
    summary["max_new_tokens"] = json!(s.max_new_tokens);
    summary["generation"] = json!("model");
    summary["reference"] = json!(reference);
    summary["baseline"] = json!({
        "text": base.text, "tokens": base.tokens,
        "wer_vs_reference": reference.as_ref().and_then(|r| word_error_rate(r, &base.text)),
        "cer_vs_reference": reference.as_ref().and_then(|r| char_error_rate(r, &base.text)),
    });
    summary["random_units_control"] = control;
    let mut overview = Table::new(
        "conditions",
        &[
            "condition",
            "units",
            "code_mass",
            "edit_norm",
            "relative_edit_norm",
            "tokens_changed",
            "first_changed_step",
            "mean_kl",
            "max_kl",
            "wer_vs_clean",
            "wer_vs_reference",
            "cer_vs_reference",
            "text",
        ],
    );
    let mut diff = Table::new(
        "token_diff",
        &["condition", "op", "baseline_step", "baseline_token", "edited_step", "edited_token"],
    );
    let mut kl_columns = Vec::new();
    let mut norm_columns = Vec::new();
    for (k, c) in conds.iter().enumerate() {
        let free = ctx.generate(&request(vec![]), &c.x)?;
        let kl = if base.tokens.is_empty() {
            vec![]
        } else {
            kl_per_step(&base.logits, &ctx.generate(&request(base.tokens.clone()), &c.x)?.logits, base.vocab)
        };
        ctx.progress("generating", 2 + 2 * k as u64, total);
        let ops = token_diff(&base.tokens, &free.tokens);
        for op in &ops {
            let (name, a, b) = match *op {
                DiffOp::Same { a, b } => ("=", Some(a), Some(b)),
                DiffOp::Removed { a } => ("-", Some(a), None),
                DiffOp::Added { b } => ("+", None, Some(b)),
            };
            diff.push(vec![
                c.name.into(),
                name.into(),
                a.into(),
                a.map(|a| base.tokens[a]).into(),
                b.into(),
                b.map(|b| free.tokens[b]).into(),
            ]);
        }
        let changed = ops.iter().filter(|o| !matches!(o, DiffOp::Same { .. })).count();
        let first = first_difference(&base.tokens, &free.tokens);
        let norms = c.delta_norms(f);
        let edit_norm = norm(norms.iter().copied());
        let relative = edit_norm / x_norm.max(1e-12);
        let mean_kl = kl.iter().sum::<f64>() / kl.len().max(1) as f64;
        let max_kl = kl.iter().copied().fold(0.0, f64::max);
        let wer_clean = word_error_rate(&base.text, &free.text);
        let wer_ref = reference.as_ref().and_then(|r| word_error_rate(r, &free.text));
        let cer_ref = reference.as_ref().and_then(|r| char_error_rate(r, &free.text));
        overview.push(vec![
            c.name.into(),
            units_text(&c.units).into(),
            c.code_mass.into(),
            edit_norm.into(),
            relative.into(),
            changed.into(),
            first.into(),
            mean_kl.into(),
            max_kl.into(),
            wer_clean.into(),
            wer_ref.into(),
            cer_ref.into(),
            free.text.clone().into(),
        ]);
        summary["conditions"][c.name] = json!({
            "units": c.units, "code_mass": c.code_mass, "edit_norm": edit_norm, "relative_edit_norm": relative,
            "text": free.text, "tokens": free.tokens, "tokens_changed": changed, "first_changed_step": first,
            "kl_per_step": kl, "mean_kl": mean_kl, "max_kl": max_kl, "wer_vs_clean": wer_clean,
            "wer_vs_reference": wer_ref, "cer_vs_reference": cer_ref,
        });
        kl_columns.push((c.name, kl));
        norm_columns.push((format!("edit_norm_{}", c.name), norms));
    }
    let mut per_step = Table::new("kl_per_step", &["step", "baseline_token", "kl_edit", "kl_random_units", "kl_noise"]);
    for (i, &tok) in base.tokens.iter().enumerate() {
        let mut row: Vec<Value> = vec![i.into(), tok.into()];
        row.extend(kl_columns.iter().map(|(_, kl)| Value::from(kl[i])));
        per_step.push(row);
    }
    let series: Vec<Series> = kl_columns
        .iter()
        .map(|(name, kl)| Series { name, points: kl.iter().enumerate().map(|(i, &v)| (i as f64, v)).collect() })
        .collect();
    let title = format!("KL(baseline || edited) per step, {} {}", s.mode, units_text(&s.units));
    let figure = lines_png("kl_per_step", &title, "generation step (teacher-forced)", "KL (nats)", &series)?;
    Ok(Report {
        summary,
        tables: vec![overview, per_step, diff, frames_table(f, &frames, &norm_columns)],
        figures: vec![figure],
    })
}

fn same_file(a: &str, b: &str) -> bool {
    match (Path::new(a).canonicalize(), Path::new(b).canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Without a model: the change of the clip's store frames and of their re-encoded SAE codes.
fn without_model(ctx: &AnalysisContext, s: &Setup, sae: &SaeInfo, no_model: Error) -> Result<Report, Error> {
    let items = ctx.items()?;
    let (index, item) = items.iter().enumerate().find(|(_, it)| same_file(&it.audio, &s.clip)).ok_or_else(|| {
        Error::new(format!("{no_model}; and no item of the store comes from {} to edit its frames instead", s.clip))
    })?;
    let f = Frames { x: ctx.frames(index)?, rows: item.n_frames, d: ctx.store()?.d, timing: item.timing };
    let frames = s.frames(&f.timing, f.rows)?;
    let Conditions { codes: h, list: conds, control } = conditions(ctx, s, sae, &f, &frames)?;
    let d_sae = sae.d_sae;
    let mut summary = s.summary(sae, &frames, f.rows);
    summary["generation"] = json!(format!("unavailable ({no_model}): frames of store item {} edited instead", item.id));
    summary["random_units_control"] = control;
    let mut overview = Table::new(
        "conditions",
        &[
            "condition",
            "units",
            "edit_norm",
            "relative_edit_norm",
            "code_change_norm",
            "units_flipped",
            "target_code_before",
            "target_code_after",
        ],
    );
    let x_rows = row_norms(&f.x, f.d);
    let x_norm = norm(frames.iter().map(|&i| x_rows[i]));
    let mut columns = Vec::new();
    let mut series_data = Vec::new();
    for c in &conds {
        let recoded = ctx.encode(s.sae, &c.x)?;
        let change: Vec<f32> = recoded.iter().zip(&h).map(|(a, b)| a - b).collect();
        let code_change = row_norms(&change, d_sae);
        let flipped = recoded.iter().zip(&h).filter(|(a, b)| (**a > 0.0) != (**b > 0.0)).count();
        // Mean code of the condition's units over the edited frames, before and after.
        let target_mean = |codes: &[f32]| {
            let n = (frames.len() * c.units.len()).max(1) as f64;
            frames.iter().flat_map(|&i| c.units.iter().map(move |&u| codes[i * d_sae + u] as f64)).sum::<f64>() / n
        };
        let (before, after) = (target_mean(&h), target_mean(&recoded));
        let norms = c.delta_norms(&f);
        let edit_norm = norm(norms.iter().copied());
        let code_norm = norm(code_change.iter().copied());
        overview.push(vec![
            c.name.into(),
            units_text(&c.units).into(),
            edit_norm.into(),
            (edit_norm / x_norm.max(1e-12)).into(),
            code_norm.into(),
            flipped.into(),
            before.into(),
            after.into(),
        ]);
        summary["conditions"][c.name] = json!({
            "units": c.units, "edit_norm": edit_norm, "relative_edit_norm": edit_norm / x_norm.max(1e-12),
            "code_change_norm": code_norm, "units_flipped": flipped,
            "target_code_before": before, "target_code_after": after,
        });
        let points = code_change.iter().enumerate().map(|(i, &v)| (f.timing.center(i), v)).collect();
        series_data.push((c.name, points));
        columns.push((format!("edit_norm_{}", c.name), norms));
        columns.push((format!("code_change_{}", c.name), code_change));
    }
    let series: Vec<Series> = series_data.into_iter().map(|(name, points)| Series { name, points }).collect();
    let title = format!("SAE code change per frame, {} {}", s.mode, units_text(&s.units));
    let figure = lines_png("code_change", &title, "time (s)", "|encode(x') - encode(x)|", &series)?;
    Ok(Report { summary, tables: vec![overview, frames_table(&f, &frames, &columns)], figures: vec![figure] })
}

impl Plugin for Interventions {
    fn name(&self) -> &str {
        "interventions"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn describe(&self) -> &str {
        "Mask or boost SAE units in a clip's rows at the store's layer (x' = x + D(h') - D(h)), run the rest of \
         the model (Whisper or Qwen2-Audio, analyze --model) and compare what it says (text, WER/CER against the \
         clean run and the reference transcript, token diff, per-step KL) with an activity- and mass-matched \
         random-unit control and a norm-matched noise control. Params: clip=PATH, units=1,2,3, mode=mask|boost, \
         value=V, scale=S or add=V, t0/t1 (s), prompt (Qwen2-Audio), reference (text; default: the labelled \
         corpus's transcript), max_new_tokens (32), seed (0), sae (0)."
    }

    fn run(&self, ctx: &AnalysisContext, params: &Params) -> Result<Report, Error> {
        let s = Setup::from_params(params)?;
        let sae = ctx.saes()?.into_iter().nth(s.sae).ok_or_else(|| Error::new(format!("no SAE #{}", s.sae)))?;
        match ctx.audio_embeddings(&s.clip) {
            Ok(e) => with_model(ctx, &s, &sae, &Frames { x: e.values, rows: e.rows, d: e.d, timing: e.timing }),
            Err(no_model) => without_model(ctx, &s, &sae, no_model),
        }
    }
}

export_plugin!(Interventions);
