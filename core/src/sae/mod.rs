//! Sparse autoencoders: architectures, training, checkpoints, evaluation, sweeps and the
//! ground-truth generator. User documentation: `docs/sae.md`.

pub mod arch;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod eval;
pub mod fidelity;
mod kernels;
pub mod optim;
pub mod plots;
pub mod schedule;
pub mod store_source;
pub mod sweep;
pub mod synth;
pub mod train;

pub use arch::Sae;
pub use config::{Arch, SaeConfig, TrainConfig};
pub use data::{BatchSource, InMemorySource, ItemSource};
