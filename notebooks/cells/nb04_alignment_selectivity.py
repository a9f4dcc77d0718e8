from common import PRELUDE, code, md

NAME = "04-alignment-selectivity"
CELLS = [
    md("""
# 04 · Do SAE units line up with phones and words?

Every frame of the store has a label: the phone (and the word) whose TextGrid interval covers the
frame's centre, found through the store's frame timing. Phones are folded to ARPAbet-39 plus `sil`.
The **selectivity** plugin asks, for every SAE unit and every class: if the unit fires (code > 0),
is the frame that phone? It reports precision, recall, F1, the AUROC of the activation and a
selectivity index ((mean in − mean out) / pooled std).

A number like "F1 0.5" means little on its own, so the plugin computes the same metrics for two
**baselines** on the same frames: the raw dimensions of the representation, and as many random
unit directions. Each baseline unit counts as active above the quantile at which it fires as often
as the average live SAE unit, so density does not decide the comparison.

The SAE is the one 02-train wrote to `{work_dir}/sae`, on the store 01-extract wrote.
"""),
    code(PRELUDE + """
use audiosae::notebook::{build_plugins, table_html, top_rows};
use audiosae::plugins::api::{Table, Value};
use audiosae::plugins::Analysis;
let (store, sae) = (p.store_dir()?, p.sae_dir());
// The plugins are shared libraries: built here as `audiosae.sh demo` builds them.
let plugin_dir = build_plugins(&["selectivity"])?;
println!("store   {}\\nSAE     {}\\nplugins {}", store.display(), sae.display(), plugin_dir.display());"""),
    md("""
## Run the plugin
This is what `audiosae analyze --plugin selectivity --labels CORPUS` runs; the CSV tables and the
figures also land in `{work_dir}/04-selectivity/`.
"""),
    code("""
let out = p.work_dir.join("04-selectivity");
let report = Analysis::new("selectivity", &store, &[sae.clone()], &out).labels(&p.corpus).device(&p.device).run()?;
{
    let s = &report.summary;
    println!("{} frames x {} SAE units ({} dims); {} phone classes, {} word classes",
        s["frames"], s["d_sae"], s["d_in"], s["classes"]["phones"], s["classes"]["words"]);
    println!("baseline units fire on {:.2}% of frames, as often as the average live SAE unit", 100.0 * s["baseline_density"].as_f64().unwrap_or(0.0));
};"""),
    md("""
## SAE units against the baselines
Per tier and representation: the fraction of units whose best class reaches F1 ≥ 0.5 (selective),
the mean best F1, and, over live units, the median best AUROC and mean best selectivity index.
"""),
    code("""
let metrics = ["fraction_selective", "mean_best_f1", "median_best_auroc_live", "mean_best_selectivity_live"];
let mut t = Table::new("summary", &["tier", "representation", "units", "live", "fraction selective", "mean best F1", "median best AUROC", "mean best selectivity"]);
for tier in ["phones", "words"] {
    for rep in ["sae", "raw_dims", "random_dirs"] {
        let r = &report.summary[tier]["representations"][rep];
        let mut row: Vec<Value> = vec![tier.into(), rep.into(), r["units"].as_i64().into(), r["live_units"].as_i64().into()];
        row.extend(metrics.iter().map(|m| r[*m].as_f64().into()));
        t.push(row);
    }
}
show_html(&table_html(&t, 10));
println!("SAE beats both baselines on fraction selective: phones {}, words {}",
    report.summary["phones"]["sae_beats_baselines"], report.summary["words"]["sae_beats_baselines"]);"""),
    md("""
Read the rows together. Few units of any representation reach F1 0.5 on their best class, but the
SAE has the largest share of them (the line above checks this on both tiers); raw dimensions and
random directions, thresholded to fire just as often, rarely or never get there. The SAE's mean best F1 and
mean selectivity are higher too: the encoder spreads each phone over many dimensions, and the
sparse dictionary pulls phone-like directions back out. The median AUROC of SAE units is *lower*
than the baselines', which is not a contradiction: a TopK unit is exactly 0 on most frames, so its
ranking carries information only where it fires (what F1 and selectivity measure), while a dense
dimension ranks every frame.

## The most phone-selective units
Each SAE unit's best phone, by F1; `density` is the fraction of frames where the unit fires. Below
them, the best single raw dimensions and random directions: a few come close for one phone each.
"""),
    code("""
let best = report.table("best_class").cloned().expect("the best_class table");
let sae_units = top_rows(&best, "f1", 12, &[("representation", "sae"), ("tier", "phones")])?;
let raw = top_rows(&best, "f1", 3, &[("representation", "raw_dims"), ("tier", "phones")])?;
let random = top_rows(&best, "f1", 3, &[("representation", "random_dirs"), ("tier", "phones")])?;
let baselines = Table { rows: [raw.rows, random.rows].concat(), ..raw };
show_html(&format!("{}<p>The best raw dimensions and random directions, for comparison:</p>{}", table_html(&sae_units, 12), table_html(&baselines, 6)));"""),
    md("""
## Unit × phone F1
Rows: the most phone-selective SAE units, ordered by their best phone; columns: every phone class.
A clean diagonal means one unit ↔ one phone. Several units often share a phone (they split it by
context or speaker), and off-diagonal cells show phones that sound alike (nasals, stops with the
same place of articulation).
"""),
    code("""show_png(&out.join("unit_phone_f1.png"))?;"""),
    md("""
## Best-F1 distributions
The best F1 of every unit, per representation: the SAE's tail to the right is the selective units.
"""),
    code("""show_png(&out.join("best_f1_phones.png"))?;"""),
    md("""
## Words
The same question at word level (the 100 most frequent words). A word spans several phones, so a
unit reaches a high word F1 only if it fires through most of the word and rarely elsewhere: short
frequent words, or a distinctive stretch of a repeated word (the demo corpus's synthetic sentences
reuse a small vocabulary).
"""),
    code("""
show_html(&table_html(&top_rows(&best, "f1", 8, &[("representation", "sae"), ("tier", "words")])?, 8));
show_png(&out.join("best_f1_words.png"))?;"""),
    md("""
**What this says.** A small fraction of the units of a small SAE on Whisper tiny.en's encoder
(about one in a hundred in the run above) are clean phone or word detectors, and the dictionary as
a whole is more phone-aligned than the representation's own axes or random axes at the same firing
rate. Most units are *not* phone units: they respond to sub-phonetic events, transitions, speaker or
channel properties, which phone labels cannot score. Notebook 05 looks at units one by one; with
`model = "Qwen/Qwen2-Audio-7B-Instruct"` and `layer = "projector"` in `params.toml` the same cells
measure the audio features that Qwen2-Audio's language model reads.
"""),
]
