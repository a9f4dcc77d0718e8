//! The `.npy` header of a 2-D shard: written exactly as `numpy.save` does (format 1.0, dict
//! padded with spaces to a 64-byte boundary, ending in `\n`), parsed for formats 1.0 to 3.0.

use anyhow::{bail, ensure, Context, Result};

const MAGIC: &[u8] = b"\x93NUMPY";
/// numpy aligns the data start to 64 bytes, which keeps mmapped rows aligned for f32/f16 casts.
const ALIGN: usize = 64;

/// A parsed `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// numpy type string, e.g. `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub data_offset: usize,
}

/// Header bytes of a C-order `[rows, d]` array of numpy type `descr`.
pub fn npy_header(descr: &str, rows: usize, d: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {d}), }}");
    let prefix = MAGIC.len() + 2 + 2;
    let total = (prefix + dict.len() + 1).div_ceil(ALIGN) * ALIGN;
    let header_len = u16::try_from(total - prefix).expect("a 2-D header fits format 1.0");
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// Reads and parses the header of the `.npy` file at `path` (headers are far below 64 KiB).
pub fn read_npy_header(path: &std::path::Path) -> Result<NpyHeader> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)?.take(1 << 16).read_to_end(&mut head)?;
    parse_npy_header(&head)
}

/// Parses the header at the start of `bytes` (which may hold the whole file).
pub fn parse_npy_header(bytes: &[u8]) -> Result<NpyHeader> {
    ensure!(bytes.len() >= 10 && &bytes[..6] == MAGIC, "not an .npy file (bad magic bytes)");
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "truncated .npy header");
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => bail!("unsupported .npy format version {v}"),
    };
    let data_offset = start + len;
    ensure!(bytes.len() >= data_offset, "truncated .npy header ({} of {data_offset} bytes)", bytes.len());
    let dict = std::str::from_utf8(&bytes[start..data_offset]).context(".npy header is not text")?;
    ensure!(dict.ends_with('\n'), ".npy header does not end with a newline");
    let descr = dict_value(dict, "descr")?.trim_matches(|c| c == '\'' || c == '"').to_string();
    let fortran_order = match dict_value(dict, "fortran_order")? {
        "False" => false,
        "True" => true,
        v => bail!(".npy header: fortran_order is {v:?}"),
    };
    let shape_text = dict_value(dict, "shape")?;
    let shape = shape_text
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!(".npy header: bad shape {shape_text}"))?;
    Ok(NpyHeader { descr, fortran_order, shape, data_offset })
}

/// The raw text of `'key': value` in a numpy header dict (a quoted string, a tuple or a word).
fn dict_value<'a>(dict: &'a str, key: &str) -> Result<&'a str> {
    let pattern = format!("'{key}':");
    let at = dict.find(&pattern).with_context(|| format!(".npy header has no {key:?}"))?;
    let rest = dict[at + pattern.len()..].trim_start();
    let end = match rest.as_bytes().first() {
        Some(b'(') => rest.find(')').map(|i| i + 1),
        Some(&q @ (b'\'' | b'"')) => rest[1..].find(q as char).map(|i| i + 2),
        _ => rest.find([',', '}']),
    };
    Ok(rest[..end.with_context(|| format!(".npy header: unterminated {key:?}"))?].trim())
}
