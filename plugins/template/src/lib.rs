//! A minimal audiosae analysis plugin: the mean absolute SAE code of every unit over the store,
//! and the units that fire most often. Copy it to start your own (see `README.md`).
//!
//! A plugin is:
//! 1. a type that implements [`Plugin`] and `Default` (the host makes a fresh value per call);
//! 2. one `export_plugin!(Type);` line, which exports the ABI descriptor the host checks
//!    (API version, layout hash, compiler) before it calls anything.

use audiosae_plugin_api::{export_plugin, AnalysisContext, Error, Params, Plugin, Report, Table};

#[derive(Default)]
pub struct Template;

impl Plugin for Template {
    /// What `audiosae analyze --plugin NAME` selects: keep it unique among your plugins.
    fn name(&self) -> &str {
        "template"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    /// Shown by `audiosae plugins list`: say what it measures and which parameters it takes.
    fn describe(&self) -> &str {
        "Example plugin: mean |code| and firing rate per SAE unit. Params: top=N units to list (10)."
    }

    /// The analysis. `ctx` reaches the host (store, SAE, labels, log-mel); `params` holds the
    /// `--param key=value` pairs. Return errors with `?`; a panic is caught and reported too.
    fn run(&self, ctx: &AnalysisContext, params: &Params) -> Result<Report, Error> {
        // Read every parameter first, then reject typos.
        let top: usize = params.get("top", 10)?;
        params.check_all_used()?;

        // The SAE given with --sae (the first one if several).
        let sae = ctx.saes()?.into_iter().next().ok_or_else(|| Error::new("this plugin needs --sae"))?;
        let items = ctx.items()?;

        // Stream over items: frames [n, d_in] -> codes [n, d_sae], accumulate per unit.
        let mut sum_abs = vec![0f64; sae.d_sae];
        let mut fired = vec![0u64; sae.d_sae];
        let mut n_frames = 0u64;
        for (i, item) in items.iter().enumerate() {
            let codes = ctx.encode(0, &ctx.frames(i)?)?;
            for row in codes.chunks_exact(sae.d_sae) {
                for (u, &c) in row.iter().enumerate() {
                    sum_abs[u] += c.abs() as f64;
                    fired[u] += (c != 0.0) as u64;
                }
            }
            n_frames += item.n_frames as u64;
            // The host draws a progress bar.
            ctx.progress("encoding", i as u64 + 1, items.len() as u64);
        }

        // Tables become CSV files; columns are typed values (numbers, text, null).
        let mut table = Table::new("top_units", &["unit", "firing_rate", "mean_abs_code"]);
        let mut order: Vec<usize> = (0..sae.d_sae).collect();
        order.sort_by_key(|&u| std::cmp::Reverse(fired[u]));
        let n = n_frames.max(1) as f64;
        for &u in order.iter().take(top) {
            table.push(vec![u.into(), (fired[u] as f64 / n).into(), (sum_abs[u] / n).into()]);
        }

        // The summary is free-form JSON: put the headline numbers here.
        let dead = fired.iter().filter(|&&f| f == 0).count();
        Ok(Report {
            summary: serde_json::json!({ "items": items.len(), "frames": n_frames, "d_sae": sae.d_sae, "dead_units": dead }),
            tables: vec![table],
            figures: vec![],
        })
    }
}

// Exports the descriptor symbol `AUDIOSAE_PLUGIN_DESCRIPTOR`: exactly once per library.
export_plugin!(Template);
