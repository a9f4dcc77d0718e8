//! Line charts of per-step or per-frame measures, one line per condition.

use audiosae_plugin_api::{Error, Figure};
use audiosae_plugin_figures::png_figure;
use plotters::prelude::*;

fn draw_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::new(format!("drawing a figure: {e:?}"))
}

/// One named line of `(x, y)` points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A PNG with one line (and point markers) per series and a legend.
pub fn lines_png(name: &str, title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> Result<Figure, Error> {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (x_max, y_max) = all.fold((1.0f64, 0.0f64), |(x, y), p| (x.max(p.0), y.max(p.1)));
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    png_figure(name, (720, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(draw_err)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(draw_err)?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(draw_err)?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png() {
        let s = [Series { name: "a", points: vec![(0.0, 0.0), (1.0, 2.0)] }, Series { name: "b", points: vec![] }];
        assert_eq!(&lines_png("x", "t", "step", "KL", &s).unwrap().bytes[1..4], b"PNG");
    }
}
