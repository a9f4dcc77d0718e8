//! Device and dtype selection.
//!
//! rustc links with `--as-needed`, which drops `libtorch_cuda.so` because no symbol of it is
//! referenced directly, so libtorch never registers its CUDA backend (tch-rs #980). We dlopen
//! it with RTLD_GLOBAL before the first CUDA query instead: one binary then runs against the
//! CPU-only venv and against a CUDA torch install.

use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use tch::{Device, Kind};

/// Loads libtorch's CUDA backend if it is installed and loadable. Safe to call many times.
pub fn init_cuda() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
        // SAFETY: loading libtorch_cuda only runs its static initialisers, which register the
        // CUDA dispatch keys with the already-loaded libtorch_cpu.
        match unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) } {
            Ok(lib) => {
                std::mem::forget(lib);
                true
            }
            Err(_) => false,
        }
    })
}

/// Checks the spelling of a `--device` value (auto, cpu, cuda, gpu or cuda:N), for the argument
/// parser; whether CUDA is there is [`parse_device`]'s question.
pub fn device_spec(s: &str) -> std::result::Result<String, String> {
    let ok = matches!(s, "auto" | "cpu" | "cuda" | "gpu")
        || s.strip_prefix("cuda:")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n.len() < 4);
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a device: use auto, cpu, cuda or cuda:N"))
    }
}

/// Parses `auto`, `cpu`, `cuda` or `cuda:N`. `auto` picks CUDA when it is available.
pub fn parse_device(s: &str) -> Result<Device> {
    init_cuda();
    let cuda = tch::Cuda::is_available();
    Ok(match s {
        "auto" => Device::cuda_if_available(),
        "cpu" => Device::Cpu,
        "cuda" | "gpu" if cuda => Device::Cuda(0),
        s if s.starts_with("cuda:") && cuda => {
            let n: usize = s[5..].parse().map_err(|_| anyhow::anyhow!("unknown device {s:?}: use cuda:N"))?;
            let count = tch::Cuda::device_count() as usize;
            anyhow::ensure!(n < count, "device {s:?}: libtorch sees {count} CUDA device(s), numbered from 0");
            Device::Cuda(n)
        }
        s if s == "cuda" || s == "gpu" || s.starts_with("cuda:") => bail!(
            "device {s:?} requested but libtorch sees no CUDA device: install the CUDA torch \
             wheel in the venv (AUDIOSAE_TORCH=cuda) or use --device cpu"
        ),
        other => bail!("unknown device {other:?}: use auto, cpu, cuda or cuda:N"),
    })
}

/// Floating-point precision of model weights and activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DType {
    #[default]
    F32,
    F16,
    BF16,
}

impl DType {
    pub fn kind(self) -> Kind {
        match self {
            DType::F32 => Kind::Float,
            DType::F16 => Kind::Half,
            DType::BF16 => Kind::BFloat16,
        }
    }
}

impl FromStr for DType {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "float32" | "fp32" => Ok(DType::F32),
            "f16" | "float16" | "fp16" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            _ => bail!("unknown dtype {s:?}: use f32, f16 or bf16"),
        }
    }
}

/// Human-readable device name for summaries.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}
