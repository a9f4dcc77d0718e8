//! Evaluation on held-out items with SAELens's definitions:
//!
//! * `mse`: mean over frames and dimensions of (x − x̂)²;
//! * `fvu`: Σ‖x − x̂‖² / Σ‖x − x̄‖² over all evaluated frames (x̄ their mean);
//!   `explained_variance = 1 − fvu`;
//! * `l0`, `l1`: mean count and mean sum of |h| of the active latents per frame;
//! * `dead_frac`: latents that never fire; `dense_frac`: latents firing on more than 10% of frames;
//! * `cosine`: mean cos(x, x̂); `shrinkage`: mean ‖x̂‖ / ‖x‖ (SAELens `l2_ratio`);
//! * the log10 feature-density histogram (PNG) and, per item, the error of every frame
//!   (`per_item_error.csv`, and a PNG of the worst items over time).

use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::arch::Sae;
use super::data::ItemSource;
use super::fidelity::Fidelity;
use super::plots::{density_histogram_png, line_panels_png, Series};

/// Density above which a latent counts as dense.
const DENSE_DENSITY: f64 = 0.1;
/// Items drawn in the per-item error figure.
const WORST_ITEMS_PLOTTED: usize = 5;

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct ItemError {
    pub item: String,
    pub frames: usize,
    /// Mean over the item's frames of ‖x − x̂‖² / ‖x‖².
    pub mean_rel_error: f64,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct EvalMetrics {
    pub items: usize,
    pub frames: usize,
    pub mse: f64,
    pub fvu: f64,
    pub explained_variance: f64,
    pub l0: f64,
    pub l1: f64,
    pub dead_frac: f64,
    pub dense_frac: f64,
    pub cosine: f64,
    pub shrinkage: f64,
    /// Items sorted worst first.
    #[serde(default)]
    pub worst_items: Vec<ItemError>,
    /// What the model says with the SAE spliced in (`eval --model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fidelity: Option<Fidelity>,
}

/// Writes `eval.json` into `dir`.
pub fn write_metrics(metrics: &EvalMetrics, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("eval.json");
    std::fs::write(&path, serde_json::to_string_pretty(metrics)?).with_context(|| format!("writing {}", path.display()))
}

/// Evaluates `sae` (trained on inputs × `input_scale`) on up to `max_frames` frames of the
/// items; writes `eval.json`, figures and `per_item_error.csv` to `out_dir` when given.
pub fn evaluate(
    sae: &Sae,
    input_scale: f64,
    items: &dyn ItemSource,
    max_frames: usize,
    out_dir: Option<&Path>,
) -> Result<EvalMetrics> {
    let _g = tch::no_grad_guard();
    let device = sae.device();
    let d_sae = sae.cfg.d_sae as i64;
    let dd = (Kind::Double, device);
    let (mut sse, mut sum_x, mut sum_sq) =
        (Tensor::zeros([], dd), Tensor::zeros([sae.cfg.d_in as i64], dd), Tensor::zeros([], dd));
    let (mut l0, mut l1, mut cos, mut shrink) =
        (Tensor::zeros([], dd), Tensor::zeros([], dd), Tensor::zeros([], dd), Tensor::zeros([], dd));
    let mut fired = Tensor::zeros([d_sae], dd);
    let mut frames = 0usize;
    let mut per_item: Vec<(String, Vec<f64>)> = Vec::new();
    for i in 0..items.n_items() {
        if frames >= max_frames {
            break;
        }
        let (name, x) = items.item(i)?;
        let n = (x.size()[0] as usize).min(max_frames - frames);
        if n == 0 {
            continue;
        }
        let x = x.narrow(0, 0, n as i64).to_device(device).to_kind(Kind::Float);
        let h = sae.encode(&(&x * input_scale));
        let x_hat = sae.decode(&h) / input_scale;
        let err = (&x - &x_hat).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
        let x_norm = x.norm_scalaropt_dim(2, [1], false).to_kind(Kind::Double);
        let xh_norm = x_hat.norm_scalaropt_dim(2, [1], false).to_kind(Kind::Double);
        sse += err.sum(Kind::Double);
        sum_x += x.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
        sum_sq += x.to_kind(Kind::Double).square().sum(Kind::Double);
        let active = h.gt(0.0);
        l0 += active.sum(Kind::Double);
        l1 += h.abs().sum(Kind::Double);
        fired += active.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
        let eps = 1e-12;
        cos += ((&x * &x_hat).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
            / (&x_norm * &xh_norm).clamp_min(eps))
        .sum(Kind::Double);
        shrink += (&xh_norm / x_norm.clamp_min(eps)).sum(Kind::Double);
        let rel: Vec<f64> = Vec::<f64>::try_from((err / x_norm.square().clamp_min(eps)).to_device(Device::Cpu))?;
        per_item.push((name, rel));
        frames += n;
    }
    ensure!(frames > 0, "evaluation: the held-out items have no frames");
    let nf = frames as f64;
    let scalar = |t: &Tensor| t.double_value(&[]);
    let total_var = scalar(&sum_sq) - scalar(&sum_x.square().sum(Kind::Double)) / nf;
    let fvu = scalar(&sse) / total_var.max(1e-30);
    let density: Vec<f64> = Vec::<f64>::try_from((fired / nf).to_device(Device::Cpu))?;
    let mut worst: Vec<ItemError> = per_item
        .iter()
        .map(|(name, rel)| ItemError {
            item: name.clone(),
            frames: rel.len(),
            mean_rel_error: rel.iter().sum::<f64>() / rel.len() as f64,
        })
        .collect();
    worst.sort_by(|a, b| b.mean_rel_error.total_cmp(&a.mean_rel_error));
    let metrics = EvalMetrics {
        items: per_item.len(),
        frames,
        mse: scalar(&sse) / (nf * sae.cfg.d_in as f64),
        fvu,
        explained_variance: 1.0 - fvu,
        l0: scalar(&l0) / nf,
        l1: scalar(&l1) / nf,
        dead_frac: density.iter().filter(|&&d| d == 0.0).count() as f64 / d_sae as f64,
        dense_frac: density.iter().filter(|&&d| d > DENSE_DENSITY).count() as f64 / d_sae as f64,
        cosine: scalar(&cos) / nf,
        shrinkage: scalar(&shrink) / nf,
        worst_items: worst,
        fidelity: None,
    };
    if let Some(dir) = out_dir {
        write_metrics(&metrics, dir)?;
        let log_density: Vec<f64> = density.iter().map(|d| (d + 1e-10).log10()).collect();
        density_histogram_png(
            &dir.join("feature_density.png"),
            &log_density,
            &format!("feature density ({frames} held-out frames)"),
        )?;
        let hop = items.frame_hop_s();
        let mut csv = String::from("item,frame,time_s,rel_error\n");
        for (name, rel) in &per_item {
            for (f, r) in rel.iter().enumerate() {
                let t = hop.map_or(String::new(), |h| format!("{:.3}", f as f64 * h));
                csv.push_str(&format!("{name},{f},{t},{r}\n"));
            }
        }
        std::fs::write(dir.join("per_item_error.csv"), csv)?;
        let series: Vec<Series> = metrics
            .worst_items
            .iter()
            .take(WORST_ITEMS_PLOTTED)
            .filter_map(|w| per_item.iter().find(|(n, _)| *n == w.item))
            .map(|(name, rel)| Series {
                label: name.clone(),
                points: rel.iter().enumerate().map(|(f, &r)| (hop.map_or(f as f64, |h| f as f64 * h), r)).collect(),
            })
            .collect();
        let x_label = if hop.is_some() { "time (s)" } else { "frame" };
        line_panels_png(
            &dir.join("per_item_error.png"),
            false,
            &[("worst-reconstructed items", x_label, "‖x − x̂‖² / ‖x‖²", false, series)],
        )?;
    }
    Ok(metrics)
}
