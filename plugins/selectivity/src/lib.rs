//! `selectivity`: how well each SAE unit detects each phone and word class, against two
//! baselines computed the same way: the raw dimensions of the representation and as many random
//! unit directions (a random rotation of the raw basis).
//!
//! For each unit and class: precision, recall and F1 of "unit active" vs "frame has the label",
//! AUROC of the activation, and the selectivity index (mean in − mean out) / pooled std; the
//! best class per unit (highest F1); the fraction of units whose best F1 reaches `threshold`.
//! The SAE beats the baselines on a tier when its fraction of selective units is higher than
//! both of theirs. "Active" is code > 0 for SAE units; a baseline unit is active above its own quantile that
//! gives it the SAE's mean density of live units, so that all three fire equally often.

mod metrics;

use std::collections::HashMap;
use std::time::Instant;

use audiosae_plugin_api::{export_plugin, AnalysisContext, Error, Params, Plugin, Report, Table, Value};
use audiosae_plugin_figures::{heatmap_png, histograms_png, Heatmap};
use rand::{Rng, SeedableRng};
use serde_json::json;

use metrics::{unit_metrics, ClassMetrics, Classes, UnitMetrics, NO_CLASS};

#[derive(Default)]
pub struct Selectivity;

impl Plugin for Selectivity {
    fn name(&self) -> &str {
        "selectivity"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn describe(&self) -> &str {
        "Per unit x phone/word class: precision, recall, F1, AUROC, selectivity index; best class; fraction \
         selective vs raw-dimension and random-direction baselines. Needs --labels. Params: threshold (best F1, 0.5), \
         min_frames (20), max_words (100), seed (0), heatmap_units (64), sae (0)."
    }

    fn run(&self, ctx: &AnalysisContext, params: &Params) -> Result<Report, Error> {
        let opts = Options {
            threshold: params.get("threshold", 0.5)?,
            min_frames: params.get("min_frames", 20)?,
            max_words: params.get("max_words", 100)?,
            seed: params.get("seed", 0)?,
            heatmap_units: params.get("heatmap_units", 64)?,
            sae: params.get("sae", 0)?,
        };
        params.check_all_used()?;
        run(ctx, &opts)
    }
}

export_plugin!(Selectivity);

struct Options {
    threshold: f64,
    min_frames: u64,
    max_words: usize,
    seed: u64,
    heatmap_units: usize,
    sae: usize,
}

/// The labelled frames of the store: features `[n, d]` and the label of every frame per tier.
struct Frames {
    x: Vec<f32>,
    n: usize,
    d: usize,
    labels: Vec<(String, Vec<String>)>,
}

fn load_frames(ctx: &AnalysisContext) -> Result<Frames, Error> {
    let store = ctx.store()?;
    if store.label_tiers.is_empty() {
        return Err(Error::new("selectivity needs frame labels: pass --labels CORPUS"));
    }
    let items = ctx.items()?;
    let mut x = Vec::new();
    let mut labels: Vec<(String, Vec<String>)> = store.label_tiers.iter().map(|t| (t.clone(), Vec::new())).collect();
    let mut n = 0;
    for (i, item) in items.iter().enumerate() {
        let tiers: Vec<Option<Vec<String>>> =
            store.label_tiers.iter().map(|t| ctx.labels(i, t)).collect::<Result<_, _>>()?;
        // Only items aligned in every tier take part.
        if tiers.iter().all(Option::is_some) {
            x.extend(ctx.frames(i)?);
            for ((_, all), tier) in labels.iter_mut().zip(tiers) {
                all.extend(tier.unwrap_or_default());
            }
            n += item.n_frames;
        }
        ctx.progress("reading", i as u64 + 1, items.len() as u64);
    }
    if n == 0 {
        return Err(Error::new("no store item has labels: do the corpus item ids match the store's?"));
    }
    Ok(Frames { x, n, d: store.d, labels })
}

/// Classes of one tier: labels with at least `min_frames` frames, at most `max` of them (most
/// frequent first); other frames belong to no class.
fn classes_of(labels: &[String], min_frames: u64, max: usize) -> (Vec<String>, Classes) {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for l in labels {
        *counts.entry(l).or_default() += 1;
    }
    let mut names: Vec<(&str, u64)> = counts.into_iter().filter(|&(_, c)| c >= min_frames).collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    names.truncate(max);
    names.sort();
    let id: HashMap<&str, u32> = names.iter().enumerate().map(|(i, (n, _))| (*n, i as u32)).collect();
    let of_frame = labels.iter().map(|l| id.get(l.as_str()).copied().unwrap_or(NO_CLASS)).collect();
    let names: Vec<String> = names.into_iter().map(|(n, _)| n.to_string()).collect();
    let classes = Classes::new(of_frame, names.len());
    (names, classes)
}

/// One representation's units as columns over the frames.
enum Columns {
    /// SAE codes: per unit, the frames where it is non-zero.
    Sparse(Vec<Vec<(u32, f32)>>),
    /// Baselines: `[units, n]`, every frame explicit.
    Dense { values: Vec<f32>, n: usize },
}

impl Columns {
    fn units(&self) -> usize {
        match self {
            Columns::Sparse(c) => c.len(),
            Columns::Dense { values, n } => values.len() / n,
        }
    }

    fn column(&self, u: usize) -> Vec<(u32, f32)> {
        match self {
            Columns::Sparse(c) => c[u].clone(),
            Columns::Dense { values, n } => {
                values[u * n..(u + 1) * n].iter().enumerate().map(|(i, &v)| (i as u32, v)).collect()
            }
        }
    }
}

/// SAE codes of all frames, encoded in batches.
fn sae_columns(ctx: &AnalysisContext, f: &Frames, sae: usize, d_sae: usize) -> Result<Columns, Error> {
    const BATCH: usize = 4096;
    let mut cols = vec![Vec::new(); d_sae];
    for start in (0..f.n).step_by(BATCH) {
        let end = (start + BATCH).min(f.n);
        let codes = ctx.encode(sae, &f.x[start * f.d..end * f.d])?;
        for (r, row) in codes.chunks_exact(d_sae).enumerate() {
            for (u, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    cols[u].push(((start + r) as u32, v));
                }
            }
        }
        ctx.progress("encoding", end as u64, f.n as u64);
    }
    Ok(Columns::Sparse(cols))
}

/// `[d, n]`: the raw dimensions.
fn raw_columns(f: &Frames) -> Columns {
    let mut t = vec![0f32; f.x.len()];
    for (i, row) in f.x.chunks_exact(f.d).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j * f.n + i] = v;
        }
    }
    Columns::Dense { values: t, n: f.n }
}

/// `[d, n]`: projections on `d` random unit directions (Gaussian, normalised; seeded).
fn random_columns(f: &Frames, seed: u64) -> Columns {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut gauss = || {
        let (u1, u2): (f64, f64) = (rng.gen::<f64>().max(1e-300), rng.gen());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    };
    let mut dirs: Vec<f32> = (0..f.d * f.d).map(|_| gauss()).collect();
    for row in dirs.chunks_exact_mut(f.d) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        row.iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0f32; f.d * f.n];
    // out[u, i] = sum_j dirs[u, j] * x[i, j]
    // SAFETY: the strides describe `dirs` [d, d], `x` read as [d, n] and `out` [d, n], all in bounds.
    unsafe {
        matrixmultiply::sgemm(
            f.d,
            f.d,
            f.n,
            1.0,
            dirs.as_ptr(),
            f.d as isize,
            1,
            f.x.as_ptr(),
            1,
            f.d as isize,
            0.0,
            out.as_mut_ptr(),
            f.n as isize,
            1,
        );
    }
    Columns::Dense { values: out, n: f.n }
}

/// Per unit: its threshold, and its metrics against each tier's classes.
struct Evaluation {
    name: &'static str,
    units: usize,
    live: Vec<bool>,
    /// `[tier][unit]`.
    metrics: Vec<Vec<UnitMetrics>>,
}

/// The value above which a dense column is active on a fraction `density` of frames.
fn quantile_threshold(column: &[(u32, f32)], density: f64) -> f32 {
    let mut v: Vec<f32> = column.iter().map(|e| e.1).collect();
    let k = ((1.0 - density) * v.len() as f64).floor() as usize;
    let k = k.min(v.len().saturating_sub(1));
    *v.select_nth_unstable_by(k, |a, b| a.total_cmp(b)).1
}

fn evaluate(name: &'static str, cols: &Columns, tiers: &[Classes], density: Option<f64>) -> Evaluation {
    let units = cols.units();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(units.max(1));
    let chunk = units.div_ceil(threads);
    let per_unit: Vec<(bool, Vec<UnitMetrics>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(units))
                        .map(|u| {
                            let mut col = cols.column(u);
                            let threshold = density.map_or(0.0, |q| quantile_threshold(&col, q));
                            let ms: Vec<UnitMetrics> =
                                tiers.iter().map(|classes| unit_metrics(&mut col, classes, threshold)).collect();
                            (ms[0].active > 0, ms)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("metrics thread panicked")).collect()
    });
    let mut metrics: Vec<Vec<UnitMetrics>> = tiers.iter().map(|_| Vec::with_capacity(units)).collect();
    let mut live = Vec::with_capacity(units);
    for (l, ms) in per_unit {
        live.push(l);
        for (t, m) in ms.into_iter().enumerate() {
            metrics[t].push(m);
        }
    }
    Evaluation { name, units, live, metrics }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Summary of one representation on one tier, over all its units (dead units count as not selective).
fn tier_summary(e: &Evaluation, tier: usize, threshold: f64) -> serde_json::Value {
    let best: Vec<Option<&ClassMetrics>> = e.metrics[tier].iter().map(|m| m.best().map(|b| b.1)).collect();
    let f1: Vec<f64> = best.iter().map(|b| b.map_or(0.0, |m| m.f1)).collect();
    let live_auroc: Vec<f64> =
        best.iter().zip(&e.live).filter(|(_, &l)| l).filter_map(|(b, _)| b.map(|m| m.auroc)).collect();
    let live_si: Vec<f64> =
        best.iter().zip(&e.live).filter(|(_, &l)| l).filter_map(|(b, _)| b.map(|m| m.selectivity)).collect();
    json!({
        "units": e.units,
        "live_units": e.live.iter().filter(|&&l| l).count(),
        "fraction_selective": f1.iter().filter(|&&f| f >= threshold).count() as f64 / e.units.max(1) as f64,
        "mean_best_f1": mean(&f1),
        "median_best_auroc_live": median(live_auroc),
        "mean_best_selectivity_live": mean(&live_si),
    })
}

fn run(ctx: &AnalysisContext, o: &Options) -> Result<Report, Error> {
    let t0 = Instant::now();
    let sae = ctx.saes()?.into_iter().nth(o.sae).ok_or_else(|| Error::new(format!("no SAE #{} (--sae)", o.sae)))?;
    let frames = load_frames(ctx)?;
    let mut tier_names = Vec::new();
    let mut class_names = Vec::new();
    let mut tiers = Vec::new();
    for (tier, labels) in &frames.labels {
        let max = if tier == "words" { o.max_words } else { usize::MAX };
        let (names, classes) = classes_of(labels, o.min_frames, max);
        tier_names.push(tier.clone());
        class_names.push(names);
        tiers.push(classes);
    }
    let t_read = t0.elapsed().as_secs_f64();
    let sae_cols = sae_columns(ctx, &frames, o.sae, sae.d_sae)?;
    let t_encode = t0.elapsed().as_secs_f64() - t_read;
    let sae_eval = evaluate("sae", &sae_cols, &tiers, None);
    drop(sae_cols);
    // Baselines fire as often as the SAE's live units do on average.
    let live_density: Vec<f64> =
        sae_eval.metrics[0].iter().filter(|m| m.active > 0).map(|m| m.active as f64 / frames.n as f64).collect();
    let density = mean(&live_density).clamp(1.0 / frames.n as f64, 1.0);
    let raw_eval = evaluate("raw_dims", &raw_columns(&frames), &tiers, Some(density));
    let random_eval = evaluate("random_dirs", &random_columns(&frames, o.seed), &tiers, Some(density));
    let elapsed = t0.elapsed().as_secs_f64();
    let evals = [&sae_eval, &raw_eval, &random_eval];

    let mut summary = json!({
        "frames": frames.n, "d_in": frames.d, "d_sae": sae.d_sae, "sae": sae.path,
        "threshold_f1": o.threshold, "baseline_density": density,
        "seconds_read": t_read, "seconds_encode": t_encode, "seconds_metrics": elapsed - t_read - t_encode,
        "classes": tier_names.iter().zip(&class_names).map(|(t, c)| (t.clone(), json!(c.len()))).collect::<serde_json::Map<_, _>>(),
    });
    for (t, tier) in tier_names.iter().enumerate() {
        let s: serde_json::Map<String, serde_json::Value> =
            evals.iter().map(|e| (e.name.to_string(), tier_summary(e, t, o.threshold))).collect();
        let frac = |name: &str| s[name]["fraction_selective"].as_f64().unwrap_or(0.0);
        let beats = frac("sae") > frac("raw_dims").max(frac("random_dirs"));
        summary[tier] = json!({"representations": s, "sae_beats_baselines": beats});
    }

    let mut best = Table::new(
        "best_class",
        &[
            "representation",
            "unit",
            "tier",
            "density",
            "best_class",
            "precision",
            "recall",
            "f1",
            "auroc",
            "selectivity",
        ],
    );
    for e in evals {
        for (t, tier) in tier_names.iter().enumerate() {
            for (u, m) in e.metrics[t].iter().enumerate() {
                let density = m.active as f64 / frames.n as f64;
                let row: Vec<Value> = match m.best() {
                    Some((c, b)) => vec![
                        e.name.into(),
                        u.into(),
                        tier.as_str().into(),
                        density.into(),
                        class_names[t][c].as_str().into(),
                        b.precision.into(),
                        b.recall.into(),
                        b.f1.into(),
                        b.auroc.into(),
                        b.selectivity.into(),
                    ],
                    None => vec![
                        e.name.into(),
                        u.into(),
                        tier.as_str().into(),
                        density.into(),
                        Value::Null,
                        Value::Null,
                        Value::Null,
                        Value::Null,
                        Value::Null,
                        Value::Null,
                    ],
                };
                best.push(row);
            }
        }
    }
    let mut full = Table::new(
        "sae_unit_class",
        &[
            "unit",
            "tier",
            "class",
            "class_frames",
            "precision",
            "recall",
            "f1",
            "auroc",
            "selectivity",
            "mean_in",
            "mean_out",
        ],
    );
    for (t, tier) in tier_names.iter().enumerate() {
        for (u, m) in sae_eval.metrics[t].iter().enumerate().filter(|(u, _)| sae_eval.live[*u]) {
            for (c, cm) in m.per_class.iter().enumerate() {
                full.push(vec![
                    u.into(),
                    tier.as_str().into(),
                    class_names[t][c].as_str().into(),
                    (tiers[t].counts[c] as usize).into(),
                    cm.precision.into(),
                    cm.recall.into(),
                    cm.f1.into(),
                    cm.auroc.into(),
                    cm.selectivity.into(),
                    cm.mean_in.into(),
                    cm.mean_out.into(),
                ]);
            }
        }
    }

    let mut figures = Vec::new();
    if let Some(p) = tier_names.iter().position(|t| t == "phones") {
        figures.push(unit_class_heatmap(&sae_eval, p, &class_names[p], o.heatmap_units)?);
    }
    let best_f1 = |e: &Evaluation, t: usize| -> Vec<f64> {
        e.metrics[t].iter().zip(&e.live).filter(|(_, &l)| l).map(|(m, _)| m.best().map_or(0.0, |b| b.1.f1)).collect()
    };
    for (t, tier) in tier_names.iter().enumerate() {
        let panels: Vec<(String, Vec<f64>)> =
            evals.iter().map(|e| (format!("{tier}: best F1, {}", e.name), best_f1(e, t))).collect();
        let panels: Vec<(&str, Vec<f64>)> = panels.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        figures.push(histograms_png(&format!("best_f1_{tier}"), &panels, 20)?);
    }
    // Throughput of the whole analysis: reading, encoding, metrics, tables and figures.
    let seconds = t0.elapsed().as_secs_f64();
    summary["seconds"] = json!(seconds);
    summary["frames_per_second"] = json!(frames.n as f64 / seconds);
    Ok(Report { summary, tables: vec![best, full], figures })
}

/// F1 of the `max_units` SAE units with the highest best phone F1 against every phone, rows
/// ordered by best phone so that selective units form a diagonal.
fn unit_class_heatmap(
    e: &Evaluation,
    tier: usize,
    classes: &[String],
    max_units: usize,
) -> Result<audiosae_plugin_api::Figure, Error> {
    let mut units: Vec<(usize, usize, f64)> = e.metrics[tier]
        .iter()
        .enumerate()
        .filter(|(u, _)| e.live[*u])
        .filter_map(|(u, m)| m.best().map(|(c, b)| (u, c, b.f1)))
        .collect();
    units.sort_by(|a, b| b.2.total_cmp(&a.2));
    units.truncate(max_units);
    units.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)));
    let values: Vec<f32> =
        units.iter().flat_map(|&(u, _, _)| e.metrics[tier][u].per_class.iter().map(|m| m.f1 as f32)).collect();
    let rows: Vec<String> = units.iter().map(|(u, _, _)| format!("unit {u}")).collect();
    let title = format!("F1 of the {} most phone-selective SAE units", units.len());
    heatmap_png(
        "unit_phone_f1",
        &Heatmap { title: &title, row_labels: &rows, col_labels: classes, values: &values, lo: 0.0, hi: 1.0 },
    )
}
