//! The CTranslate2 `model.bin` reader on small files written here: variables, scalars, aliases,
//! and headers whose counts lie.

mod common;

use std::path::PathBuf;

use audiosae::ctranslate2::Ct2Model;
use common::{ct2_model, f32_bytes};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ct2-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A float matrix, an int16 scalar and an alias of the matrix.
fn small_model() -> Vec<u8> {
    let w = f32_bytes(&[1., 2., 3., 4., 5., 6.]);
    ct2_model(&[("a/w", &[2, 3], 0, &w), ("a/n", &[], 2, &7i16.to_le_bytes())], &[("a/alias", "a/w")])
}

#[test]
fn parses_variables_scalars_and_aliases() {
    let dir = tmp("parse");
    let p = dir.join("model.bin");
    std::fs::write(&p, small_model()).unwrap();
    let m = Ct2Model::open(&p).unwrap();
    assert_eq!(m.spec, "WhisperSpec");
    let w = m.float("a/alias").unwrap();
    assert_eq!(w.size(), [2, 3]);
    assert_eq!(w.double_value(&[1, 2]), 6.0);
    assert_eq!(m.scalar_i64("a/n"), Some(7));
    let bytes = small_model();
    std::fs::write(&p, &bytes[..bytes.len() - 20]).unwrap();
    let err = Ct2Model::open(&p).err().unwrap().to_string();
    assert!(err.contains("truncated") && err.contains("model.bin"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A header whose counts lie: a variable count far past what the file holds, and a shape whose
/// element count overflows. Both are errors, not an abort on allocation or a panic.
#[test]
fn lying_counts_and_shapes_are_errors() {
    let dir = tmp("lying");
    // No variables, then the variable count (4 bytes before the alias count) set to u32::MAX
    // and the file cut after it.
    let mut b = ct2_model(&[], &[]);
    let count_at = b.len() - 8;
    b[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    b.truncate(count_at + 4);
    let p = dir.join("count.bin");
    std::fs::write(&p, b).unwrap();
    let err = Ct2Model::open(&p).err().unwrap().to_string();
    assert!(err.contains("truncated"), "{err}");

    let p = dir.join("shape.bin");
    std::fs::write(&p, ct2_model(&[("w", &[u32::MAX; 4], 0, &[0u8; 16])], &[])).unwrap();
    let err = Ct2Model::open(&p).err().unwrap().to_string();
    assert!(err.contains("too large") && err.contains("shape.bin"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
