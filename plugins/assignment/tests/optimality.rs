//! Optimality of both solvers: brute force over all assignments on small matrices, agreement between
//! Jonker–Volgenant and pathfinding's Kuhn–Munkres on larger ones, and edge cases.

use audiosae_assignment::{
    jonker_volgenant, kuhn_munkres, max_weight_assignment, Assignment, AssignmentError, ScoreMatrix,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The best total over all injective maps from the shorter side to the longer one.
fn brute_force(m: &ScoreMatrix<f64>) -> f64 {
    fn go(m: &ScoreMatrix<f64>, transposed: bool, a: usize, used: &mut Vec<bool>, acc: f64, best: &mut f64) {
        let short = if transposed { m.cols() } else { m.rows() };
        if a == short {
            *best = best.max(acc);
            return;
        }
        for b in 0..used.len() {
            if !used[b] {
                used[b] = true;
                let s = if transposed { m.get(b, a) } else { m.get(a, b) };
                go(m, transposed, a + 1, used, acc + s, best);
                used[b] = false;
            }
        }
    }
    let transposed = m.rows() > m.cols();
    let long = m.rows().max(m.cols());
    let mut best = f64::NEG_INFINITY;
    go(m, transposed, 0, &mut vec![false; long], 0.0, &mut best);
    best
}

/// Checks that `a` is a valid one-to-one assignment of the right size and that `total` is its score.
fn check_valid(m: &ScoreMatrix<f64>, a: &Assignment) {
    assert_eq!(a.pairs.len(), m.rows().min(m.cols()));
    let mut rows_seen = vec![false; m.rows()];
    let mut cols_seen = vec![false; m.cols()];
    for &(r, c) in &a.pairs {
        assert!(!rows_seen[r] && !cols_seen[c], "row {r} or column {c} used twice in {:?}", a.pairs);
        rows_seen[r] = true;
        cols_seen[c] = true;
    }
    assert!((a.total - m.total(&a.pairs)).abs() < 1e-12);
}

fn random_matrix(rng: &mut ChaCha8Rng, rows: usize, cols: usize, kind: usize) -> Vec<f64> {
    (0..rows * cols)
        .map(|_| match kind {
            // Continuous scores: a unique optimum almost surely.
            0 => rng.gen_range(-1.0..1.0),
            // Few distinct values: many tied optima.
            1 => rng.gen_range(0..3) as f64,
            // Wide dynamic range.
            _ => rng.gen_range(-1.0..1.0f64) * 10f64.powi(rng.gen_range(-3..4)),
        })
        .collect()
}

#[test]
fn both_solvers_match_brute_force_on_small_matrices() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut cases = 0;
    for seed_round in 0..60 {
        for rows in 1..=7 {
            for cols in 1..=7 {
                if rows.max(cols) > 6 && seed_round % 6 != 0 {
                    continue; // 7! per case: fewer rounds for the largest shapes
                }
                let kind = seed_round % 3;
                let data = random_matrix(&mut rng, rows, cols, kind);
                let m = ScoreMatrix::new(&data, rows, cols).unwrap();
                let best = brute_force(&m);
                for (name, a) in [("jv", jonker_volgenant(&m)), ("km", kuhn_munkres(&m))] {
                    check_valid(&m, &a);
                    assert!(
                        (a.total - best).abs() <= 1e-9 * best.abs().max(1.0),
                        "{name} {rows}x{cols} kind {kind}: total {} but brute force {best}\n{data:?}",
                        a.total
                    );
                }
                let gap = jonker_volgenant(&m).certified_gap.unwrap();
                assert!(gap <= 1e-9 * best.abs().max(1.0), "{rows}x{cols}: certified gap {gap}");
                cases += 1;
            }
        }
    }
    assert!(cases > 1000, "only {cases} cases ran");
}

#[test]
fn square_8x8_matches_brute_force() {
    for seed in 0..12 {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        let data = random_matrix(&mut rng, 8, 8, seed as usize % 3);
        let m = ScoreMatrix::new(&data, 8, 8).unwrap();
        let best = brute_force(&m);
        for a in [jonker_volgenant(&m), kuhn_munkres(&m)] {
            check_valid(&m, &a);
            assert!((a.total - best).abs() <= 1e-9 * best.abs().max(1.0), "seed {seed}: {} vs {best}", a.total);
        }
    }
}

/// Cosines between two sets of random unit vectors, the second partly noisy copies of the first.
fn cosine_matrix(rng: &mut ChaCha8Rng, n_a: usize, n_b: usize, dim: usize) -> Vec<f32> {
    let unit = |v: Vec<f32>| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f32>>()
    };
    let gauss = |rng: &mut ChaCha8Rng| -> f32 {
        // Box–Muller
        let (u, w): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * w).cos()
    };
    let a: Vec<Vec<f32>> = (0..n_a).map(|_| unit((0..dim).map(|_| gauss(rng)).collect())).collect();
    let b: Vec<Vec<f32>> = (0..n_b)
        .map(|k| {
            let noise: Vec<f32> = (0..dim).map(|_| gauss(rng)).collect();
            if k % 2 == 0 && k < n_a {
                let src = &a[(k * 7) % n_a];
                unit(src.iter().zip(&noise).map(|(s, e)| s + 0.3 * e).collect())
            } else {
                unit(noise)
            }
        })
        .collect();
    a.iter().flat_map(|x| b.iter().map(move |y| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>())).collect()
}

#[test]
fn jv_agrees_with_pathfinding_on_cosine_matrices() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (rows, cols) in [(20, 20), (64, 64), (150, 150), (90, 130), (130, 90), (256, 256)] {
        let data = cosine_matrix(&mut rng, rows, cols, 32);
        let m = ScoreMatrix::new(&data, rows, cols).unwrap();
        let (jv, km) = (jonker_volgenant(&m), kuhn_munkres(&m));
        assert_eq!(jv.pairs.len(), rows.min(cols));
        assert!((jv.total - km.total).abs() < 1e-9, "{rows}x{cols}: jv {} km {}", jv.total, km.total);
        // Continuous scores: the optimum is unique, so the assignments agree too.
        assert_eq!(jv.pairs, km.pairs, "{rows}x{cols}");
        assert!(jv.certified_gap.unwrap() < 1e-9, "{rows}x{cols}: gap {:?}", jv.certified_gap);
    }
}

#[test]
fn jv_certifies_a_large_matrix() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 1000;
    let data = cosine_matrix(&mut rng, n, n, 48);
    let m = ScoreMatrix::new(&data, n, n).unwrap();
    let a = max_weight_assignment(&m);
    let gap = a.certified_gap.expect("JV above KM_MAX_SIDE gives a certificate");
    assert!(gap < 1e-8, "gap {gap}");
    // The certificate is not vacuous: a worse assignment (identity) has a larger total gap.
    let identity: Vec<(usize, usize)> = (0..n).map(|i| (i, i)).collect();
    assert!(m.total(&identity) < a.total - 1.0);
}

#[test]
fn ties_and_degenerate_matrices() {
    // All equal: any permutation is optimal.
    let data = vec![0.5f64; 36];
    let m = ScoreMatrix::new(&data, 6, 6).unwrap();
    for a in [jonker_volgenant(&m), kuhn_munkres(&m)] {
        check_valid(&m, &a);
        assert!((a.total - 3.0).abs() < 1e-12);
    }
    // Identical rows.
    let data: Vec<f64> = (0..5).flat_map(|_| [1.0, 2.0, 3.0, 4.0, 5.0]).collect();
    let m = ScoreMatrix::new(&data, 5, 5).unwrap();
    assert!((jonker_volgenant(&m).total - 15.0).abs() < 1e-12);
    // One row, one column, 1 × 1.
    let data = [0.1f64, 0.9, -0.3];
    for (r, c) in [(1, 3), (3, 1)] {
        let m = ScoreMatrix::new(&data, r, c).unwrap();
        for a in [jonker_volgenant(&m), kuhn_munkres(&m)] {
            assert_eq!(a.pairs, if r == 1 { vec![(0, 1)] } else { vec![(1, 0)] });
        }
    }
    let m = ScoreMatrix::new(&[-2.5f64], 1, 1).unwrap();
    assert_eq!(jonker_volgenant(&m).pairs, vec![(0, 0)]);
    let empty: [f64; 0] = [];
    let m = ScoreMatrix::new(&empty, 0, 4).unwrap();
    assert!(jonker_volgenant(&m).pairs.is_empty() && kuhn_munkres(&m).pairs.is_empty());
}

#[test]
fn invalid_matrices_are_refused() {
    assert_eq!(
        ScoreMatrix::new(&[1.0f64, 2.0, 3.0], 2, 2).unwrap_err(),
        AssignmentError::Shape { len: 3, rows: 2, cols: 2, expected: 4 }
    );
    let err = ScoreMatrix::new(&[1.0f32, 2.0, f32::NAN, 0.0], 2, 2).unwrap_err();
    assert!(matches!(err, AssignmentError::NonFinite { row: 1, col: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("(1, 0)"), "{err}");
}
