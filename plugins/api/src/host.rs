//! The host side of a loaded plugin: checks its descriptor header, then calls it safely.
//! Opening the library (and naming its file in errors) is the host's job (`audiosae::plugins`).

use std::collections::BTreeMap;

use crate::abi::{DescriptorHeader, PluginDescriptor, RStr, MAGIC};
use crate::context::{with_host, Host};
use crate::ffi::{byte_sink, check_status};
use crate::report::Report;
use crate::types::PluginInfo;
use crate::{Error, API_VERSION, LAYOUT_HASH, RUSTC_VERSION};

/// Why a library's descriptor was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbiMismatch {
    NotAPlugin,
    ApiVersion { plugin: u32, host: u32 },
    LayoutHash { plugin: u64, host: u64 },
    Rustc { plugin: String, host: String },
}

impl std::fmt::Display for AbiMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbiMismatch::NotAPlugin => write!(f, "its descriptor does not start with the audiosae plugin magic"),
            AbiMismatch::ApiVersion { plugin, host } => {
                write!(f, "built against plugin API version {plugin}, this audiosae has version {host}: rebuild it")
            }
            AbiMismatch::LayoutHash { plugin, host } => write!(
                f,
                "boundary layout hash {plugin:016x} differs from this audiosae's {host:016x} (built against a modified \
                 or different audiosae-plugin-api): rebuild it"
            ),
            AbiMismatch::Rustc { plugin, host } => {
                write!(f, "built with `{plugin}`, this audiosae with `{host}`: rebuild it with the same compiler")
            }
        }
    }
}

/// A plugin whose descriptor matched this host.
pub struct CheckedPlugin {
    descriptor: &'static PluginDescriptor,
}

impl CheckedPlugin {
    /// Checks the frozen header, in order: magic, API version, layout hash, compiler.
    ///
    /// # Safety
    /// `descriptor` must point to at least a readable [`DescriptorHeader`] that stays valid
    /// (i.e. its library stays loaded) for the life of the result.
    pub unsafe fn check(descriptor: *const PluginDescriptor) -> Result<CheckedPlugin, AbiMismatch> {
        let header = &*(descriptor as *const DescriptorHeader);
        if header.magic != MAGIC {
            return Err(AbiMismatch::NotAPlugin);
        }
        if header.api_version != API_VERSION {
            return Err(AbiMismatch::ApiVersion { plugin: header.api_version, host: API_VERSION });
        }
        if header.layout_hash != LAYOUT_HASH {
            return Err(AbiMismatch::LayoutHash { plugin: header.layout_hash, host: LAYOUT_HASH });
        }
        let rustc = header.rustc_version.as_str().unwrap_or("<invalid>");
        if rustc != RUSTC_VERSION {
            return Err(AbiMismatch::Rustc { plugin: rustc.to_string(), host: RUSTC_VERSION.to_string() });
        }
        Ok(CheckedPlugin { descriptor: &*descriptor })
    }

    pub fn info(&self) -> Result<PluginInfo, Error> {
        let (mut out, mut error) = (Vec::new(), Vec::new());
        let status = (self.descriptor.vtable.info)(byte_sink(&mut out), byte_sink(&mut error));
        check_status(status, error, "plugin `info`")?;
        Ok(serde_json::from_slice(&out)?)
    }

    /// Runs the plugin against `host` with `params`.
    pub fn run(&self, host: &dyn Host, params: &BTreeMap<String, String>) -> Result<Report, Error> {
        let params = serde_json::to_string(params)?;
        let (mut out, mut error) = (Vec::new(), Vec::new());
        // SAFETY: the vtable lives for the call and `params` is UTF-8 text that outlives it.
        let status = with_host(host, |vtable| unsafe {
            (self.descriptor.vtable.run)(vtable, RStr::new(&params), byte_sink(&mut out), byte_sink(&mut error))
        });
        check_status(status, error, "plugin")?;
        Report::from_bytes(&out)
    }
}
