//! PNG figures (plotters, bitmap backend).

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use tch::{Kind, Tensor};

use crate::timing::FrameTiming;

/// A matrix to draw as a heat map: `rows x cols`, row-major, columns are time frames.
pub struct Heatmap<'a> {
    pub title: String,
    pub y_label: &'a str,
    pub values: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
    pub timing: FrameTiming,
}

impl Heatmap<'_> {
    /// From a `[frames, dim]` tensor (transposed so that time runs along x).
    pub fn from_frames<'a>(
        title: String,
        y_label: &'a str,
        frames: &Tensor,
        timing: FrameTiming,
    ) -> Result<Heatmap<'a>> {
        let t = frames.to_kind(Kind::Float).to_device(tch::Device::Cpu).tr().contiguous();
        let (rows, cols) = t.size2()?;
        Ok(Heatmap {
            title,
            y_label,
            values: Vec::<f32>::try_from(t.flatten(0, -1))?,
            rows: rows as usize,
            cols: cols as usize,
            timing,
        })
    }
}

/// Viridis-like ramp from 5 anchors of matplotlib's viridis.
fn viridis(x: f64) -> RGBColor {
    const A: [(f64, f64, f64); 5] =
        [(68., 1., 84.), (59., 82., 139.), (33., 145., 140.), (94., 201., 98.), (253., 231., 37.)];
    let x = x.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let lerp = |a: f64, b: f64| (a + (b - a) * f) as u8;
    RGBColor(lerp(A[i].0, A[i + 1].0), lerp(A[i].1, A[i + 1].1), lerp(A[i].2, A[i + 1].2))
}

/// A white canvas of `size` pixels that presents to the PNG at `path`, its folder created.
fn png_canvas(path: &Path, size: (u32, u32)) -> Result<DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// Draws heat maps stacked vertically, sharing a time axis in seconds.
pub fn heatmaps_png(path: &Path, panels: &[Heatmap<'_>]) -> Result<()> {
    let root = png_canvas(path, (1000, 320 * panels.len() as u32))?;
    for (area, p) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        draw_heatmap(area, p)?;
    }
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn draw_heatmap<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>, p: &Heatmap<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let t0 = p.timing.start(0);
    let t1 = p.timing.start(p.cols);
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(t0..t1, 0f64..p.rows as f64)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time (s)")
        .y_desc(p.y_label)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Robust colour limits: 1st..99th percentile.
    let mut sorted: Vec<f32> = p.values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let (lo, hi) = if sorted.is_empty() {
        (0.0, 1.0)
    } else {
        (sorted[sorted.len() / 100] as f64, sorted[sorted.len() * 99 / 100] as f64)
    };
    let span = (hi - lo).max(1e-12);
    chart
        .draw_series((0..p.rows).flat_map(|r| (0..p.cols).map(move |c| (r, c))).map(|(r, c)| {
            let v = p.values[r * p.cols + c] as f64;
            let x0 = p.timing.start(c);
            Rectangle::new([(x0, r as f64), (x0 + p.timing.hop_s, r as f64 + 1.0)], viridis((v - lo) / span).filled())
        }))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// matplotlib's tab10, the categorical colours of every plot.
pub const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Alternating light colours for neighbouring segments.
fn pastel(i: usize) -> RGBColor {
    const P: [RGBColor; 6] = [
        RGBColor(174, 199, 232),
        RGBColor(255, 187, 120),
        RGBColor(152, 223, 138),
        RGBColor(255, 152, 150),
        RGBColor(197, 176, 213),
        RGBColor(196, 156, 148),
    ];
    P[i % P.len()]
}

/// One labelled interval of an alignment tier, in seconds.
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub label: String,
}

impl Segment {
    /// Runs of equal per-frame labels (e.g. from `frame_labels`) as segments: a run spans its
    /// first frame's start to its last frame's end.
    pub fn runs(labels: &[String], timing: FrameTiming) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            let (start, end) = (timing.start(i), timing.start(i + 1));
            match out.last_mut() {
                Some(s) if s.label == *l => s.end = end,
                _ => out.push(Segment { start, end, label: l.clone() }),
            }
        }
        out
    }
}

/// A heat map (e.g. the log-mel of a clip) above an alignment tier drawn as labelled bars on the
/// same time axis, so that frames can be read against phones or words.
pub fn heatmap_with_tier_png(path: &Path, map: &Heatmap<'_>, tier_name: &str, segments: &[Segment]) -> Result<()> {
    let root = png_canvas(path, (1000, 460))?;
    let (top, bottom) = root.split_vertically(330);
    draw_heatmap(&top, map)?;
    draw_tier(&bottom, (map.timing.start(0), map.timing.start(map.cols)), tier_name, segments)?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A per-frame value (e.g. a reconstruction error) as a line over time, above an alignment tier
/// on the same time axis. Frame `i` is drawn at its centre.
pub fn line_with_tier_png(
    path: &Path,
    title: &str,
    y_label: &str,
    values: &[f64],
    timing: FrameTiming,
    tier_name: &str,
    segments: &[Segment],
) -> Result<()> {
    let root = png_canvas(path, (1000, 400))?;
    let (top, bottom) = root.split_vertically(270);
    let (t0, t1) = (timing.start(0), timing.start(values.len()));
    let hi = values.iter().copied().filter(|v| v.is_finite()).fold(0f64, f64::max).max(1e-12) * 1.05;
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(t0..t1, 0f64..hi)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("time (s)").y_desc(y_label).draw().map_err(|e| anyhow::anyhow!("{e}"))?;
    let points = values.iter().enumerate().map(|(i, &v)| (timing.center(i), v));
    chart.draw_series(LineSeries::new(points, TAB10[0].stroke_width(2))).map_err(|e| anyhow::anyhow!("{e}"))?;
    draw_tier(&bottom, (t0, t1), tier_name, segments)?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// An alignment tier as labelled bars over the time span `t0..t1` (silence in grey).
fn draw_tier<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (t0, t1): (f64, f64),
    tier_name: &str,
    segments: &[Segment],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(t0..t1, 0f64..1f64)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(0)
        .x_desc("time (s)")
        .y_desc(tier_name)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, s) in segments.iter().filter(|s| s.end > t0 && s.start < t1).enumerate() {
        let (a, b) = (s.start.max(t0), s.end.min(t1));
        let fill = if s.label == "sil" || s.label.is_empty() { RGBColor(235, 235, 235) } else { pastel(i) };
        chart
            .draw_series(std::iter::once(Rectangle::new([(a, 0.05), (b, 0.95)], fill.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(std::iter::once(Text::new(s.label.clone(), ((a + b) / 2.0 - 0.01, 0.6), ("sans-serif", 13))))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_equal_neighbouring_labels() {
        let labels: Vec<String> = ["sil", "AA", "AA", "T", "AA"].iter().map(|s| s.to_string()).collect();
        let runs = Segment::runs(&labels, FrameTiming { hop_s: 0.02, offset_s: -0.01 });
        let got: Vec<(&str, f64, f64)> = runs.iter().map(|s| (s.label.as_str(), s.start, s.end)).collect();
        let want = [("sil", -0.01, 0.01), ("AA", 0.01, 0.05), ("T", 0.05, 0.07), ("AA", 0.07, 0.09)];
        for ((l, a, b), (wl, wa, wb)) in got.iter().zip(want) {
            assert_eq!(*l, wl);
            assert!((a - wa).abs() < 1e-12 && (b - wb).abs() < 1e-12, "{l}: {a} {b}");
        }
        assert_eq!(got.len(), want.len());
    }

    #[test]
    fn line_with_tier_writes_a_png() {
        let path = std::env::temp_dir().join(format!("audiosae-line-tier-{}.png", std::process::id()));
        let seg = [Segment { start: 0.0, end: 0.1, label: "AA".into() }];
        line_with_tier_png(&path, "t", "err", &[0.1, 0.3, 0.2], FrameTiming::ENCODER, "phones", &seg).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
        std::fs::remove_file(path).unwrap();
    }
}
