//! `.npy` read/write of f32 and i64 tensors (numpy-compatible, through ndarray-npy).

use std::path::Path;

use anyhow::{Context, Result};
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{read_npy, write_npy};
use tch::{Kind, Tensor};

/// Writes a tensor as float32 `.npy` with its shape.
pub fn write_f32(path: &Path, t: &Tensor) -> Result<()> {
    let t = t.to_kind(Kind::Float).to_device(tch::Device::Cpu).contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let data = Vec::<f32>::try_from(t.flatten(0, -1))?;
    let arr = ArrayD::from_shape_vec(IxDyn(&shape), data)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    write_npy(path, &arr).with_context(|| format!("writing {}", path.display()))
}

/// Checks that the header's shape describes exactly the bytes the file holds, before
/// ndarray-npy allocates what the header claims.
fn check_size(path: &Path, item_bytes: usize) -> Result<()> {
    let len = std::fs::metadata(path).with_context(|| format!("opening {}", path.display()))?.len();
    let header = crate::store::read_npy_header(path).with_context(|| format!("{}: bad .npy header", path.display()))?;
    let needed = header.shape.iter().try_fold(item_bytes, |n, &d| n.checked_mul(d));
    let holds = len.saturating_sub(header.data_offset as u64);
    anyhow::ensure!(
        needed.is_some_and(|n| n as u64 == holds),
        "{}: the header's shape {:?} does not match the {holds} data bytes the file holds (truncated or corrupt)",
        path.display(),
        header.shape
    );
    Ok(())
}

/// Reads a float32 `.npy` into a CPU tensor.
pub fn read_f32(path: &Path) -> Result<Tensor> {
    check_size(path, 4)?;
    let arr: ArrayD<f32> = read_npy(path).with_context(|| format!("reading {}", path.display()))?;
    let shape: Vec<i64> = arr.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<f32> = arr.iter().copied().collect();
    Ok(Tensor::from_slice(&data).view(shape.as_slice()))
}

/// Reads an int64 `.npy` into a CPU tensor.
pub fn read_i64(path: &Path) -> Result<Tensor> {
    check_size(path, 8)?;
    let arr: ArrayD<i64> = read_npy(path).with_context(|| format!("reading {}", path.display()))?;
    let shape: Vec<i64> = arr.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<i64> = arr.iter().copied().collect();
    Ok(Tensor::from_slice(&data).view(shape.as_slice()))
}
