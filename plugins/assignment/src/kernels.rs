//! The two row scans that are nearly all of Jonker–Volgenant's time: relaxing every column through
//! one row in the shortest-path search, and finding a row's two cheapest columns in augmenting row
//! reduction. x86-64 CPUs with AVX2 get explicit SIMD kernels (the compiler does not vectorise a fused
//! update + argmin); other CPUs get the portable loops, and tests check that both give the same answer.

use crate::Score;

/// Relaxes every column `j` through row `i`: `dist[j] = min(dist[j], h − s_ij − v_j)` (cost = −score),
/// recording `i` in `pred[j]` where it improves. Blocked columns have `v_j = −∞` and stay at +∞.
/// Returns the column of smallest distance (the lowest on ties) and that distance.
pub(crate) fn relax<T: Score>(
    r: &[T],
    h: f64,
    i: usize,
    v: &[f64],
    dist: &mut [f64],
    pred: &mut [usize],
) -> (usize, f64) {
    assert!(v.len() == r.len() && dist.len() == r.len() && pred.len() == r.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked above) and the four slices have the same length.
        return unsafe { avx2::relax(r, h, i, v, dist, pred) };
    }
    relax_portable(r, h, i, v, dist, pred)
}

/// The two smallest reduced costs `−s_ij − v_j` of a row in (value, column) order, with their columns:
/// `(u1, j1, u2, j2)`. Needs at least two columns.
pub(crate) fn two_smallest_reduced<T: Score>(r: &[T], v: &[f64]) -> (f64, usize, f64, usize) {
    assert!(v.len() == r.len() && r.len() >= 2);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked above) and both slices have the same length.
        return unsafe { avx2::two_smallest_reduced(r, v) };
    }
    two_smallest_portable(r, v)
}

pub(crate) fn two_smallest_portable<T: Score>(r: &[T], v: &[f64]) -> (f64, usize, f64, usize) {
    let (mut u1, mut j1, mut u2, mut j2) = (f64::INFINITY, 0, f64::INFINITY, 0);
    for (j, (&s, &vj)) in r.iter().zip(v).enumerate() {
        let h = -s.into() - vj;
        if h < u2 {
            if h >= u1 {
                (u2, j2) = (h, j);
            } else {
                (u2, j2, u1, j1) = (u1, j1, h, j);
            }
        }
    }
    (u1, j1, u2, j2)
}

pub(crate) fn relax_portable<T: Score>(
    r: &[T],
    h: f64,
    i: usize,
    v: &[f64],
    dist: &mut [f64],
    pred: &mut [usize],
) -> (usize, f64) {
    let (mut best, mut best_at) = (f64::INFINITY, 0);
    for j in 0..r.len() {
        let nd = h - r[j].into() - v[j];
        if nd < dist[j] {
            dist[j] = nd;
            pred[j] = i;
        }
        if dist[j] < best {
            best = dist[j];
            best_at = j;
        }
    }
    (best_at, best)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use crate::Score;

    /// Four scores widened to f64.
    trait Load4: Score {
        /// # Safety
        /// `p` must point to 4 readable values and the CPU must have AVX2.
        unsafe fn load4(p: *const Self) -> __m256d;
    }

    impl Load4 for f32 {
        #[inline(always)]
        unsafe fn load4(p: *const f32) -> __m256d {
            _mm256_cvtps_pd(_mm_loadu_ps(p))
        }
    }

    impl Load4 for f64 {
        #[inline(always)]
        unsafe fn load4(p: *const f64) -> __m256d {
            _mm256_loadu_pd(p)
        }
    }

    /// `r` as the concrete element type `U`, or `None`.
    fn as_slice_of<T: Score, U: Score>(r: &[T]) -> Option<&[U]> {
        use std::any::TypeId;
        // SAFETY: T and U are the same type when their TypeIds are equal.
        (TypeId::of::<T>() == TypeId::of::<U>())
            .then(|| unsafe { std::slice::from_raw_parts(r.as_ptr() as *const U, r.len()) })
    }

    /// # Safety
    /// The CPU must have AVX2; both slices must have `r.len()` elements.
    pub(crate) unsafe fn two_smallest_reduced<T: Score>(r: &[T], v: &[f64]) -> (f64, usize, f64, usize) {
        if let Some(r) = as_slice_of::<T, f32>(r) {
            two_smallest_kernel(r, v)
        } else if let Some(r) = as_slice_of::<T, f64>(r) {
            two_smallest_kernel(r, v)
        } else {
            super::two_smallest_portable(r, v)
        }
    }

    /// Per lane the two smallest (value, column) pairs over two independent 4-lane chains, then a
    /// merge of the 8 lanes and the tail.
    #[target_feature(enable = "avx2")]
    unsafe fn two_smallest_kernel<T: Load4>(r: &[T], v: &[f64]) -> (f64, usize, f64, usize) {
        let n = r.len();
        let body = n - n % 8;
        let (rp, vp) = (r.as_ptr(), v.as_ptr());
        let zero = _mm256_setzero_pd();
        let step = _mm256_set1_pd(8.0);
        let mut at = [_mm256_set_pd(3.0, 2.0, 1.0, 0.0), _mm256_set_pd(7.0, 6.0, 5.0, 4.0)];
        let (mut m1, mut m2) = ([_mm256_set1_pd(f64::INFINITY); 2], [_mm256_set1_pd(f64::INFINITY); 2]);
        let (mut i1, mut i2) = ([zero; 2], [zero; 2]);
        let mut base = 0;
        while base < body {
            for c in 0..2 {
                let j = base + 4 * c;
                let h = _mm256_sub_pd(_mm256_sub_pd(zero, T::load4(rp.add(j))), _mm256_loadu_pd(vp.add(j)));
                let lt1 = _mm256_cmp_pd::<_CMP_LT_OQ>(h, m1[c]);
                let lt2 = _mm256_cmp_pd::<_CMP_LT_OQ>(h, m2[c]);
                // h < m1: (m1, m2) = (h, m1); else h < m2: m2 = h.
                m2[c] = _mm256_blendv_pd(m2[c], _mm256_blendv_pd(h, m1[c], lt1), lt2);
                i2[c] = _mm256_blendv_pd(i2[c], _mm256_blendv_pd(at[c], i1[c], lt1), lt2);
                m1[c] = _mm256_blendv_pd(m1[c], h, lt1);
                i1[c] = _mm256_blendv_pd(i1[c], at[c], lt1);
                at[c] = _mm256_add_pd(at[c], step);
            }
            base += 8;
        }
        let mut lanes = [[0f64; 4]; 8];
        for c in 0..2 {
            for (k, reg) in [m1[c], i1[c], m2[c], i2[c]].into_iter().enumerate() {
                _mm256_storeu_pd(lanes[4 * c + k].as_mut_ptr(), reg);
            }
        }
        // Candidates in (value, column) order; +∞ placeholders of lanes that saw < 2 columns lose.
        let mut best = [(f64::INFINITY, usize::MAX); 2];
        let mut offer = |cand: (f64, usize)| {
            let less = |a: (f64, usize), b: (f64, usize)| a.0 < b.0 || (a.0 == b.0 && a.1 < b.1);
            if less(cand, best[0]) {
                best = [cand, best[0]];
            } else if less(cand, best[1]) {
                best[1] = cand;
            }
        };
        for c in 0..2 {
            for k in 0..4 {
                let (l1, l2) = (&lanes[4 * c], &lanes[4 * c + 2]);
                if l1[k] < f64::INFINITY {
                    offer((l1[k], lanes[4 * c + 1][k] as usize));
                }
                if l2[k] < f64::INFINITY {
                    offer((l2[k], lanes[4 * c + 3][k] as usize));
                }
            }
        }
        for (jt, (&s, &vj)) in r[body..].iter().zip(&v[body..]).enumerate() {
            offer((-s.into() - vj, body + jt));
        }
        let [(u1, j1), (u2, j2)] = best;
        (u1, j1, u2, if j2 == usize::MAX { 0 } else { j2 })
    }

    /// # Safety
    /// The CPU must have AVX2; all slices must have `r.len()` elements.
    pub(crate) unsafe fn relax<T: Score>(
        r: &[T],
        h: f64,
        i: usize,
        v: &[f64],
        dist: &mut [f64],
        pred: &mut [usize],
    ) -> (usize, f64) {
        if let Some(r) = as_slice_of::<T, f32>(r) {
            relax_kernel(r, h, i, v, dist, pred)
        } else if let Some(r) = as_slice_of::<T, f64>(r) {
            relax_kernel(r, h, i, v, dist, pred)
        } else {
            super::relax_portable(r, h, i, v, dist, pred)
        }
    }

    /// Eight columns per iteration in two independent 4-lane chains; lane minima carry their column
    /// as an f64 (exact below 2^53). Lanes keep their first minimum, and the final reduction picks the
    /// lowest column among equal minima, so ties resolve exactly as in the portable loop.
    #[target_feature(enable = "avx2")]
    unsafe fn relax_kernel<T: Load4>(
        r: &[T],
        h: f64,
        i: usize,
        v: &[f64],
        dist: &mut [f64],
        pred: &mut [usize],
    ) -> (usize, f64) {
        let n = r.len();
        let body = n - n % 8;
        let (rp, vp, dp, pp) = (r.as_ptr(), v.as_ptr(), dist.as_mut_ptr(), pred.as_mut_ptr() as *mut __m256i);
        let hv = _mm256_set1_pd(h);
        let iv = _mm256_castsi256_pd(_mm256_set1_epi64x(i as i64));
        let step = _mm256_set1_pd(8.0);
        let mut at = [_mm256_set_pd(3.0, 2.0, 1.0, 0.0), _mm256_set_pd(7.0, 6.0, 5.0, 4.0)];
        let mut best = [_mm256_set1_pd(f64::INFINITY); 2];
        let mut best_at = [_mm256_setzero_pd(); 2];
        let mut base = 0;
        while base < body {
            for c in 0..2 {
                let j = base + 4 * c;
                let nd = _mm256_sub_pd(_mm256_sub_pd(hv, T::load4(rp.add(j))), _mm256_loadu_pd(vp.add(j)));
                let d = _mm256_loadu_pd(dp.add(j));
                let closer = _mm256_cmp_pd::<_CMP_LT_OQ>(nd, d);
                let d = _mm256_blendv_pd(d, nd, closer);
                _mm256_storeu_pd(dp.add(j), d);
                let p = _mm256_castsi256_pd(_mm256_loadu_si256(pp.add(j / 4)));
                _mm256_storeu_si256(pp.add(j / 4), _mm256_castpd_si256(_mm256_blendv_pd(p, iv, closer)));
                let lower = _mm256_cmp_pd::<_CMP_LT_OQ>(d, best[c]);
                best[c] = _mm256_blendv_pd(best[c], d, lower);
                best_at[c] = _mm256_blendv_pd(best_at[c], at[c], lower);
                at[c] = _mm256_add_pd(at[c], step);
            }
            base += 8;
        }
        let (mut b, mut b_at) = ([0f64; 8], [0f64; 8]);
        for c in 0..2 {
            _mm256_storeu_pd(b.as_mut_ptr().add(4 * c), best[c]);
            _mm256_storeu_pd(b_at.as_mut_ptr().add(4 * c), best_at[c]);
        }
        let (mut best, mut best_at) = (f64::INFINITY, 0usize);
        for k in 0..8 {
            let at = b_at[k] as usize;
            if b[k] < best || (b[k] == best && at < best_at) {
                (best, best_at) = (b[k], at);
            }
        }
        let (tail_at, tail) = super::relax_portable(&r[body..], h, i, &v[body..], &mut dist[body..], &mut pred[body..]);
        if tail < best {
            (best, best_at) = (tail, body + tail_at);
        }
        (best_at, best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIMD kernel and the portable loop agree on distances, predecessors and the argmin,
    /// including ties, blocked columns and lengths that are not multiples of 8.
    #[test]
    fn kernels_agree() {
        let mut state = 12345u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for n in [1, 3, 8, 13, 64, 257] {
            for round in 0..20 {
                // Few distinct values in some rounds, to make ties.
                let q = |x: f64| if round % 2 == 0 { (x * 4.0).floor() / 4.0 } else { x };
                let r: Vec<f32> = (0..n).map(|_| q(next()) as f32).collect();
                let v: Vec<f64> = (0..n).map(|_| if next() < 0.2 { f64::NEG_INFINITY } else { q(next()) }).collect();
                let dist0: Vec<f64> =
                    v.iter().map(|&x| if x.is_finite() { q(next()) + 0.5 } else { f64::INFINITY }).collect();
                let pred0: Vec<usize> = (0..n).map(|j| j + 1000).collect();
                let h = q(next());
                let (mut d1, mut p1) = (dist0.clone(), pred0.clone());
                let (mut d2, mut p2) = (dist0.clone(), pred0.clone());
                let a = relax(&r, h, 7, &v, &mut d1, &mut p1);
                let b = relax_portable(&r, h, 7, &v, &mut d2, &mut p2);
                assert_eq!((a, &d1, &p1), (b, &d2, &p2), "n {n} round {round}");
                let r64: Vec<f64> = r.iter().map(|&x| x as f64).collect();
                let (mut d3, mut p3) = (dist0.clone(), pred0.clone());
                assert_eq!(relax(&r64, h, 7, &v, &mut d3, &mut p3), b);
                assert_eq!((&d3, &p3), (&d2, &p2));
                if n >= 2 {
                    let finite: Vec<f64> = v.iter().map(|&x| if x.is_finite() { x } else { 0.25 }).collect();
                    assert_eq!(two_smallest_reduced(&r, &finite), two_smallest_portable(&r, &finite), "n {n}");
                    assert_eq!(two_smallest_reduced(&r64, &finite), two_smallest_portable(&r, &finite), "n {n}");
                }
            }
        }
    }
}
