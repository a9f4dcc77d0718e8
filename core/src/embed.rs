//! Low-dimensional views and clusterings of SAE codes and decoder atoms (notebook 03): PCA
//! (linfa-reduction), UMAP (umap-rs), k-means (linfa-clustering), clusterings scored against
//! reference labels (purity, NMI), and a scatter plot coloured by label.

use std::path::Path;

use crate::plot::TAB10;
use anyhow::{anyhow, ensure, Context, Result};
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use linfa_reduction::Pca;
use ndarray::{Array2, Axis};
use plotters::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

/// A 2-D tensor as an `f64` array (copied to the host).
pub fn tensor_rows(t: &Tensor) -> Result<Array2<f64>> {
    let (rows, cols) = t.size2()?;
    let data = Vec::<f64>::try_from(t.to_kind(Kind::Double).to_device(Device::Cpu).contiguous().flatten(0, -1))?;
    Ok(Array2::from_shape_vec((rows as usize, cols as usize), data)?)
}

/// A PCA projection.
pub struct Projection {
    /// `[rows, n]` coordinates on the leading components.
    pub coords: Array2<f64>,
    /// Each component's share of the total variance.
    pub variance_ratio: Vec<f64>,
}

/// Projects the rows of `x` onto their `n` leading principal components.
pub fn pca(x: &Array2<f64>, n: usize) -> Result<Projection> {
    let fit = Pca::params(n).fit(&DatasetBase::from(x.view()))?;
    let coords: Array2<f64> = fit.predict(x);
    let centred = x - &x.mean_axis(Axis(0)).context("pca: no rows")?;
    let total = centred.mapv(|v| v * v).sum().max(1e-30);
    let variance_ratio = fit.singular_values().iter().map(|s| s * s / total).collect();
    Ok(Projection { coords, variance_ratio })
}

/// Exact `k` nearest neighbours of every row by Euclidean distance, the row itself first:
/// `[rows * k]` indices and distances, row-major.
fn knn(x: &Array2<f32>, k: usize) -> (Vec<u32>, Vec<f32>) {
    const BLOCK: usize = 512;
    let n = x.nrows();
    let sq: Vec<f32> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
    let (mut idx, mut dist) = (Vec::with_capacity(n * k), Vec::with_capacity(n * k));
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let gram = x.slice(ndarray::s![start..end, ..]).dot(&x.t());
        for (r, g) in gram.rows().into_iter().enumerate() {
            let i = start + r;
            let mut d: Vec<(f32, u32)> =
                g.iter().enumerate().map(|(j, &gij)| ((sq[i] + sq[j] - 2.0 * gij).max(0.0), j as u32)).collect();
            d[i].0 = -1.0; // itself first, whatever the rounding
            d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
            d.truncate(k);
            d.sort_by(|a, b| a.0.total_cmp(&b.0));
            idx.extend(d.iter().map(|p| p.1));
            dist.extend(d.iter().map(|p| p.0.max(0.0).sqrt()));
        }
    }
    (idx, dist)
}

/// Euclidean distance and its gradient for umap-rs's generic layout path, which follows
/// umap-learn. (umap-rs 0.4.5's Euclidean fast path divides both forces by an extra squared
/// distance, which lets far clusters drift into each other.)
#[derive(Debug)]
struct Euclidean;

impl umap_rs::Metric for Euclidean {
    fn distance(&self, a: ndarray17::ArrayView1<f32>, b: ndarray17::ArrayView1<f32>) -> (f32, ndarray17::Array1<f32>) {
        let diff = &a - &b;
        let d = diff.dot(&diff).sqrt();
        (d, diff / (d + 1e-6))
    }
}

/// A 2-D UMAP embedding of the rows of `x` from their `n_neighbors` exact nearest neighbours,
/// `epochs` SGD epochs from the scaled 2-D PCA. umap-rs draws negative samples from an unseeded
/// generator, so layouts differ between runs in detail but not in structure.
pub fn umap(x: &Array2<f32>, n_neighbors: usize, epochs: usize) -> Result<Array2<f32>> {
    let (n, d) = x.dim();
    ensure!(n_neighbors >= 2 && n > n_neighbors, "umap: {n} rows need more than n_neighbors = {n_neighbors} >= 2");
    let (idx, dist) = knn(x, n_neighbors);
    let init = pca(&x.mapv(f64::from), 2)?.coords;
    let scale = 10.0 / init.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    // umap-rs takes ndarray 0.17 arrays; the workspace is on 0.16.
    let data = ndarray17::Array2::from_shape_vec((n, d), x.iter().copied().collect())?;
    let idx = ndarray17::Array2::from_shape_vec((n, n_neighbors), idx)?;
    let dist = ndarray17::Array2::from_shape_vec((n, n_neighbors), dist)?;
    let init = ndarray17::Array2::from_shape_vec((n, 2), init.iter().map(|v| (v * scale) as f32).collect())?;
    let config =
        umap_rs::UmapConfig { graph: umap_rs::GraphParams { n_neighbors, ..Default::default() }, ..Default::default() };
    let manifold = umap_rs::Umap::new(config.clone()).learn_manifold(data.view(), idx.view(), dist.view());
    let mut opt = umap_rs::Optimizer::new(manifold, init, epochs, &config, umap_rs::MetricType::Generic);
    // One epoch per call: each call refreshes the copy of the layout that forces are computed
    // against (umap-learn moves a single layout in place).
    while opt.remaining_epochs() > 0 {
        opt.step_epochs(1, &Euclidean);
    }
    Ok(Array2::from_shape_vec((n, 2), opt.embedding().iter().copied().collect())?)
}

/// k-means (k-means++ initialisation, best of 4 seeded runs) of the rows of `x`: each row's
/// cluster.
pub fn kmeans(x: &Array2<f64>, k: usize, seed: u64) -> Result<Vec<usize>> {
    let model = KMeans::params_with_rng(k, ChaCha8Rng::seed_from_u64(seed))
        .n_runs(4)
        .max_n_iterations(300)
        .fit(&DatasetBase::from(x.view()))?;
    Ok(model.predict(x).to_vec())
}

/// `[clusters, labels]` co-occurrence counts.
fn contingency(a: &[usize], b: &[usize]) -> Array2<f64> {
    assert_eq!(a.len(), b.len(), "two labelings of different lengths");
    let rows = a.iter().max().map_or(0, |m| m + 1);
    let cols = b.iter().max().map_or(0, |m| m + 1);
    let mut t = Array2::zeros((rows, cols));
    for (&i, &j) in a.iter().zip(b) {
        t[[i, j]] += 1.0;
    }
    t
}

/// Fraction of items whose cluster's most common label is their own label.
pub fn purity(clusters: &[usize], labels: &[usize]) -> f64 {
    let t = contingency(clusters, labels);
    let hits: f64 = t.rows().into_iter().map(|r| r.fold(0f64, |m, &v| m.max(v))).sum();
    hits / clusters.len().max(1) as f64
}

fn entropy(counts: impl Iterator<Item = f64>, n: f64) -> f64 {
    counts.filter(|&c| c > 0.0).map(|c| -(c / n) * (c / n).ln()).sum()
}

/// Normalised mutual information with the arithmetic-mean normalisation (scikit-learn's
/// default): I(a; b) / ((H(a) + H(b)) / 2). 1 for the same partition under any renaming, near 0
/// for independent ones; two one-cluster labelings count as identical.
pub fn nmi(a: &[usize], b: &[usize]) -> f64 {
    let t = contingency(a, b);
    let n = a.len() as f64;
    let (ra, rb) = (t.sum_axis(Axis(1)), t.sum_axis(Axis(0)));
    let (ha, hb) = (entropy(ra.iter().copied(), n), entropy(rb.iter().copied(), n));
    if ha + hb == 0.0 {
        return 1.0;
    }
    let mut mi = 0.0;
    for ((i, j), &c) in t.indexed_iter() {
        if c > 0.0 {
            mi += c / n * (c * n / (ra[i] * rb[j])).ln();
        }
    }
    (mi / ((ha + hb) / 2.0)).max(0.0)
}

/// 2-D points coloured by label (`names[labels[i]]`, with its count, in the legend); points with
/// a non-finite coordinate are left out.
pub fn scatter_png(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    points: &[(f64, f64)],
    labels: &[usize],
    names: &[&str],
) -> Result<()> {
    ensure!(points.len() == labels.len(), "scatter: {} points, {} labels", points.len(), labels.len());
    let err = |e: &dyn std::fmt::Display| anyhow!("{e}");
    let finite: Vec<usize> =
        (0..points.len()).filter(|&i| points[i].0.is_finite() && points[i].1.is_finite()).collect();
    let span = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) =
            finite.iter().map(|&i| f(&points[i])).fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
        let pad = ((hi - lo) * 0.05).max(1e-6);
        if lo <= hi {
            (lo - pad)..(hi + pad)
        } else {
            -1.0..1.0
        }
    };
    let root = BitMapBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(span(|p| p.0), span(|p| p.1))
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc(axes.0).y_desc(axes.1).draw().map_err(|e| err(&e))?;
    for (class, name) in names.iter().enumerate() {
        let members: Vec<(f64, f64)> = finite.iter().filter(|&&i| labels[i] == class).map(|&i| points[i]).collect();
        if members.is_empty() {
            continue;
        }
        let c = TAB10[class % TAB10.len()];
        chart
            .draw_series(members.iter().map(|&p| Circle::new(p, 2, c.mix(0.6).filled())))
            .map_err(|e| err(&e))?
            .label(format!("{name} ({})", members.len()))
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// `n` points of dimension `d` around each centre, with noise of standard deviation `sd`.
    fn blobs(centres: &[Vec<f64>], n: usize, sd: f64, seed: u64) -> (Array2<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = centres[0].len();
        let mut x = Array2::zeros((centres.len() * n, d));
        let mut labels = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for r in 0..n {
                for j in 0..d {
                    x[[c * n + r, j]] = centre[j] + sd * (rng.gen::<f64>() - 0.5) * 12f64.sqrt();
                }
                labels.push(c);
            }
        }
        (x, labels)
    }

    #[test]
    fn pca_recovers_a_planted_direction() {
        // Rank-1 signal along u plus small isotropic noise in 6 dimensions.
        let u = [1.0, -2.0, 0.5, 0.0, 3.0, 1.0];
        let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
        let (mut x, _) = blobs(&[vec![0.0; 6]], 400, 0.05, 1);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for mut row in x.rows_mut() {
            let t: f64 = rng.gen_range(-5.0..5.0);
            row.iter_mut().zip(u).for_each(|(v, ui)| *v += t * ui / norm);
        }
        let p = pca(&x, 2).unwrap();
        assert!(p.variance_ratio[0] > 0.99 && p.variance_ratio[1] < 0.01, "{:?}", p.variance_ratio);
        // The first coordinate is the projection onto ±u (up to the mean).
        let proj: Vec<f64> = x.rows().into_iter().map(|r| r.iter().zip(u).map(|(a, b)| a * b / norm).sum()).collect();
        let c: Vec<f64> = p.coords.column(0).to_vec();
        let corr = correlation(&proj, &c);
        assert!(corr.abs() > 0.999, "correlation {corr}");
    }

    fn correlation(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn nmi_is_one_for_renamed_labels_and_near_zero_for_independent_ones() {
        let a: Vec<usize> = (0..3000).map(|i| i % 5).collect();
        let renamed: Vec<usize> = a.iter().map(|&l| (l + 2) % 5).collect();
        assert!((nmi(&a, &renamed) - 1.0).abs() < 1e-12);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let independent: Vec<usize> = (0..3000).map(|_| rng.gen_range(0..4)).collect();
        assert!(nmi(&a, &independent) < 0.01, "{}", nmi(&a, &independent));
        assert_eq!(nmi(&[0, 0, 0], &[1, 1, 1]), 1.0);
        // Hand-computed: a = [0 0 1 1], b = [0 0 0 1]: I = 1.5 ln2 - 0.75 ln3, H(a) = ln2,
        // H(b) = 2 ln2 - 0.75 ln3.
        let (l2, l3) = (2f64.ln(), 3f64.ln());
        let want = (1.5 * l2 - 0.75 * l3) / ((l2 + 2.0 * l2 - 0.75 * l3) / 2.0);
        assert!((nmi(&[0, 0, 1, 1], &[0, 0, 0, 1]) - want).abs() < 1e-12);
    }

    #[test]
    fn purity_counts_each_clusters_majority() {
        // Cluster 0: labels 0 0 1 (majority 2); cluster 1: 1 1 (2); cluster 2: 2 0 1 (1) -> 5/8.
        let clusters = [0, 0, 0, 1, 1, 2, 2, 2];
        let labels = [0, 0, 1, 1, 1, 2, 0, 1];
        assert!((purity(&clusters, &labels) - 5.0 / 8.0).abs() < 1e-12);
        assert_eq!(purity(&labels, &labels), 1.0);
    }

    #[test]
    fn kmeans_separates_well_separated_blobs() {
        let centres = vec![vec![0.0, 0.0, 0.0], vec![10.0, 0.0, 0.0], vec![0.0, 10.0, 5.0]];
        let (x, labels) = blobs(&centres, 100, 0.5, 4);
        let clusters = kmeans(&x, 3, 0).unwrap();
        assert_eq!(purity(&clusters, &labels), 1.0);
        assert!((nmi(&clusters, &labels) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn umap_keeps_two_far_clusters_apart() {
        let mut far = vec![0.0; 10];
        far[0] = 40.0;
        let (x, labels) = blobs(&[vec![0.0; 10], far], 60, 1.0, 5);
        let e = umap(&x.mapv(|v| v as f32), 10, 200).unwrap();
        // Every point's nearest other point in the embedding is from its own cluster.
        for i in 0..e.nrows() {
            let nearest = (0..e.nrows())
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let d = |j: usize| (e[[i, 0]] - e[[j, 0]]).powi(2) + (e[[i, 1]] - e[[j, 1]]).powi(2);
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert_eq!(labels[nearest], labels[i], "point {i}");
        }
        // And the clusters' centres are further apart than either cluster is wide.
        let centre = |c: usize| {
            let rows: Vec<usize> = (0..e.nrows()).filter(|&i| labels[i] == c).collect();
            let m = |k: usize| rows.iter().map(|&i| e[[i, k]] as f64).sum::<f64>() / rows.len() as f64;
            (m(0), m(1), rows)
        };
        let (a, b) = (centre(0), centre(1));
        let gap = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
        let radius = |c: &(f64, f64, Vec<usize>)| {
            c.2.iter()
                .map(|&i| ((e[[i, 0]] as f64 - c.0).powi(2) + (e[[i, 1]] as f64 - c.1).powi(2)).sqrt())
                .fold(0.0, f64::max)
        };
        assert!(gap > radius(&a) + radius(&b), "gap {gap}, radii {} {}", radius(&a), radius(&b));
    }

    #[test]
    fn knn_puts_each_row_first_and_sorts_by_distance() {
        let x = Array2::from_shape_vec((4, 1), vec![0.0f32, 1.0, 3.0, 7.0]).unwrap();
        let (idx, dist) = knn(&x, 3);
        assert_eq!(idx, [0, 1, 2, 1, 0, 2, 2, 1, 0, 3, 2, 1]);
        assert_eq!(&dist[..3], &[0.0, 1.0, 3.0]);
    }

    #[test]
    fn scatter_writes_a_png() {
        let dir = std::env::temp_dir().join(format!("audiosae-embed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scatter.png");
        let pts = [(0.0, 0.0), (1.0, 1.0), (f64::NAN, 0.0)];
        scatter_png(&path, "t", ("x", "y"), &pts, &[0, 1, 1], &["a", "b"]).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
