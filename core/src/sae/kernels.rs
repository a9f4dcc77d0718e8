//! CPU kernels over raw `f32` slices for the sparse training step and the optimizer, where
//! libtorch's CPU ops either densify (a top-k backward scatters into `[B, d_sae]`) or take many
//! passes over memory (AdamW op by op, each pass allocating a temporary).
//!
//! Every kernel splits its output into disjoint contiguous parts, one thread each, and each
//! output element is summed in a fixed order, so results do not depend on the thread count.

use std::thread;

use tch::{Device, Kind, Tensor};

/// Whether `t` is a contiguous CPU `f32` tensor, the layout the kernels read.
pub fn is_cpu_f32(t: &Tensor) -> bool {
    t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous()
}

/// The elements of a contiguous CPU `f32` tensor.
pub fn f32s(t: &Tensor) -> &[f32] {
    assert!(is_cpu_f32(t), "kernel input must be a contiguous CPU f32 tensor");
    // SAFETY: the tensor is contiguous, holds numel f32 values and outlives the borrow.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const f32, t.numel()) }
}

/// The elements of a contiguous CPU `f32` tensor, for writing. The caller must hold no other
/// view of the same storage while the slice lives.
pub fn f32s_mut(t: &mut Tensor) -> &mut [f32] {
    assert!(is_cpu_f32(t), "kernel output must be a contiguous CPU f32 tensor");
    // SAFETY: as in `f32s`; the exclusive borrow stands for exclusive access to the storage.
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel()) }
}

/// The elements of a contiguous CPU `i64` tensor.
pub fn i64s(t: &Tensor) -> &[i64] {
    assert!(t.device() == Device::Cpu && t.kind() == Kind::Int64 && t.is_contiguous(), "indices must be CPU i64");
    // SAFETY: as in `f32s`.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const i64, t.numel()) }
}

/// Threads per kernel: libtorch's intra-op setting, so that one knob governs both.
fn threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

/// `parts + 1` ascending bounds that split `0..n` evenly.
fn even_bounds(n: usize, parts: usize) -> Vec<usize> {
    (0..=parts).map(|i| n * i / parts).collect()
}

/// Splits `s` into consecutive parts of the given lengths.
fn split_parts<T>(mut s: &mut [T], lens: impl IntoIterator<Item = usize>) -> Vec<&mut [T]> {
    lens.into_iter()
        .map(|n| {
            let (part, rest) = std::mem::take(&mut s).split_at_mut(n);
            s = rest;
            part
        })
        .collect()
}

/// Runs `f(first_row, part)` on its own thread for each part of `out` (rows of `width`)
/// between consecutive row `bounds`.
fn par_rows<T: Send, F>(out: &mut [T], width: usize, bounds: &[usize], f: F)
where
    F: Fn(usize, &mut [T]) + Sync,
{
    let parts = split_parts(out, bounds.windows(2).map(|w| (w[1] - w[0]) * width));
    thread::scope(|s| {
        for (&first, part) in bounds.iter().zip(parts) {
            let f = &f;
            s.spawn(move || f(first, part));
        }
    });
}

/// Dot product with 16 independent partial sums (vectorisable; fixed summation order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0f32; LANES];
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out += c · src`.
fn axpy(out: &mut [f32], c: f32, src: &[f32]) {
    for (o, s) in out.iter_mut().zip(src) {
        *o += c * s;
    }
}

/// The `[B, k]` pairs `p = b·k + j` of a top-k selection grouped by latent: the pairs of
/// latent `i` are `order[start[i]..start[i + 1]]`, ascending (a stable counting sort). Walking
/// latents in order reads and writes each `[d_sae, d]` row once, with the `[B, d]` frame rows
/// (a few MiB) staying in cache.
pub struct LatentPairs {
    start: Vec<usize>,
    order: Vec<u32>,
    k: usize,
}

impl LatentPairs {
    pub fn new(idx: &[i64], k: usize, d_sae: usize) -> LatentPairs {
        let mut start = vec![0usize; d_sae + 1];
        for &i in idx {
            start[i as usize + 1] += 1;
        }
        for i in 0..d_sae {
            start[i + 1] += start[i];
        }
        let mut next = start.clone();
        let mut order = vec![0u32; idx.len()];
        for (p, &i) in idx.iter().enumerate() {
            order[next[i as usize]] = p as u32;
            next[i as usize] += 1;
        }
        LatentPairs { start, order, k }
    }

    fn d_sae(&self) -> usize {
        self.start.len() - 1
    }

    fn pairs_of(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.order[self.start[i]..self.start[i + 1]].iter().map(|&p| p as usize)
    }

    /// Row `p / k` (the frame of pair `p`) of a `[B, d]` matrix.
    fn frame<'a>(&self, m: &'a [f32], p: usize, d: usize) -> &'a [f32] {
        let b = p / self.k;
        &m[b * d..(b + 1) * d]
    }

    /// Latent bounds that give each of `parts` threads about the same number of pairs.
    fn balanced_bounds(&self, parts: usize) -> Vec<usize> {
        let (h, total) = (self.d_sae(), self.order.len());
        let mut bounds: Vec<usize> =
            (0..=parts).map(|t| self.start.partition_point(|&s| s < total * t / parts).min(h)).collect();
        bounds[parts] = h;
        bounds
    }

    /// Sets `out[i] = Σ coef[p] · src[p / k]` over the pairs `p` of each latent `i` (zero for
    /// a latent without pairs): a weight gradient as a sparse sum of outer products, with
    /// `out` `[d_sae, d]` and `src` `[B, d]`.
    pub fn set_rows(&self, out: &mut [f32], coef: &[f32], src: &[f32]) {
        self.set_rows_on(threads(), out, coef, src)
    }

    fn set_rows_on(&self, threads: usize, out: &mut [f32], coef: &[f32], src: &[f32]) {
        let d = out.len() / self.d_sae();
        par_rows(out, d, &self.balanced_bounds(threads), |i0, part| {
            for (i, row) in (i0..).zip(part.chunks_exact_mut(d)) {
                row.fill(0.0);
                for p in self.pairs_of(i) {
                    axpy(row, coef[p], self.frame(src, p, d));
                }
            }
        });
    }

    /// Backward of the sparse decoder `x̂[b] = Σ_j w[b, j] D[idx[b, j]]` whose weights were
    /// divided by the row norms, `w = h / n[idx]`, given `g = ∂loss/∂x̂` `[B, d]`. Returns
    /// `dw[p] = D[i] · g[b]` in pair order and sets, over the pairs `p` of each latent `i`,
    /// `g_dec[i] = Σ w[p] g[b] − c[i] (Σ dw[p] w[p]) D[i]`, where `c[i]` (`1 / n[i]²`, or 0
    /// where the norm's floor holds) carries the path through `n[i]`.
    pub fn decoder_backward(&self, dec: &[f32], c: &[f32], w: &[f32], g: &[f32], g_dec: &mut [f32]) -> Vec<f32> {
        self.decoder_backward_on(threads(), dec, c, w, g, g_dec)
    }

    fn decoder_backward_on(
        &self,
        threads: usize,
        dec: &[f32],
        c: &[f32],
        w: &[f32],
        g: &[f32],
        g_dec: &mut [f32],
    ) -> Vec<f32> {
        let d = g_dec.len() / self.d_sae();
        let bounds = self.balanced_bounds(threads);
        // dw in latent order, so that each thread writes one contiguous part.
        let mut dw_sorted = vec![0f32; self.order.len()];
        let rows = split_parts(g_dec, bounds.windows(2).map(|b| (b[1] - b[0]) * d));
        let dws = split_parts(&mut dw_sorted, bounds.windows(2).map(|b| self.start[b[1]] - self.start[b[0]]));
        thread::scope(|s| {
            for ((&i0, rows), dws) in bounds.iter().zip(rows).zip(dws) {
                s.spawn(move || {
                    let mut dws = dws.iter_mut();
                    for (i, row) in (i0..).zip(rows.chunks_exact_mut(d)) {
                        let di = &dec[i * d..(i + 1) * d];
                        row.fill(0.0);
                        let mut along = 0f32;
                        for p in self.pairs_of(i) {
                            let gb = self.frame(g, p, d);
                            let dwp = dot(di, gb);
                            *dws.next().expect("one dw per pair") = dwp;
                            along += dwp * w[p];
                            axpy(row, w[p], gb);
                        }
                        axpy(row, -c[i] * along, di);
                    }
                });
            }
        });
        let mut dw = vec![0f32; self.order.len()];
        for (&p, v) in self.order.iter().zip(dw_sorted) {
            dw[p as usize] = v;
        }
        dw
    }
}

/// Scalars of one AdamW update, in torch's single-tensor formulation.
#[derive(Clone, Copy)]
pub struct AdamWStep {
    /// `1 − lr · weight_decay`.
    pub decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// `lr / (1 − beta1^t)`.
    pub step_size: f64,
    /// `sqrt(1 − beta2^t)`.
    pub bc2_sqrt: f64,
    pub eps: f64,
    /// Factor on the gradient (gradient clipping).
    pub grad_scale: f64,
}

/// torch's AdamW update in one pass over memory, on the scaled gradient `g ← g·grad_scale`:
/// `p ← p·decay`, `m ← lerp(m, g, 1 − β1)`, `v ← β2·v + (1 − β2)·g²`,
/// `p ← p − step_size · m / (√v / bc2_sqrt + eps)`, in `f32` as torch's CPU kernels compute it.
pub fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWStep) {
    let n = p.len();
    assert!(g.len() == n && m.len() == n && v.len() == n, "AdamW: tensors of different sizes");
    let bounds = even_bounds(n, threads());
    let lens = || bounds.windows(2).map(|w| w[1] - w[0]);
    let parts = split_parts(p, lens()).into_iter().zip(split_parts(m, lens())).zip(split_parts(v, lens()));
    thread::scope(|scope| {
        for (((p, m), v), w) in parts.zip(bounds.windows(2)) {
            let g = &g[w[0]..w[1]];
            scope.spawn(move || adamw_part(p, g, m, v, s));
        }
    });
}

fn adamw_part(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], s: AdamWStep) {
    let [decay, beta2, step_size, bc2_sqrt, eps, scale] =
        [s.decay, s.beta2, s.step_size, s.bc2_sqrt, s.eps, s.grad_scale].map(|x| x as f32);
    let (w1, w2) = ((1.0 - s.beta1) as f32, (1.0 - s.beta2) as f32);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g * scale;
        *m = lerp(*m, g, w1);
        *v = *v * beta2 + w2 * (g * g);
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p = *p * decay - step_size * (*m / denom);
    }
}

/// torch's `lerp`: `a + w (b − a)` for `|w| < 0.5`, else `b − (b − a)(1 − w)`.
fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn randn(shape: &[i64]) -> Tensor {
        Tensor::randn(shape, (Kind::Float, Device::Cpu))
    }

    /// Top-k-like pairs over `h` latents of which the last has none.
    fn pairs(b: usize, k: usize, h: usize) -> (Tensor, LatentPairs) {
        let idx = Tensor::randint((h - 1) as i64, [(b * k) as i64], (Kind::Int64, Device::Cpu));
        let pairs = LatentPairs::new(i64s(&idx), k, h);
        (idx, pairs)
    }

    #[test]
    fn set_rows_matches_index_add_and_ignores_the_thread_count() {
        tch::manual_seed(1);
        let (b, k, h, d) = (37usize, 5usize, 23usize, 19i64);
        let (idx, pairs) = pairs(b, k, h);
        let (coef, src) = (randn(&[(b * k) as i64]), randn(&[b as i64, d]));
        let outs: Vec<Tensor> = [1, 2, 3]
            .map(|t| {
                let mut out = randn(&[h as i64, d]);
                pairs.set_rows_on(t, f32s_mut(&mut out), f32s(&coef), f32s(&src));
                out
            })
            .into();
        let rows = src.repeat_interleave_self_int(k as i64, 0, None) * coef.unsqueeze(1);
        let want = Tensor::zeros([h as i64, d], (Kind::Float, Device::Cpu)).index_add(0, &idx, &rows);
        assert!(outs[0].allclose(&want, 1e-5, 1e-6, false));
        assert!(outs.iter().all(|o| o.equal(&outs[0])), "depends on the thread count");
    }

    #[test]
    fn decoder_backward_matches_its_definition_and_ignores_the_thread_count() {
        tch::manual_seed(2);
        let (b, k, h, d) = (29usize, 4usize, 17usize, 40i64);
        let (idx, pairs) = pairs(b, k, h);
        let (dec, c, w, g) =
            (randn(&[h as i64, d]), randn(&[h as i64]), randn(&[(b * k) as i64]), randn(&[b as i64, d]));
        let runs: Vec<(Tensor, Tensor)> = [1, 2, 3]
            .map(|t| {
                let mut g_dec = randn(&[h as i64, d]);
                let dw = pairs.decoder_backward_on(t, f32s(&dec), f32s(&c), f32s(&w), f32s(&g), f32s_mut(&mut g_dec));
                (Tensor::from_slice(&dw), g_dec)
            })
            .into();
        let g_rows = g.repeat_interleave_self_int(k as i64, 0, None);
        let dw = (dec.index_select(0, &idx) * &g_rows).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        let zeros = || Tensor::zeros([h as i64], (Kind::Float, Device::Cpu));
        let along = zeros().index_add(0, &idx, &(&dw * &w));
        let g_dec =
            Tensor::zeros([h as i64, d], (Kind::Float, Device::Cpu)).index_add(0, &idx, &(g_rows * w.unsqueeze(1)))
                - &dec * (c * along).unsqueeze(1);
        assert!(runs[0].0.allclose(&dw, 1e-5, 1e-5, false), "dw differs");
        assert!(runs[0].1.allclose(&g_dec, 1e-4, 1e-5, false), "g_dec differs");
        assert!(runs.iter().all(|(a, b)| a.equal(&runs[0].0) && b.equal(&runs[0].1)), "depends on the thread count");
    }
}
