//! Analysis plugins: discovery and loading of plugin libraries ([`loader`]), the host side of
//! the analysis context over a store, SAEs and a labelled corpus ([`host`], [`labels`]), and one
//! run as `audiosae analyze` does it, for the CLI and notebooks ([`analysis`]).
//!
//! The boundary itself (descriptor, vtables, report wire form) is the `audiosae-plugin-api`
//! crate in `plugins/api`; user documentation is `plugins/README.md`.

pub mod analysis;
pub mod generator_runner;
pub mod host;
pub mod labels;
pub mod loader;

pub use analysis::Analysis;
pub use audiosae_plugin_api as api;
pub use generator_runner::GeneratorRunner;
pub use host::{AnalysisHost, ModelRunner};
pub use labels::CorpusLabels;
pub use loader::{discover, find, load, search_dirs, LoadedPlugin, PLUGIN_PATH_ENV};
