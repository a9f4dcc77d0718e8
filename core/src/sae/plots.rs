//! Training logs and the SAE figures (plotters, in the style of `crate::plot`).

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use super::train::LogRow;
use crate::plot::TAB10;

/// One curve of a line chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// Range of the finite values, padded a little (log axes: positive values only).
fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let v: Vec<f64> = values.filter(|v| v.is_finite() && (!log || *v > 0.0)).collect();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return if log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        // Whole decades: plotters labels a log axis only at powers of ten.
        (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)))
    } else {
        let pad = ((hi - lo) * 0.05).max(hi.abs().max(lo.abs()) * 0.05).max(1e-3);
        (lo - pad, hi + pad)
    }
}

/// Line chart panels stacked vertically: `(title, x label, y label, log y, series)`.
pub fn line_panels_png(path: &Path, log_x: bool, panels: &[(&str, &str, &str, bool, Vec<Series>)]) -> Result<()> {
    let root = BitMapBackend::new(path, (900, 300 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    for (area, (title, xl, yl, log_y, series)) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        let xs = || series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let (x0, x1) = range(xs(), log_x);
        let (y0, y1) = range(ys(), *log_y);
        let mut builder = ChartBuilder::on(area);
        builder.caption(*title, ("sans-serif", 18)).margin(8).x_label_area_size(32).y_label_area_size(60);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart.map_err(err)?;
                chart.configure_mesh().x_desc(*xl).y_desc(*yl).draw().map_err(err)?;
                for (i, s) in series.iter().enumerate() {
                    let c = TAB10[i % TAB10.len()];
                    let pts: Vec<(f64, f64)> =
                        s.points.iter().copied().filter(|p| p.1.is_finite() && (!*log_y || p.1 > 0.0)).collect();
                    chart
                        .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                        .map_err(err)?
                        .label(s.label.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
                    chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 2, c.filled()))).map_err(err)?;
                }
                if series.len() > 1 {
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.8))
                        .border_style(BLACK)
                        .draw()
                        .map_err(err)?;
                }
            }};
        }
        match (log_x, log_y) {
            (false, false) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1)),
            (false, true) => draw!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())),
            (true, false) => draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)),
            (true, true) => draw!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())),
        }
    }
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Histogram of log10 feature densities (dead latents, at −10, in their own bar).
pub fn density_histogram_png(path: &Path, log10_density: &[f64], title: &str) -> Result<()> {
    let (lo, hi, bins) = (-10.0f64, 0.0f64, 50usize);
    let mut counts = vec![0u32; bins];
    for &v in log10_density {
        let b = (((v.clamp(lo, hi) - lo) / (hi - lo)) * bins as f64) as usize;
        counts[b.min(bins - 1)] += 1;
    }
    let root = BitMapBackend::new(path, (900, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.1 + 1.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0f64..top)
        .map_err(err)?;
    chart.configure_mesh().x_desc("log10 feature density").y_desc("latents").draw().map_err(err)?;
    let w = (hi - lo) / bins as f64;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x = lo + i as f64 * w;
            Rectangle::new([(x, 0.0), (x + w * 0.95, c as f64)], TAB10[0].filled())
        }))
        .map_err(err)?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// `train_log.csv`, `train_log.json` and `training_curve.png` in `dir`.
pub fn write_train_logs(dir: &Path, log: &[LogRow]) -> Result<()> {
    let mut csv = String::from("step,frames,loss,mse,fvu,l0,aux,dead_frac,lr,grad_norm,frames_per_s\n");
    for r in log {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            r.step, r.frames, r.loss, r.mse, r.fvu, r.l0, r.aux, r.dead_frac, r.lr, r.grad_norm, r.frames_per_s
        ));
    }
    std::fs::write(dir.join("train_log.csv"), csv)?;
    std::fs::write(dir.join("train_log.json"), serde_json::to_string_pretty(log)?)?;
    let curve = |f: fn(&LogRow) -> f64, label: &str| {
        vec![Series { label: label.into(), points: log.iter().map(|r| (r.step as f64, f(r))).collect() }]
    };
    line_panels_png(
        &dir.join("training_curve.png"),
        false,
        &[
            ("loss", "step", "loss", true, curve(|r| r.loss, "loss")),
            ("fraction of variance unexplained", "step", "FVU", true, curve(|r| r.fvu, "FVU")),
            ("L0 (active latents per frame)", "step", "L0", false, curve(|r| r.l0, "L0")),
            ("dead latents", "step", "fraction", false, curve(|r| r.dead_frac, "dead")),
        ],
    )
}
