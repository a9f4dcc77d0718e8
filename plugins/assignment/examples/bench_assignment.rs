//! Times Jonker–Volgenant on score matrices stored as 2-D float32 .npy files; the Rust side of
//! `benches/assignment_peer.py`, which compares it with scipy's `linear_sum_assignment`.
//!
//! Usage: cargo run --release -p audiosae-assignment --example bench_assignment -- A.npy [B.npy ...]
//! Prints one JSON line per file: size, wall and CPU seconds (solver only, not loading), total, certified gap and
//! the work counters; writes the column of each row to `<file>.jv_cols.npy` (int64).

use std::time::Instant;

use audiosae_assignment::{jv, ScoreMatrix};
use ndarray::Array2;

fn main() {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: bench_assignment SCORES.npy [SCORES.npy ...]  (2-D float32, maximised)");
        std::process::exit(2);
    }
    for path in paths {
        let scores: Array2<f32> = ndarray_npy::read_npy(&path).unwrap_or_else(|e| {
            eprintln!("{path}: cannot read a 2-D float32 .npy: {e}");
            std::process::exit(1)
        });
        let (rows, cols) = scores.dim();
        let data = scores.as_standard_layout().to_owned().into_raw_vec_and_offset().0;
        let m = ScoreMatrix::new(&data, rows, cols).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(1)
        });
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let (a, stats) = jv::solve(&m);
        let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
        let col_of_row: Vec<i64> = a.col_of_row(rows).iter().map(|c| c.map_or(-1, |c| c as i64)).collect();
        let cols_path = format!("{path}.jv_cols.npy");
        ndarray_npy::write_npy(&cols_path, &ndarray::Array1::from(col_of_row))
            .unwrap_or_else(|e| panic!("{cols_path}: cannot write: {e}"));
        let line = serde_json::json!({
            "path": path,
            "rows": rows,
            "cols": cols,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "total": a.total,
            "certified_gap": a.certified_gap,
            "free_after_column_reduction": stats.free_after_column_reduction,
            "row_reduction_steps": stats.row_reduction_steps,
            "augmentations": stats.augmentations,
            "path_row_scans": stats.path_row_scans,
        });
        println!("{line}");
    }
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, USER_HZ = 100); a fairer clock
/// than wall time on a machine shared with compilers.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |k: usize| fields.get(k).and_then(|f| f.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}
