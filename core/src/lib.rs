//! audiosae: sparse-autoencoder interpretability for audio language models.
//!
//! The library holds all logic; the `audiosae` binary is a thin CLI over it.
//! Model code lives in [`models`], one file per model; audio I/O in [`audio`];
//! the Whisper log-mel front end in [`mel`].

pub mod audio;
pub mod chat;
pub mod cli;
pub mod corpus;
pub mod ctranslate2;
pub mod device;
pub mod embed;
pub mod extract;
pub mod hub;
pub mod mel;
pub mod models;
pub mod notebook;
pub mod npy;
pub mod output;
pub mod plot;
pub mod plugins;
pub mod sae;
pub mod store;
pub mod textgrid;
pub mod timing;
pub mod transcribe;
pub mod weights;

pub use timing::FrameTiming;
