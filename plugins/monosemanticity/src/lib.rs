//! `monosemanticity`: for every SAE unit, its top-activating frames (item, time, word, phone),
//! the purity and entropy of the labels of its top-N frames, its activation density, the
//! distribution of these over units, and HTML unit cards: a log-mel patch around each top
//! frame, its labels and the clip segment as an `<audio>` element.

mod top;

use audiosae_plugin_api::{
    export_plugin, AnalysisContext, Error, Figure, FigureFormat, ItemInfo, Params, Plugin, Report, Table, Value,
};
use audiosae_plugin_figures::{histograms_png, matrix_png};
use base64::Engine;
use serde_json::json;

use top::{purity_entropy, Hit, TopN};

#[derive(Default)]
pub struct Monosemanticity;

impl Plugin for Monosemanticity {
    fn name(&self) -> &str {
        "monosemanticity"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn describe(&self) -> &str {
        "Per unit: top-activating frames with item/time/word/phone, label purity and entropy of the top-N, \
         density; distribution over units; HTML unit cards with log-mel patches and audio. Params: top_n (20), \
         cards (12), card_frames (6), window_s (0.3), sae (0)."
    }

    fn run(&self, ctx: &AnalysisContext, params: &Params) -> Result<Report, Error> {
        let o = Options {
            top_n: params.get("top_n", 20)?,
            cards: params.get("cards", 12)?,
            card_frames: params.get("card_frames", 6)?,
            window_s: params.get("window_s", 0.3)?,
            sae: params.get("sae", 0)?,
        };
        params.check_all_used()?;
        if o.top_n == 0 {
            return Err(Error::new("top_n must be at least 1"));
        }
        run(ctx, &o)
    }
}

export_plugin!(Monosemanticity);

struct Options {
    top_n: usize,
    cards: usize,
    card_frames: usize,
    window_s: f64,
    sae: usize,
}

/// What one pass over the store collects per unit.
struct UnitStats {
    active: u64,
    sum: f64,
    top: TopN,
}

/// The labels of every frame of the store, per tier (`None` for unaligned items).
struct FrameLabels {
    tiers: Vec<String>,
    /// `[item][tier]`.
    items: Vec<Vec<Option<Vec<String>>>>,
}

impl FrameLabels {
    fn get(&self, item: usize, local: usize, tier: usize) -> Option<&str> {
        self.items[item].get(tier)?.as_ref()?.get(local).map(String::as_str)
    }
}

/// The item holding global frame `frame` and the frame's index inside it.
fn locate(items: &[ItemInfo], frame: usize) -> (usize, usize) {
    let i = items.partition_point(|it| it.first_frame <= frame) - 1;
    (i, frame - items[i].first_frame)
}

struct UnitRow {
    unit: usize,
    density: f64,
    mean_active: f64,
    top: Vec<Hit>,
    /// Per tier: (most common label, purity, entropy bits) of the top frames' labels.
    purity: Vec<Option<(String, f64, f64)>>,
}

fn run(ctx: &AnalysisContext, o: &Options) -> Result<Report, Error> {
    let sae = ctx.saes()?.into_iter().nth(o.sae).ok_or_else(|| Error::new(format!("no SAE #{} (--sae)", o.sae)))?;
    let store = ctx.store()?;
    let items = ctx.items()?;
    let mut stats: Vec<UnitStats> =
        (0..sae.d_sae).map(|_| UnitStats { active: 0, sum: 0.0, top: TopN::new(o.top_n) }).collect();
    let mut labels = FrameLabels { tiers: store.label_tiers.clone(), items: Vec::with_capacity(items.len()) };
    let mut n_frames = 0usize;
    for (i, item) in items.iter().enumerate() {
        let codes = ctx.encode(o.sae, &ctx.frames(i)?)?;
        for (r, row) in codes.chunks_exact(sae.d_sae).enumerate() {
            for (u, &v) in row.iter().enumerate().filter(|(_, &v)| v > 0.0) {
                let s = &mut stats[u];
                s.active += 1;
                s.sum += v as f64;
                s.top.push(Hit { value: v, frame: item.first_frame + r });
            }
        }
        labels.items.push(labels.tiers.iter().map(|t| ctx.labels(i, t)).collect::<Result<_, _>>()?);
        n_frames += item.n_frames;
        ctx.progress("encoding", i as u64 + 1, items.len() as u64);
    }
    let units: Vec<UnitRow> = stats
        .into_iter()
        .enumerate()
        .map(|(unit, s)| {
            let top = s.top.into_sorted();
            let purity = (0..labels.tiers.len())
                .map(|t| {
                    purity_entropy(top.iter().filter_map(|h| {
                        let (item, local) = locate(&items, h.frame);
                        labels.get(item, local, t)
                    }))
                })
                .collect();
            let density = s.active as f64 / n_frames.max(1) as f64;
            let mean_active = if s.active > 0 { s.sum / s.active as f64 } else { 0.0 };
            UnitRow { unit, density, mean_active, top, purity }
        })
        .collect();

    let live: Vec<&UnitRow> = units.iter().filter(|u| u.density > 0.0).collect();
    let tables = vec![
        unit_table(&units, &labels.tiers),
        top_frame_table(&live, &items, &labels),
        distribution_table(&live, &labels.tiers),
    ];
    let mut panels: Vec<(String, Vec<f64>)> =
        vec![("log10 density".into(), live.iter().map(|u| u.density.log10()).collect())];
    for (t, tier) in labels.tiers.iter().enumerate() {
        panels.push((
            format!("{tier} purity (top {})", o.top_n),
            live.iter().filter_map(|u| u.purity[t].as_ref().map(|p| p.1)).collect(),
        ));
    }
    let panels: Vec<(&str, Vec<f64>)> = panels.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
    let figures = vec![histograms_png("distribution", &panels, 20)?, unit_cards(ctx, o, &live, &items, &labels)?];

    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let mut summary = json!({
        "sae": sae.path, "d_sae": sae.d_sae, "frames": n_frames, "top_n": o.top_n,
        "live_units": live.len(), "dead_units": units.len() - live.len(),
        "median_density_live": median(live.iter().map(|u| u.density).collect()),
    });
    for (t, tier) in labels.tiers.iter().enumerate() {
        let p: Vec<f64> = live.iter().filter_map(|u| u.purity[t].as_ref().map(|p| p.1)).collect();
        summary[format!("median_{tier}_purity")] = json!(median(p.clone()));
        summary[format!("fraction_{tier}_purity_above_0.8")] =
            json!(p.iter().filter(|&&x| x >= 0.8).count() as f64 / live.len().max(1) as f64);
    }
    Ok(Report { summary, tables, figures })
}

fn unit_table(units: &[UnitRow], tiers: &[String]) -> Table {
    let mut cols: Vec<String> =
        ["unit", "density", "mean_active", "max_activation", "top_frames"].map(String::from).to_vec();
    for t in tiers {
        cols.extend([format!("top_{t}"), format!("{t}_purity"), format!("{t}_entropy_bits")]);
    }
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut table = Table::new("units", &cols);
    for u in units {
        let mut row: Vec<Value> = vec![
            u.unit.into(),
            u.density.into(),
            u.mean_active.into(),
            u.top.first().map(|h| h.value).into(),
            u.top.len().into(),
        ];
        for p in &u.purity {
            match p {
                Some((label, purity, entropy)) => {
                    row.extend([label.as_str().into(), (*purity).into(), (*entropy).into()])
                }
                None => row.extend([Value::Null, Value::Null, Value::Null]),
            }
        }
        table.push(row);
    }
    table
}

fn top_frame_table(live: &[&UnitRow], items: &[ItemInfo], labels: &FrameLabels) -> Table {
    let mut cols: Vec<String> = ["unit", "rank", "item", "frame", "time_s", "activation"].map(String::from).to_vec();
    cols.extend(labels.tiers.iter().cloned());
    let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut table = Table::new("top_frames", &cols);
    for u in live {
        for (rank, h) in u.top.iter().enumerate() {
            let (item, local) = locate(items, h.frame);
            let mut row: Vec<Value> = vec![
                u.unit.into(),
                rank.into(),
                items[item].id.as_str().into(),
                local.into(),
                items[item].timing.center(local).into(),
                h.value.into(),
            ];
            row.extend((0..labels.tiers.len()).map(|t| labels.get(item, local, t).map(str::to_string).into()));
            table.push(row);
        }
    }
    table
}

/// Quantiles of density, purity and entropy over live units.
fn distribution_table(live: &[&UnitRow], tiers: &[String]) -> Table {
    let mut table = Table::new("distribution", &["metric", "units", "mean", "p10", "p25", "p50", "p75", "p90"]);
    let mut metrics: Vec<(String, Vec<f64>)> = vec![("density".into(), live.iter().map(|u| u.density).collect())];
    for (t, tier) in tiers.iter().enumerate() {
        let of = |k: usize| -> Vec<f64> {
            live.iter().filter_map(|u| u.purity[t].as_ref().map(|p| if k == 0 { p.1 } else { p.2 })).collect()
        };
        metrics.push((format!("{tier}_purity"), of(0)));
        metrics.push((format!("{tier}_entropy_bits"), of(1)));
    }
    for (name, mut v) in metrics {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| -> Value { v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().into() };
        let mean = if v.is_empty() { Value::Null } else { (v.iter().sum::<f64>() / v.len() as f64).into() };
        table.push(vec![name.into(), v.len().into(), mean, q(0.1), q(0.25), q(0.5), q(0.75), q(0.9)]);
    }
    table
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A PNG of the log-mel around `t` (the host's log-mel; if it has none, the item's features).
fn patch_png(
    ctx: &AnalysisContext,
    item: usize,
    local: usize,
    t: f64,
    window_s: f64,
) -> Result<(Vec<u8>, &'static str), Error> {
    match ctx.log_mel(item, t - window_s, t + window_s) {
        Ok(m) => Ok((matrix_png(&m.values, m.n_mels, m.n_frames, 2)?, "log-mel")),
        Err(_) => {
            let (frames, d) = (ctx.frames(item)?, ctx.store()?.d);
            let n = frames.len() / d;
            let (a, b) = (local.saturating_sub(8), (local + 9).min(n));
            let mut m = vec![0f32; d * (b - a)];
            for (j, f) in (a..b).enumerate() {
                for k in 0..d {
                    m[k * (b - a) + j] = frames[f * d + k];
                }
            }
            Ok((matrix_png(&m, d, b - a, 4)?, "features"))
        }
    }
}

/// HTML cards of the `cards` live units with the purest top frames (first tier), each with
/// `card_frames` top frames: patch, labels, and the clip segment to play.
fn unit_cards(
    ctx: &AnalysisContext,
    o: &Options,
    live: &[&UnitRow],
    items: &[ItemInfo],
    labels: &FrameLabels,
) -> Result<Figure, Error> {
    let mut chosen: Vec<&&UnitRow> = live.iter().filter(|u| u.top.len() >= o.top_n.min(5)).collect();
    let purity = |u: &UnitRow| u.purity.first().and_then(|p| p.as_ref().map(|p| p.1)).unwrap_or(0.0);
    chosen.sort_by(|a, b| purity(b).total_cmp(&purity(a)).then(b.density.total_cmp(&a.density)));
    chosen.truncate(o.cards);
    let mut html = String::from(
        "<!doctype html><meta charset=\"utf-8\"><title>unit cards</title><style>body{font-family:sans-serif}\
         .card{border:1px solid #ccc;margin:8px;padding:8px}.hit{display:inline-block;margin:4px;vertical-align:top;\
         font-size:12px}img{display:block;image-rendering:pixelated}</style>\n",
    );
    for (k, u) in chosen.iter().enumerate() {
        html += &format!("<div class=\"card\"><h3>unit {} &mdash; density {:.4}", u.unit, u.density);
        for (t, tier) in labels.tiers.iter().enumerate() {
            if let Some((l, p, _)) = &u.purity[t] {
                html += &format!(", {tier}: {} ({:.0}%)", escape(l), p * 100.0);
            }
        }
        html += "</h3>\n";
        for h in u.top.iter().take(o.card_frames) {
            let (item, local) = locate(items, h.frame);
            let it = &items[item];
            let t = it.timing.center(local);
            let (png, kind) = patch_png(ctx, item, local, t, o.window_s)?;
            let tags: Vec<String> = (0..labels.tiers.len())
                .map(|ti| format!("{}: {}", labels.tiers[ti], escape(labels.get(item, local, ti).unwrap_or("-"))))
                .collect();
            let (a, b) = ((t - o.window_s).max(0.0), t + o.window_s);
            html += &format!(
                "<div class=\"hit\"><img alt=\"{kind}\" src=\"data:image/png;base64,{}\">{} t={t:.2}s act={:.3}<br>{}<br>\
                 <audio controls preload=\"none\" src=\"file://{}#t={a:.2},{b:.2}\"></audio></div>\n",
                base64::engine::general_purpose::STANDARD.encode(png),
                escape(&it.id),
                h.value,
                tags.join(", "),
                escape(&it.audio),
            );
        }
        html += "</div>\n";
        ctx.progress("unit cards", k as u64 + 1, chosen.len() as u64);
    }
    Ok(Figure { name: "unit_cards".into(), format: FigureFormat::Html, bytes: html.into_bytes() })
}
