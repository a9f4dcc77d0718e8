//! `audiosae-plugin-api`: the small, stable crate that audiosae analysis plugins depend on
//! instead of all of `audiosae` (no torch, no model code). User guide: `plugins/README.md`.
//!
//! A plugin is a `cdylib` crate with a type implementing [`Plugin`] and one
//! [`export_plugin!`] line. Its `run` gets an [`AnalysisContext`] (store frames and items, the
//! SAEs' encode/decode/atoms, TextGrid labels per frame, log-mel patches, model generation) and
//! [`Params`] (`key=value` strings), and returns a [`Report`] (JSON summary, tables, figures).
//!
//! Safety of loading: every plugin exports a descriptor (see [`abi`]) whose frozen header holds
//! [`API_VERSION`], [`LAYOUT_HASH`] and the compiler version; the host refuses any mismatch
//! before calling into the library. All calls cross as `extern "C"` functions over `#[repr(C)]`
//! types, and both sides catch panics at every entry point.

pub mod abi;
pub mod context;
pub mod error_rate;
pub mod ffi;
pub mod host;
pub mod params;
pub mod plugin;
pub mod report;
pub mod types;

pub use context::{AnalysisContext, Host};
pub use params::Params;
pub use plugin::Plugin;
pub use report::{Figure, FigureFormat, Report, Table, Value};
pub use types::{
    AudioEmbeddings, FrameTiming, Generation, GenerationRequest, ItemInfo, LogMelPatch, PluginInfo, SaeInfo, StoreInfo,
};

/// Bumped on any incompatible change of the boundary (types, methods, semantics).
pub const API_VERSION: u32 = 1;

/// `rustc -V` of the compiler that built this crate.
pub const RUSTC_VERSION: &str = env!("AUDIOSAE_RUSTC_VERSION");

/// FNV-1a over the source of every file that defines what crosses the boundary, and over the
/// sizes and alignments of the `#[repr(C)]` types: any edit to them changes it, so a plugin built
/// against an edited copy of this crate is refused even if nobody bumped [`API_VERSION`].
pub const LAYOUT_HASH: u64 = {
    let sources: [&str; 4] =
        [include_str!("abi.rs"), include_str!("types.rs"), include_str!("report.rs"), include_str!("context.rs")];
    use abi::*;
    use std::mem::{align_of, size_of};
    let layout: [usize; 14] = [
        size_of::<RStr>(),
        align_of::<RStr>(),
        size_of::<ByteSink>(),
        size_of::<F32Sink>(),
        size_of::<HostCall>(),
        size_of::<HostReply>(),
        size_of::<HostVTable>(),
        size_of::<PluginVTable>(),
        size_of::<DescriptorHeader>(),
        align_of::<DescriptorHeader>(),
        size_of::<PluginDescriptor>(),
        align_of::<PluginDescriptor>(),
        size_of::<Status>(),
        size_of::<usize>(),
    ];
    let mut h: u64 = 0xcbf29ce484222325;
    let mut s = 0;
    while s < sources.len() {
        let bytes = sources[s].as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            h = (h ^ bytes[i] as u64).wrapping_mul(0x100000001b3);
            i += 1;
        }
        s += 1;
    }
    let mut i = 0;
    while i < layout.len() {
        h = (h ^ layout[i] as u64).wrapping_mul(0x100000001b3);
        i += 1;
    }
    h
};

/// An error crossing the boundary: a message. Any `std::error::Error` converts into it, so `?`
/// works in a plugin's `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Error {
        Error(e.to_string())
    }
}
