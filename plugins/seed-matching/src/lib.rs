//! audiosae plugin `seed-matching`: how reproducible are SAE units across training seeds?
//!
//! For every pair of the SAEs given with `--sae` (two or more, same `d_in`): the cosine matrix of
//! their decoder atoms, the optimal one-to-one assignment (exact: Kuhn–Munkres on small SAEs,
//! Jonker–Volgenant with a dual certificate on large ones), the mean matched cosine and the fractions
//! above 0.5/0.7/0.9 against three baselines (best match without the one-to-one constraint, random
//! pairing, and the optimal matching against a random Gaussian dictionary of the same size), and
//! the mean Pearson correlation (MCC) of matched units' activations over store frames.

mod matching;

use std::time::Instant;

use audiosae_plugin_api::{export_plugin, AnalysisContext, Error, Params, Plugin, Report, SaeInfo, Table};
use audiosae_plugin_figures::histograms_png;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use matching::{cosine_matrix, gaussian_atoms, match_atoms, Matching, PairCorrelations, Solver, THRESHOLDS};

#[derive(Default)]
pub struct SeedMatching;

impl Plugin for SeedMatching {
    fn name(&self) -> &str {
        "seed-matching"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn describe(&self) -> &str {
        "Optimal one-to-one matching of the decoder atoms of 2+ SAEs (repeat --sae): matched cosines, \
         fractions > 0.5/0.7/0.9, activation MCC on store frames. Params: solver=auto|km|jv, \
         frames=N for the MCC (50000, 0 = skip), seed (0, random-pairing baseline), bins (40)."
    }

    fn run(&self, ctx: &AnalysisContext, params: &Params) -> Result<Report, Error> {
        let opts = Options {
            solver: params.get("solver", Solver::Auto)?,
            frames: params.get("frames", 50_000)?,
            seed: params.get("seed", 0)?,
            bins: params.get("bins", 40)?,
        };
        params.check_all_used()?;
        run(ctx, &opts)
    }
}

export_plugin!(SeedMatching);

struct Options {
    solver: Solver,
    frames: usize,
    seed: u64,
    bins: usize,
}

fn run(ctx: &AnalysisContext, o: &Options) -> Result<Report, Error> {
    let saes = ctx.saes()?;
    if saes.len() < 2 {
        return Err(Error::new(format!("seed-matching needs two or more SAEs (repeat --sae), got {}", saes.len())));
    }
    if let Some(s) = saes.iter().find(|s| s.d_in != saes[0].d_in) {
        return Err(Error::new(format!(
            "{} has d_in {} but {} has d_in {}: seeds must share the input space",
            s.path, s.d_in, saes[0].path, saes[0].d_in
        )));
    }
    let d = saes[0].d_in;
    let atoms: Vec<Vec<f32>> = (0..saes.len()).map(|s| ctx.decoder_atoms(s)).collect::<Result<_, _>>()?;
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);

    let mut matchings = Vec::new();
    for a in 0..saes.len() {
        for b in a + 1..saes.len() {
            let t0 = Instant::now();
            let (n_a, n_b) = (saes[a].d_sae, saes[b].d_sae);
            let cos = cosine_matrix(&atoms[a], &atoms[b], d);
            let t_cos = t0.elapsed().as_secs_f64();
            let mut perm: Vec<usize> = (0..n_a.max(n_b)).collect();
            perm.shuffle(&mut rng);
            let m = match_atoms(&cos, n_a, n_b, o.solver, &perm)?;
            let seconds = (t_cos, t0.elapsed().as_secs_f64() - t_cos);
            // Null: what the optimal matching finds between A and an unrelated dictionary of B's size.
            let null_cos = cosine_matrix(&atoms[a], &gaussian_atoms(n_b, d, &mut rng), d);
            let null_cosine = match_atoms(&null_cos, n_a, n_b, o.solver, &perm)?.mean_cosine;
            ctx.progress("matching", matchings.len() as u64 + 1, (saes.len() * (saes.len() - 1) / 2) as u64);
            matchings.push(((a, b), m, null_cosine, seconds));
        }
    }
    let correlations = activation_correlations(ctx, &saes, &matchings, o.frames)?;

    let mut summary_pairs = Vec::new();
    let mut pair_table = Table::new(
        "pairs",
        &[
            "sae_a",
            "sae_b",
            "matched",
            "mean_cosine",
            "frac_above_0.5",
            "frac_above_0.7",
            "frac_above_0.9",
            "nearest_mean_cosine",
            "random_mean_cosine",
            "null_mean_cosine",
            "mcc",
            "mcc_units",
            "solver",
            "certified_gap",
            "cosine_s",
            "assignment_s",
        ],
    );
    let mut tables = Vec::new();
    let mut panels = Vec::new();
    for (((a, b), m, null_cosine, (t_cos, t_assign)), (corr, frames)) in matchings.iter().zip(&correlations) {
        let defined: Vec<f64> = corr.iter().flatten().copied().collect();
        let mcc = (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
        pair_table.push(vec![
            (*a).into(),
            (*b).into(),
            m.pairs.len().into(),
            m.mean_cosine.into(),
            m.above[0].into(),
            m.above[1].into(),
            m.above[2].into(),
            m.nearest_mean_cosine.into(),
            m.random_mean_cosine.into(),
            (*null_cosine).into(),
            mcc.into(),
            defined.len().into(),
            m.solver.into(),
            m.certified_gap.into(),
            (*t_cos).into(),
            (*t_assign).into(),
        ]);
        summary_pairs.push(serde_json::json!({
            "sae_a": saes[*a].path, "sae_b": saes[*b].path, "matched": m.pairs.len(),
            "mean_cosine": m.mean_cosine,
            "frac_above": THRESHOLDS.iter().zip(m.above).map(|(t, f)| (t.to_string(), serde_json::json!(f))).collect::<serde_json::Map<_, _>>(),
            "nearest_mean_cosine": m.nearest_mean_cosine, "random_mean_cosine": m.random_mean_cosine,
            "null_mean_cosine": null_cosine, "mcc": mcc, "mcc_units": defined.len(), "mcc_frames": frames,
            "solver": m.solver, "certified_gap": m.certified_gap,
        }));
        let mut t = Table::new(&format!("matches_{a}_{b}"), &["unit_a", "unit_b", "cosine", "activation_corr"]);
        for (&(u, w, c), r) in m.pairs.iter().zip(corr) {
            t.push(vec![u.into(), w.into(), c.into(), (*r).into()]);
        }
        tables.push(t);
        panels.push((
            format!("SAE {a} vs {b}: matched cosine"),
            m.pairs.iter().map(|p| p.2 as f64).collect::<Vec<f64>>(),
        ));
    }
    tables.insert(0, pair_table);
    let panel_refs: Vec<(&str, Vec<f64>)> = panels.iter().map(|(t, v)| (t.as_str(), v.clone())).collect();
    let figure = histograms_png("matched_cosines", &panel_refs, o.bins.max(1))?;
    let mean_over_pairs = |f: &dyn Fn(&serde_json::Value) -> Option<f64>| {
        let v: Vec<f64> = summary_pairs.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let summary = serde_json::json!({
        "saes": saes.iter().map(|s| &s.path).collect::<Vec<_>>(),
        "mean_matched_cosine": mean_over_pairs(&|p| p["mean_cosine"].as_f64()),
        "mean_mcc": mean_over_pairs(&|p| p["mcc"].as_f64()),
        "pairs": summary_pairs,
    });
    Ok(Report { summary, tables, figures: vec![figure] })
}

/// The SAE pair, its matching, the null mean cosine and the (cosine, assignment) seconds.
type PairMatching = ((usize, usize), Matching, f64, (f64, f64));

/// Pearson r per matched pair (`None` for constant units) and the number of frames used.
type PairCorrelation = (Vec<Option<f64>>, u64);

/// Per pair of SAEs: the Pearson r of every matched pair's activations over the first `max_frames`
/// frames of the store (item order), and the number of frames used.
fn activation_correlations(
    ctx: &AnalysisContext,
    saes: &[SaeInfo],
    matchings: &[PairMatching],
    max_frames: usize,
) -> Result<Vec<PairCorrelation>, Error> {
    let mut acc: Vec<PairCorrelations> =
        matchings.iter().map(|(_, m, _, _)| PairCorrelations::new(m.pairs.len())).collect();
    if max_frames > 0 {
        let items = ctx.items()?;
        let d = saes[0].d_in;
        let mut used = 0;
        for (i, item) in items.iter().enumerate() {
            if used >= max_frames {
                break;
            }
            let take = item.n_frames.min(max_frames - used);
            let frames = ctx.frames(i)?;
            let x = &frames[..take * d];
            let codes: Vec<Vec<f32>> = (0..saes.len()).map(|s| ctx.encode(s, x)).collect::<Result<_, _>>()?;
            for (((a, b), m, _, _), acc) in matchings.iter().zip(&mut acc) {
                acc.add(&m.pairs, &codes[*a], saes[*a].d_sae, &codes[*b], saes[*b].d_sae);
            }
            used += take;
            ctx.progress("activations", used as u64, max_frames.min(items.iter().map(|it| it.n_frames).sum()) as u64);
        }
    }
    Ok(acc.iter().map(|a| (a.correlations(), a.frames())).collect())
}
