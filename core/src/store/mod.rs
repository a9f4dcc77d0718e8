//! The activation store: frames of one layer for a whole corpus, in fixed-size `.npy` shards
//! plus a JSON manifest that maps each item (a clip, or a 30 s window of a long clip) to its rows.
//!
//! Layout of a store directory:
//! - `manifest.json`: [`Manifest`] (model, layer, [`FrameTiming`](crate::FrameTiming), dtype, d,
//!   shards with sha256, items with row ranges);
//! - `shard-NNNNNN.npy`: `[rows, d]` little-endian f32 (`<f4`) or f16 (`<f2`); every shard but the
//!   last holds exactly `shard_rows` rows. File numbers are unique, not positions: the manifest's
//!   shard list gives the order.
//!
//! Crash safety (see [`StoreWriter`]): shards and manifest are written to `*.tmp`, fsynced and
//! renamed; an item is listed in the manifest only once all its rows are in durable shards.
//! Python reads a store with `json` and `numpy.load(..., mmap_mode="r")` (docs/activation-store.md).

mod files;
mod manifest;
mod merge;
mod npy_header;
mod reader;
mod sampler;
mod verify;
mod writer;

pub use files::sha256_bytes;
pub use manifest::{ItemEntry, ItemMeta, ItemSlice, Manifest, ModelRef, ShardEntry, StoreConfig, StoreDType};
pub use merge::{merge, MergeSummary};
pub use npy_header::{npy_header, parse_npy_header, read_npy_header, NpyHeader};
pub use reader::{Batch, ItemFrames, StoreReader};
pub use sampler::{EpochSampler, IidSampler, RowSet};
pub use verify::{verify, VerifyReport};
pub use writer::{InvalidItem, StoreWriter};

/// The manifest's file name inside a store directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// `format` field of every manifest.
pub const FORMAT: &str = "audiosae-activation-store";
/// Bumped on any incompatible change of the layout or the manifest schema.
pub const FORMAT_VERSION: u32 = 1;

#[cfg(target_endian = "big")]
compile_error!("the activation store writes little-endian shards through native-endian casts");
