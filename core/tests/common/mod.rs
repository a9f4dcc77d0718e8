//! Helpers shared by several integration tests (each test crate uses some of them).
#![allow(dead_code)]

use std::path::Path;

/// A mono 16 kHz float WAV of `samples`.
pub fn write_wav(path: &Path, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &x in samples {
        w.write_sample(x).unwrap();
    }
    w.finalize().unwrap();
}

/// A CTranslate2 `model.bin` (binary version 6, spec `WhisperSpec`): each variable as
/// `(name, shape, CTranslate2 dtype code, raw little-endian data)`, then `(alias, target)` pairs.
pub fn ct2_model(variables: &[(&str, &[u32], u8, &[u8])], aliases: &[(&str, &str)]) -> Vec<u8> {
    let mut b: Vec<u8> = Vec::new();
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend((s.len() as u16 + 1).to_le_bytes());
        b.extend(s.as_bytes());
        b.push(0);
    };
    b.extend(6u32.to_le_bytes());
    string(&mut b, "WhisperSpec");
    b.extend(3u32.to_le_bytes());
    b.extend((variables.len() as u32).to_le_bytes());
    for (name, shape, dtype, data) in variables {
        string(&mut b, name);
        b.push(shape.len() as u8);
        for d in *shape {
            b.extend(d.to_le_bytes());
        }
        b.push(*dtype);
        b.extend((data.len() as u32).to_le_bytes());
        b.extend(*data);
    }
    b.extend((aliases.len() as u32).to_le_bytes());
    for (alias, target) in aliases {
        string(&mut b, alias);
        string(&mut b, target);
    }
    b
}

/// Little-endian bytes of `values`.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
