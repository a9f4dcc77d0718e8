//! Finds plugin libraries and loads them safely: a file that is not a library, a library that
//! is not an audiosae plugin, or a plugin built against another API version, a modified API
//! crate or another compiler is refused with an error naming the file and the mismatch, before
//! any of its code is called.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use audiosae_plugin_api::abi::{PluginDescriptor, DESCRIPTOR_SYMBOL};
use audiosae_plugin_api::host::CheckedPlugin;
use audiosae_plugin_api::{Host, PluginInfo, Report};
use libloading::Library;

/// Colon-separated folders searched first.
pub const PLUGIN_PATH_ENV: &str = "AUDIOSAE_PLUGIN_PATH";

/// A plugin whose descriptor matched. Its library stays loaded for the life of the process
/// (Rust libraries cannot be unloaded reliably), so the plugin is always safe to call.
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub info: PluginInfo,
    plugin: CheckedPlugin,
}

impl LoadedPlugin {
    pub fn run(&self, host: &dyn Host, params: &BTreeMap<String, String>) -> Result<Report> {
        self.plugin.run(host, params).map_err(|e| anyhow!("{}: {e}", self.path.display()))
    }
}

/// Loads and checks one library.
pub fn load(path: &Path) -> Result<LoadedPlugin> {
    // SAFETY: loading runs the library's initialisers; nothing else of it runs until its
    // descriptor header has been checked.
    let lib = unsafe { Library::new(path) }
        .map_err(|e| anyhow!("{}: cannot load it as a shared library: {e}", path.display()))?;
    // SAFETY: the symbol is only read as a descriptor header, which `check` validates first.
    let descriptor = unsafe { lib.get::<*const PluginDescriptor>(DESCRIPTOR_SYMBOL) }
        .map(|symbol| *symbol)
        .map_err(|_| anyhow!("{}: not an audiosae plugin (no AUDIOSAE_PLUGIN_DESCRIPTOR symbol)", path.display()))?;
    // SAFETY: the symbol's address in a library we keep loaded forever (leaked below on success).
    let plugin = unsafe { CheckedPlugin::check(descriptor) }
        .map_err(|mismatch| anyhow!("{}: refused: {mismatch}", path.display()))?;
    std::mem::forget(lib);
    let info = plugin.info().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(LoadedPlugin { path: path.to_path_buf(), info, plugin })
}

/// Where plugins are looked for, in order: `AUDIOSAE_PLUGIN_PATH`, `./plugins/target/{release,debug}`,
/// the folder of the running binary, and the workspace's `target/{release,debug}`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var(PLUGIN_PATH_ENV)
        .map(|v| v.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default();
    for profile in ["release", "debug"] {
        dirs.push(Path::new("plugins/target").join(profile));
    }
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        dirs.push(exe_dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for profile in ["release", "debug"] {
        dirs.push(workspace.join("target").join(profile));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone())));
    dirs
}

fn is_library(path: &Path) -> bool {
    path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("so" | "dylib" | "dll"))
}

/// Loads every library in `dirs` (not recursively). Returns the plugins and, for each refused
/// file, its error.
pub fn discover(dirs: &[PathBuf]) -> (Vec<LoadedPlugin>, Vec<anyhow::Error>) {
    let (mut plugins, mut errors) = (Vec::new(), Vec::new());
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_library(p)).collect();
        files.sort();
        for f in files {
            match load(&f) {
                Ok(p) => plugins.push(p),
                Err(e) => errors.push(e),
            }
        }
    }
    (plugins, errors)
}

/// The plugin `name_or_path`: a library file, or the first plugin of that name in `dirs`.
pub fn find(name_or_path: &str, dirs: &[PathBuf]) -> Result<LoadedPlugin> {
    let path = Path::new(name_or_path);
    // A path is loaded as given, whatever its extension, so that a file that is not a plugin
    // gets the loader's reason rather than "no plugin named".
    if is_library(path) || path.is_file() {
        return load(path);
    }
    if name_or_path.contains(std::path::MAIN_SEPARATOR) {
        bail!("{name_or_path}: no such plugin library (plugin names have no `/`; see `audiosae plugins list`)");
    }
    let (plugins, errors) = discover(dirs);
    if let Some(p) = plugins.into_iter().find(|p| p.info.name == name_or_path) {
        return Ok(p);
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let refused: Vec<String> = errors.iter().map(|e| format!("\n  {e:#}")).collect();
    bail!(
        "no plugin named `{name_or_path}` in {} (set {PLUGIN_PATH_ENV} or pass the library's path){}",
        searched.join(", "),
        if refused.is_empty() { String::new() } else { format!("; refused:{}", refused.concat()) }
    )
}
