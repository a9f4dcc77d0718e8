from common import PRELUDE, code, md

PLUGIN_SOURCE = r'''//! How long does each SAE unit stay on? The mean duration of its runs of consecutive active
//! frames, in milliseconds (through the store's frame timing).
use audiosae_plugin_api::{export_plugin, AnalysisContext, Error, Params, Plugin, Report, Table};

#[derive(Default)]
pub struct RunLengths;

impl Plugin for RunLengths {
    fn name(&self) -> &str {
        "run-lengths"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn describe(&self) -> &str {
        "Mean duration (ms) of each unit's runs of consecutive active frames, longest first. No params."
    }

    fn run(&self, ctx: &AnalysisContext, params: &Params) -> Result<Report, Error> {
        params.check_all_used()?;
        let d_sae = ctx.saes()?.first().ok_or_else(|| Error::new("this plugin needs --sae"))?.d_sae;
        // Per unit: frames on, and runs started (an off -> on switch inside a clip).
        let (mut on_frames, mut runs) = (vec![0u64; d_sae], vec![0u64; d_sae]);
        let n_items = ctx.items()?.len();
        for i in 0..n_items {
            let codes = ctx.encode(0, &ctx.frames(i)?)?;
            let mut was_on = vec![false; d_sae];
            for row in codes.chunks_exact(d_sae) {
                for (u, &c) in row.iter().enumerate() {
                    let on = c > 0.0;
                    on_frames[u] += on as u64;
                    runs[u] += (on && !was_on[u]) as u64;
                    was_on[u] = on;
                }
            }
            ctx.progress("encoding", i as u64 + 1, n_items as u64);
        }
        let hop_ms = 1e3 * ctx.store()?.timing.hop_s;
        let mean_ms = |u: usize| on_frames[u] as f64 / runs[u] as f64 * hop_ms;
        let mut live: Vec<usize> = (0..d_sae).filter(|&u| runs[u] > 0).collect();
        live.sort_by(|&a, &b| mean_ms(b).total_cmp(&mean_ms(a)));
        let mut table = Table::new("units", &["unit", "runs", "mean_run_ms"]);
        for &u in &live {
            table.push(vec![u.into(), (runs[u] as usize).into(), mean_ms(u).into()]);
        }
        let mut all: Vec<f64> = live.iter().map(|&u| mean_ms(u)).collect();
        all.sort_by(f64::total_cmp);
        let median = all.get(all.len() / 2).copied().unwrap_or(0.0);
        Ok(Report {
            summary: serde_json::json!({ "live_units": live.len(), "hop_ms": hop_ms, "median_mean_run_ms": median }),
            tables: vec![table],
            figures: vec![],
        })
    }
}

export_plugin!(RunLengths);
'''

NAME = "10-write-a-plugin"
CELLS = [
    md("""
# 10 · Write your own analysis plugin

Every analysis in notebooks 04–09 is a **plugin**: a small Rust `cdylib` that audiosae loads at
run time. A plugin depends only on the `audiosae-plugin-api` crate (no torch, no model code; it
builds in seconds) and gets an `AnalysisContext`: the store's items and frames, the SAEs'
encode/decode/atoms, frame labels, log-mel patches and, with a model, generation. It returns a
`Report`: a JSON summary, tables and figures. Before calling anything, the host checks the
library's descriptor (API version, a hash of the boundary's source and layout, and the compiler
version) and refuses a mismatch with a clear error.

This notebook builds the bundled template, runs it, then writes a new plugin from scratch, builds it
outside the workspace as a user would, and shows what happens to a plugin built against another
API version.
"""),
    code(PRELUDE + """
use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
use std::path::Path;
use audiosae::notebook::{build_plugins, column_f64, html_escape, repo_root, table_html};
use audiosae::sae::plots::{line_panels_png, Series};
use audiosae::plugins::{load, AnalysisHost};
let root = repo_root().canonicalize()?;
let device = audiosae::device::parse_device(&p.device)?;
/// `lib<crate>.so` (or `.dylib`, `.dll`): the file `cargo build` makes of a cdylib crate.
fn library(dir: &Path, krate: &str) -> std::path::PathBuf {
    dir.join(format!("{DLL_PREFIX}{}{DLL_SUFFIX}", krate.replace('-', "_")))
}"""),
    md("""
## 1. The template
`plugins/template` is a documented minimal plugin: the mean |code| and the firing rate of every SAE
unit. `cargo build --release -p audiosae-plugin-template` builds it into `target/release`, one of
the folders the loader searches.
"""),
    code("""
let dir = build_plugins(&["template"])?;
let template = load(&library(&dir, "audiosae-plugin-template"))?;
println!("loaded {} {} from {}\\n  {}", template.info.name, template.info.version, template.path.display(), template.info.description);
let source = std::fs::read_to_string(root.join("plugins/template/src/lib.rs"))?;
show_html(&format!("<details><summary>plugins/template/src/lib.rs</summary><pre>{}</pre></details>", html_escape(&source)));"""),
    md("""
## 2. Run it on the SAE codes
The host is the same `AnalysisHost` that `audiosae analyze` builds: the store of 01, the SAE of 02,
no labels. `run` takes the `--param` pairs as a map.
"""),
    code("""
let host = AnalysisHost::open(&p.store_dir()?, &[p.sae_dir()], None, device, 80)?;
let report = template.run(&host, &[("top".to_string(), "8".to_string())].into())?;
host.finish_progress();
println!("summary: {:#}", report.summary);
show_html(&table_html(&report.tables[0], 8));"""),
    md("""
A misspelt parameter is an error that names the plugin's file, not a silently ignored option:
"""),
    code("""
match template.run(&host, &[("tpo".to_string(), "8".to_string())].into()) {
    Ok(_) => println!("accepted?!"),
    Err(e) => println!("refused: {e:#}"),
};"""),
    md("""
## 3. A new plugin: how long do units stay on?
04 matched units to phones, which last 50–150 ms. A complementary question needs no labels: for
how long does a unit fire once it switches on? Units that track phones should stay on for a phone's
duration; shorter runs point to transient events (onsets, bursts), longer ones to slow properties
(speaker, channel, a whole word). The plugin below answers it in 40 lines. This is the workflow of
`plugins/template/README.md`: copy the template's `Cargo.toml`, rename the package, point the API
dependency at the checkout, add an empty `[workspace]`, write `src/lib.rs`, `cargo build --release`.
"""),
    code("const PLUGIN_SOURCE: &str = r##\"" + PLUGIN_SOURCE + "\"##;\n" + """
/// Writes a plugin crate at `dir` from the template's Cargo.toml: package `package`, built against
/// the API crate at `api`, with its own workspace and the repository's lock file (offline builds).
fn write_crate(dir: &Path, package: &str, api: &Path, source: &str) -> Result<()> {
    let root = audiosae::notebook::repo_root();
    let template = std::fs::read_to_string(root.join("plugins/template/Cargo.toml"))?;
    let toml = template.replace("name = \\"audiosae-plugin-template\\"", &format!("name = \\"{package}\\""))
        .replace("path = \\"../api\\"", &format!("path = \\"{}\\"", api.display()));
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(dir.join("Cargo.toml"), toml + "\\n[workspace]\\n")?;
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    std::fs::write(dir.join("src/lib.rs"), source)?;
    Ok(())
}
/// `cargo build --release` of the crate at `dir` into `target`; returns the library.
fn cargo_build(dir: &Path, package: &str, target: &Path) -> Result<std::path::PathBuf> {
    let out = std::process::Command::new("cargo").current_dir(dir).env("CARGO_TARGET_DIR", target)
        .args(["build", "--release", "--offline", "-q"]).output()?;
    anyhow::ensure!(out.status.success(), "cargo build in {}:\\n{}", dir.display(), String::from_utf8_lossy(&out.stderr));
    Ok(library(&target.join("release"), package))
}
// The folder where the plugin tests build their template copies: its dependencies are usually built.
let target = root.join("target/plugin-tests");
let mine = p.work_dir.join("10-run-lengths");
write_crate(&mine, "run-lengths", &root.join("plugins/api"), PLUGIN_SOURCE)?;
let lib = cargo_build(&mine, "run-lengths", &target)?;
println!("built {}", lib.display());"""),
    md("""
## 4. Load and run it
Exactly like the template; its table lists every live unit, longest runs first, and the picture
draws them all. From the command line it is
`AUDIOSAE_PLUGIN_PATH=<folder of the .so> audiosae analyze --plugin run-lengths --sae SAE --store STORE --out DIR`.
"""),
    code("""
let run_lengths = load(&lib)?;
println!("loaded {} {}: {}", run_lengths.info.name, run_lengths.info.version, run_lengths.info.description);
let report = run_lengths.run(&host, &Default::default())?;
host.finish_progress();
println!("summary: {:#}", report.summary);
show_html(&table_html(&report.tables[0], 10));
let ms = column_f64(&report.tables[0], "mean_run_ms")?;
let curve = Series { label: "mean run".into(), points: ms.iter().enumerate().map(|(i, &m)| ((i + 1) as f64, m)).collect() };
let png = p.work_dir.join("10-run-lengths.png");
line_panels_png(&png, true, &[("Mean run length of every live unit, longest first", "unit rank", "ms", true, vec![curve])])?;
show_png(&png)?;"""),
    md("""
The median unit stays on for about two frames (40 ms), shorter than a typical phone: most units
mark a moment inside a phone (an onset, a burst, a formant transition) rather than the whole phone.
The longest runs, a few hundred milliseconds, belong to the units that fire most often (compare the
template's table): candidates for slow properties such as the speaker, the channel or the position
in the clip, rather than phones.

## 5. A plugin built against another API version is refused
A copy of the API crate with `API_VERSION` bumped to 999 stands for an old or newer audiosae. The
same plugin built against it loads as a library, but the host reads its descriptor first and
refuses it, naming the file and what differs; none of its code runs. (An edited boundary without a
version bump is caught the same way by the layout hash; `core/tests/plugins.rs` tests both.)
"""),
    code("""
/// Copies `from` to `to` recursively, without `target` folders.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_name() == "target" { continue; }
        if e.file_type()?.is_dir() { copy_dir(&e.path(), &to.join(e.file_name()))?; } else { std::fs::copy(e.path(), to.join(e.file_name()))?; }
    }
    Ok(())
}
/// A copy of the API crate at `to` whose `API_VERSION` is `version`.
fn api_with_version(to: &Path, version: u32) -> Result<()> {
    copy_dir(&audiosae::notebook::repo_root().join("plugins/api"), to)?;
    let lib_rs = to.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib_rs)?;
    let current = format!("pub const API_VERSION: u32 = {};", audiosae::plugins::api::API_VERSION);
    anyhow::ensure!(source.contains(&current), "{} has no `{current}`", lib_rs.display());
    std::fs::write(&lib_rs, source.replace(&current, &format!("pub const API_VERSION: u32 = {version};")))?;
    Ok(())
}
let api_v999 = p.work_dir.join("10-api-v999");
api_with_version(&api_v999, 999)?;
let old = p.work_dir.join("10-run-lengths-other-api");
write_crate(&old, "run-lengths-other-api", &api_v999, PLUGIN_SOURCE)?;
let old_lib = cargo_build(&old, "run-lengths-other-api", &target)?;
match load(&old_lib) {
    Ok(_) => println!("loaded?!"),
    Err(e) => println!("refused: {e:#}"),
};"""),
    md("""
**Summary.** A plugin is one `impl Plugin` and one `export_plugin!` line; it builds in seconds
against a crate that knows nothing of torch; the host gives it the store, SAEs, labels and model
through one small C-compatible boundary and checks the boundary's version before trusting the
library. Rebuild plugins after updating audiosae or the compiler: both are part of the check.
"""),
]
