//! Capacity and seed sweeps: a grid over width × k × seed, one independent run per point (run
//! them in a loop, or one per Slurm array task with `--index`), then one table and two figures:
//! FVU vs width at fixed k, and FVU vs L0.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::eval::EvalMetrics;
use super::plots::{line_panels_png, Series};

/// One point of the grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub width: usize,
    pub k: usize,
    pub seed: u64,
}

impl SweepPoint {
    /// Run folder name inside the sweep folder.
    pub fn dir_name(&self) -> String {
        format!("w{}-k{}-s{}", self.width, self.k, self.seed)
    }
}

/// All points, width-major, in a fixed order (the Slurm array index is a position in it).
pub fn grid(widths: &[usize], ks: &[usize], seeds: &[u64]) -> Vec<SweepPoint> {
    let mut out = Vec::new();
    for &width in widths {
        for &k in ks {
            for &seed in seeds {
                out.push(SweepPoint { width, k, seed });
            }
        }
    }
    out
}

/// A finished run's row of the sweep table.
#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    pub point: SweepPoint,
    pub metrics: Option<EvalMetrics>,
}

/// Reads every run's `eval/eval.json` and writes `sweep.csv`, `fvu_vs_width.png` and
/// `fvu_vs_l0.png` into `dir`. Missing runs are listed in the table without metrics.
pub fn collect(dir: &Path, points: &[SweepPoint]) -> Result<Vec<SweepRow>> {
    let rows: Vec<SweepRow> =
        points.iter().map(|p| SweepRow { point: p.clone(), metrics: read_metrics(&run_dir(dir, p)) }).collect();
    let mut csv = String::from(
        "width,k,seed,fvu,explained_variance,mse,l0,l1,dead_frac,dense_frac,cosine,shrinkage,\
         ce_loss_recovered,ce_loss_recovered_mean_ablation,kl,wer_sae_vs_clean\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in &rows {
        let p = &r.point;
        match &r.metrics {
            Some(m) => {
                let f = m.fidelity.as_ref();
                csv.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                    p.width,
                    p.k,
                    p.seed,
                    m.fvu,
                    m.explained_variance,
                    m.mse,
                    m.l0,
                    m.l1,
                    m.dead_frac,
                    m.dense_frac,
                    m.cosine,
                    m.shrinkage,
                    opt(f.and_then(|f| f.ce_loss_recovered)),
                    opt(f.and_then(|f| f.ce_loss_recovered_mean_ablation)),
                    opt(f.map(|f| f.kl)),
                    opt(f.and_then(|f| f.wer_sae_vs_clean)),
                ))
            }
            None => csv.push_str(&format!("{},{},{},,,,,,,,,,,,,\n", p.width, p.k, p.seed)),
        }
    }
    std::fs::write(dir.join("sweep.csv"), csv)
        .with_context(|| format!("writing {}", dir.join("sweep.csv").display()))?;
    let done: Vec<(&SweepPoint, &EvalMetrics)> =
        rows.iter().filter_map(|r| r.metrics.as_ref().map(|m| (&r.point, m))).collect();
    if done.is_empty() {
        return Ok(rows);
    }
    // Mean over seeds per (width, k).
    let mut ks: Vec<usize> = done.iter().map(|(p, _)| p.k).collect();
    ks.sort_unstable();
    ks.dedup();
    let mut widths: Vec<usize> = done.iter().map(|(p, _)| p.width).collect();
    widths.sort_unstable();
    widths.dedup();
    // Mean over seeds at (width, k) of a metric the runs may lack (None when none has it).
    let mean = |w: usize, k: usize, f: &dyn Fn(&EvalMetrics) -> Option<f64>| {
        let v: Vec<f64> = done.iter().filter(|(p, _)| p.width == w && p.k == k).filter_map(|(_, m)| f(m)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let by_k: Vec<Series> = ks
        .iter()
        .map(|&k| Series {
            label: format!("k = {k}"),
            points: widths.iter().filter_map(|&w| mean(w, k, &|m| Some(m.fvu)).map(|f| (w as f64, f))).collect(),
        })
        .collect();
    line_panels_png(
        &dir.join("fvu_vs_width.png"),
        true,
        &[("FVU vs width at fixed k (mean over seeds)", "latents", "FVU", true, by_k)],
    )?;
    let by_w: Vec<Series> = widths
        .iter()
        .map(|&w| Series {
            label: format!("width {w}"),
            points: ks
                .iter()
                .filter_map(|&k| Some((mean(w, k, &|m| Some(m.l0))?, mean(w, k, &|m| Some(m.fvu))?)))
                .collect(),
        })
        .collect();
    line_panels_png(
        &dir.join("fvu_vs_l0.png"),
        false,
        &[("FVU vs L0 (held-out, mean over seeds)", "L0", "FVU", true, by_w)],
    )?;
    // Downstream fidelity, when the runs were evaluated with --model.
    let recovered = |m: &EvalMetrics| m.fidelity.as_ref().and_then(|f| f.ce_loss_recovered_mean_ablation);
    if done.iter().any(|(_, m)| recovered(m).is_some()) {
        let vs_width: Vec<Series> = ks
            .iter()
            .map(|&k| Series {
                label: format!("k = {k}"),
                points: widths.iter().filter_map(|&w| Some((w as f64, mean(w, k, &recovered)?))).collect(),
            })
            .collect();
        let vs_l0: Vec<Series> = widths
            .iter()
            .map(|&w| Series {
                label: format!("width {w}"),
                points: ks
                    .iter()
                    .filter_map(|&k| Some((mean(w, k, &|m| Some(m.l0))?, mean(w, k, &recovered)?)))
                    .collect(),
            })
            .collect();
        line_panels_png(
            &dir.join("ce_recovered.png"),
            false,
            &[
                (
                    "CE loss recovered vs width (mean ablation, mean over seeds)",
                    "latents",
                    "recovered",
                    false,
                    vs_width,
                ),
                ("CE loss recovered vs L0", "L0", "recovered", false, vs_l0),
            ],
        )?;
    }
    Ok(rows)
}

/// The held-out metrics of a finished run (`RUN/eval/eval.json`), if there are any.
pub fn read_metrics(run: &Path) -> Option<EvalMetrics> {
    let text = std::fs::read_to_string(run.join("eval").join("eval.json")).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn run_dir(dir: &Path, p: &SweepPoint) -> PathBuf {
    dir.join(p.dir_name())
}

/// True for a folder a sweep wrote (its table, or a run folder `wW-kK-sS`), which a sweep with
/// the same OUT resumes or extends.
pub fn is_sweep_dir(dir: &Path) -> bool {
    let is_run_name = |name: &str| {
        let mut parts = name.split('-');
        let mut field = |prefix: char| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(prefix))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        field('w') && field('k') && field('s') && parts.next().is_none()
    };
    dir.join("sweep.csv").is_file()
        || std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| e.path().is_dir() && is_run_name(&e.file_name().to_string_lossy()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_order_is_width_major() {
        let g = grid(&[64, 128], &[4, 8], &[0, 1]);
        assert_eq!(g.len(), 8);
        assert_eq!(g[0], SweepPoint { width: 64, k: 4, seed: 0 });
        assert_eq!(g[3], SweepPoint { width: 64, k: 8, seed: 1 });
        assert_eq!(g[4].width, 128);
    }
}
