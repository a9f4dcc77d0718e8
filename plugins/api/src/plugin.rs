//! The plugin side: the [`Plugin`] trait, the `extern "C"` entry points that wrap it, and
//! [`export_plugin!`](crate::export_plugin) which exports them in the descriptor.

use std::collections::BTreeMap;

use crate::abi::{ByteSink, DescriptorHeader, HostVTable, RStr, Status, MAGIC};
use crate::context::AnalysisContext;
use crate::ffi::guarded;
use crate::params::Params;
use crate::report::Report;
use crate::types::PluginInfo;
use crate::{Error, API_VERSION, LAYOUT_HASH};

/// An analysis. The host makes a fresh value with `Default` for every call, so keep state in
/// `run`'s locals. Panics are caught at the boundary and reported as errors.
pub trait Plugin: Default {
    /// Short unique name, what `audiosae analyze --plugin NAME` selects.
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    /// One or two sentences for `audiosae plugins list`: what it measures, its parameters.
    fn describe(&self) -> &str;
    fn run(&self, ctx: &AnalysisContext, params: &Params) -> Result<Report, Error>;
}

/// The header every plugin built against this API exports.
pub const CURRENT_HEADER: DescriptorHeader = DescriptorHeader {
    magic: MAGIC,
    api_version: API_VERSION,
    layout_hash: LAYOUT_HASH,
    rustc_version: RStr::new(env!("AUDIOSAE_RUSTC_VERSION")),
};

/// Entry point `info` for plugin type `P` (used by `export_plugin!`).
pub extern "C" fn info_entry<P: Plugin>(out: ByteSink, error: ByteSink) -> Status {
    guarded(error, || {
        let p = P::default();
        let info = PluginInfo { name: p.name().into(), version: p.version().into(), description: p.describe().into() };
        out.send(&serde_json::to_vec(&info)?);
        Ok(())
    })
}

/// Entry point `run` for plugin type `P` (used by `export_plugin!`).
///
/// # Safety
/// `host` must point to a live host vtable and `params` to UTF-8 text, both valid for the call.
pub unsafe extern "C" fn run_entry<P: Plugin>(
    host: *const HostVTable,
    params: RStr,
    report: ByteSink,
    error: ByteSink,
) -> Status {
    guarded(error, || {
        // SAFETY: the caller's contract (see above).
        let (ctx, params) = unsafe { (AnalysisContext::from_vtable(&*host), params.as_str()?) };
        let values: BTreeMap<String, String> = serde_json::from_str(params)?;
        let params = Params::new(values);
        let r = P::default().run(&ctx, &params)?;
        report.send(&r.to_bytes()?);
        Ok(())
    })
}

/// Exports `$ty` (a [`Plugin`] + `Default`) as this library's plugin. Use it once, in `lib.rs`
/// of a `crate-type = ["cdylib"]` crate.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        #[no_mangle]
        pub static AUDIOSAE_PLUGIN_DESCRIPTOR: $crate::abi::PluginDescriptor = $crate::abi::PluginDescriptor {
            header: $crate::plugin::CURRENT_HEADER,
            vtable: $crate::abi::PluginVTable {
                info: $crate::plugin::info_entry::<$ty>,
                run: $crate::plugin::run_entry::<$ty>,
            },
        };
    };
}
