//! The `#[repr(C)]` boundary between the host and a plugin library. Only these types and
//! `extern "C"` function pointers cross it; everything else travels as JSON text (the types in
//! [`crate::types`] and [`crate::report`]) or as plain `f32` arrays.
//!
//! Ownership never crosses: a callee hands data to the caller through a sink ([`ByteSink`],
//! [`F32Sink`]) that copies it into the caller's own memory, so each side frees only what it
//! allocated. Every function returns a [`Status`]; on error the message goes to the `error` sink.
//!
//! [`DescriptorHeader`] is frozen: its fields and their order never change, so that a host can
//! read the header of a plugin built against any API version and say what does not match.

use std::ffi::c_void;

/// The name of the static every plugin library exports (see [`crate::export_plugin!`]).
pub const DESCRIPTOR_SYMBOL: &[u8] = b"AUDIOSAE_PLUGIN_DESCRIPTOR\0";

/// First bytes of every descriptor.
pub const MAGIC: [u8; 16] = *b"audiosae-plugin\0";

/// Outcome of a call across the boundary.
pub type Status = i32;
pub const STATUS_OK: Status = 0;
/// The callee returned an error; its message was written to the error sink.
pub const STATUS_ERROR: Status = 1;
/// The callee panicked; the panic was caught on its side and its message written to the error sink.
pub const STATUS_PANIC: Status = 2;

/// Borrowed UTF-8 text: valid for the duration of the call (or `'static` in a descriptor).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RStr {
    pub ptr: *const u8,
    pub len: usize,
}

/// Receives bytes; may be called several times, each call appends.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ByteSink {
    pub ctx: *mut c_void,
    pub write: extern "C" fn(ctx: *mut c_void, ptr: *const u8, len: usize),
}

/// Receives `f32` values; may be called several times, each call appends.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct F32Sink {
    pub ctx: *mut c_void,
    pub write: extern "C" fn(ctx: *mut c_void, ptr: *const f32, len: usize),
}

/// A request from the plugin to the host: a method name (see [`crate::context`]), its JSON
/// arguments and an optional `f32` payload (rows to encode, embeddings to generate from).
#[repr(C)]
pub struct HostCall {
    pub method: RStr,
    pub json: RStr,
    pub data: *const f32,
    pub data_len: usize,
}

/// Where the host writes its answer: JSON, `f32` payload, or an error message.
#[repr(C)]
pub struct HostReply {
    pub json: ByteSink,
    pub data: F32Sink,
    pub error: ByteSink,
}

/// What the host provides to a running plugin: one dispatching entry point over an opaque host.
#[repr(C)]
pub struct HostVTable {
    pub host: *const c_void,
    pub call: extern "C" fn(host: *const c_void, call: *const HostCall, reply: *const HostReply) -> Status,
}

/// The plugin's entry points.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PluginVTable {
    /// Writes [`crate::types::PluginInfo`] as JSON to `out`.
    pub info: extern "C" fn(out: ByteSink, error: ByteSink) -> Status,
    /// Runs the analysis; `params` is a JSON object of strings; writes the
    /// [`crate::report::Report`] in its wire form to `report`. Unsafe: `host` must be live.
    pub run: unsafe extern "C" fn(host: *const HostVTable, params: RStr, report: ByteSink, error: ByteSink) -> Status,
}

/// Frozen: identifies the library and what it was built against.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DescriptorHeader {
    pub magic: [u8; 16],
    pub api_version: u32,
    pub layout_hash: u64,
    /// `rustc -V` of the compiler that built the plugin.
    pub rustc_version: RStr,
}

/// The exported static: the header, then the entry points (valid only when the header matches).
#[repr(C)]
pub struct PluginDescriptor {
    pub header: DescriptorHeader,
    pub vtable: PluginVTable,
}

// SAFETY: a descriptor is immutable static data; its pointers name other statics and functions.
unsafe impl Sync for PluginDescriptor {}
