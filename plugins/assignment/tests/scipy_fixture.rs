//! Both solvers against scipy's `linear_sum_assignment` on the committed 300 × 300 cosine matrix
//! (tests/fixtures/assignment/make_assignment_fixture.py).

use std::path::PathBuf;

use audiosae_assignment::{jonker_volgenant, kuhn_munkres, ScoreMatrix};
use ndarray::Array2;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/assignment")
}

#[test]
fn matches_scipy_linear_sum_assignment_300() {
    let dir = fixture_dir();
    let scores: Array2<f32> = ndarray_npy::read_npy(dir.join("scores_300.npy")).expect("read scores_300.npy");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("scipy_300.json")).expect("read scipy_300.json"))
            .expect("parse scipy_300.json");
    let (rows, cols) = scores.dim();
    assert_eq!((rows, cols), (300, 300));
    let want_cols: Vec<usize> =
        reference["col_of_row"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as usize).collect();
    let want_total = reference["total"].as_f64().unwrap();

    let data = scores.as_standard_layout().to_owned().into_raw_vec_and_offset().0;
    let m = ScoreMatrix::new(&data, rows, cols).unwrap();
    for (name, a) in [("jv", jonker_volgenant(&m)), ("km", kuhn_munkres(&m))] {
        let got: Vec<usize> = a.pairs.iter().map(|&(_, c)| c).collect();
        assert!((a.total - want_total).abs() < 1e-9, "{name}: total {} vs scipy {want_total}", a.total);
        assert_eq!(got, want_cols, "{name}: assignment differs from scipy's");
    }
}
