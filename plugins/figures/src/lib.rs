//! PNG figures for plugins, drawn in memory (a plugin returns bytes, the host writes files):
//! labelled heat maps and histograms with plotters, and raw matrices (log-mel patches) pixel by
//! pixel.

use audiosae_plugin_api::{Error, Figure, FigureFormat};
use plotters::prelude::*;

/// Viridis-like ramp from 5 anchors of matplotlib's viridis; `x` in `[0, 1]`.
pub fn viridis(x: f64) -> [u8; 3] {
    const A: [(f64, f64, f64); 5] =
        [(68., 1., 84.), (59., 82., 139.), (33., 145., 140.), (94., 201., 98.), (253., 231., 37.)];
    let x = if x.is_finite() { x.clamp(0.0, 1.0) * 4.0 } else { 0.0 };
    let i = (x.floor() as usize).min(3);
    let f = x - i as f64;
    let lerp = |a: f64, b: f64| (a + (b - a) * f) as u8;
    [lerp(A[i].0, A[i + 1].0), lerp(A[i].1, A[i + 1].1), lerp(A[i].2, A[i + 1].2)]
}

/// PNG bytes of an RGB8 image.
pub fn encode_png(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(rgb)?;
    Ok(out)
}

/// `values` `[rows, cols]` as an image, `scale` pixels per cell, row 0 at the bottom (a
/// spectrogram's lowest bin), colours spanning the matrix's own min..max.
pub fn matrix_png(values: &[f32], rows: usize, cols: usize, scale: usize) -> Result<Vec<u8>, Error> {
    let (lo, hi) = values.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let span = (hi - lo).max(1e-12) as f64;
    let (w, h) = (cols * scale, rows * scale);
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        let r = rows - 1 - y / scale;
        for x in 0..w {
            let c = viridis((values[r * cols + x / scale] - lo) as f64 / span);
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
        }
    }
    encode_png(w as u32, h as u32, &rgb)
}

fn draw_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::new(format!("drawing a figure: {e:?}"))
}

/// Draws into an in-memory bitmap of `size` and returns it as a PNG figure.
pub fn png_figure(
    name: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), Error>,
) -> Result<Figure, Error> {
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(Figure { name: name.to_string(), format: FigureFormat::Png, bytes: encode_png(size.0, size.1, &buf)? })
}

/// A heat map with labelled rows and columns (e.g. unit x phone), colours over `lo..hi`.
pub struct Heatmap<'a> {
    pub title: &'a str,
    pub row_labels: &'a [String],
    pub col_labels: &'a [String],
    /// `[rows, cols]`, row-major.
    pub values: &'a [f32],
    pub lo: f32,
    pub hi: f32,
}

pub fn heatmap_png(name: &str, m: &Heatmap) -> Result<Figure, Error> {
    let (rows, cols) = (m.row_labels.len(), m.col_labels.len());
    let cell = if rows.max(cols) > 80 { 8 } else { 16 };
    let size = ((cols * cell + 160).max(400) as u32, (rows * cell + 140).max(300) as u32);
    png_figure(name, size, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(m.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((0..cols).into_segmented(), (0..rows).into_segmented())
            .map_err(draw_err)?;
        // Labels at cell centres; row 0 at the top.
        let label_at = |labels: &[String], v: &SegmentValue<usize>, flip: bool| match v {
            SegmentValue::CenterOf(i) => {
                let i = if flip { labels.len().wrapping_sub(1).wrapping_sub(*i) } else { *i };
                labels.get(i).cloned().unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(cols.min(60))
            .y_labels(rows.min(60))
            .x_label_formatter(&|v| label_at(m.col_labels, v, false))
            .y_label_formatter(&|v| label_at(m.row_labels, v, true))
            .x_label_style(("sans-serif", 10).into_font().transform(FontTransform::Rotate90))
            .y_label_style(("sans-serif", 10))
            .draw()
            .map_err(draw_err)?;
        let span = (m.hi - m.lo).max(1e-12);
        chart
            .draw_series((0..rows).flat_map(|r| {
                (0..cols).map(move |c| {
                    let [red, g, b] = viridis(((m.values[r * cols + c] - m.lo) / span) as f64);
                    let y = rows - 1 - r;
                    Rectangle::new(
                        [
                            (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                        ],
                        RGBColor(red, g, b).filled(),
                    )
                })
            }))
            .map_err(draw_err)?;
        Ok(())
    })
}

/// Histograms side by side, one per `(title, values)`, each with `bins` bins over its range.
pub fn histograms_png(name: &str, panels: &[(&str, Vec<f64>)], bins: usize) -> Result<Figure, Error> {
    png_figure(name, (420 * panels.len().max(1) as u32, 340), |root| {
        for (area, (title, values)) in root.split_evenly((1, panels.len().max(1))).iter().zip(panels) {
            let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            let (lo, hi) = finite.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let (lo, hi) = if finite.is_empty() {
                (0.0, 1.0)
            } else if hi > lo {
                (lo, hi)
            } else {
                (lo - 0.5, hi + 0.5)
            };
            let width = (hi - lo) / bins as f64;
            let mut counts = vec![0u32; bins];
            for v in &finite {
                counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
            }
            let top = counts.iter().copied().max().unwrap_or(1).max(1);
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{title} (n={})", finite.len()), ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d(lo..hi, 0u32..top + top / 10 + 1)
                .map_err(draw_err)?;
            chart.configure_mesh().disable_mesh().draw().map_err(draw_err)?;
            chart
                .draw_series(counts.iter().enumerate().map(|(i, &n)| {
                    let x0 = lo + i as f64 * width;
                    Rectangle::new([(x0, 0), (x0 + width, n)], RGBColor(59, 82, 139).filled())
                }))
                .map_err(draw_err)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_png() {
        let m = matrix_png(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 2, 3, 4).unwrap();
        assert_eq!(&m[1..4], b"PNG");
        let labels: Vec<String> = vec!["a".into(), "b".into()];
        let h = Heatmap {
            title: "t",
            row_labels: &labels,
            col_labels: &labels,
            values: &[0.0, 1.0, 0.5, 0.2],
            lo: 0.0,
            hi: 1.0,
        };
        assert_eq!(&heatmap_png("h", &h).unwrap().bytes[1..4], b"PNG");
        assert_eq!(&histograms_png("x", &[("v", vec![1.0, 2.0, 2.5])], 10).unwrap().bytes[1..4], b"PNG");
    }
}
