from common import PRELUDE, code, md

NAME = "06-seed-consistency"
CELLS = [
    md("""
# 06 · Are the features real? Consistency across seeds

An SAE's dictionary depends on its random initialisation and on the order of its batches. A unit
that reappears, with the same decoder direction, when the SAE is trained again with another seed is
more likely a property of the representation than of the run. We train the same SAE with each seed
of `params.seeds`, then let the **seed-matching** plugin pair the units of every two runs one to one
so that the total cosine of their decoder atoms is maximal (an exact optimal assignment: the
Hungarian method up to 512 units, Jonker–Volgenant above).
"""),
    code(PRELUDE + """
use audiosae::notebook::{build_plugins, column_f64, select, table_html, topk_config, train_on_store};
use audiosae::plugins::api::{Table, Value};
use audiosae::plugins::Analysis;
let store = p.store_dir()?;
build_plugins(&["seed-matching"])?;
let d_in = audiosae::store::StoreReader::open(&store)?.d();"""),
    md("""
## Train one SAE per seed
The width and k of 02-train, for a quarter of its steps each, so that the three runs fit this
notebook's time budget on a CPU. The seed sets both the initialisation and the batch order.
"""),
    code("""
let steps = (p.sae_steps / 4).max(1);
let mut saes = Vec::new();
for &seed in &p.seeds {
    let dir = p.work_dir.join(format!("06-seeds/seed{seed}"));
    let log = train_on_store(&store, &dir, topk_config(d_in, p.sae_width, p.sae_k, steps, seed, &p.device))?.log;
    let last = log.last().expect("a training log");
    println!("seed {seed}: {} latents, k {}, {steps} steps: FVU {:.3}, L0 {:.1}, dead {:.1}%", p.sae_width, p.sae_k, last.fvu, last.l0, 100.0 * last.dead_frac);
    saes.push(dir);
};"""),
    md("""
## Match the dictionaries
For every pair of runs: the mean cosine of matched atoms, the fraction of pairs above 0.5, 0.7 and
0.9, three references, and the MCC: the mean correlation of matched units' activations over the
store's frames. The references: `nearest` is each unit's best cosine without the one-to-one
constraint (an upper bound); `null` is what the same optimal matching finds against a random
Gaussian dictionary of the same size (the chance level to beat: in high dimensions random
directions are nearly orthogonal, but the assignment still picks the best of many); `random` is a
random pairing.
"""),
    code("""
let out = p.work_dir.join("06-seed-matching");
let report = Analysis::new("seed-matching", &store, &saes, &out).device(&p.device).run()?;
let mut pairs = select(report.table("pairs").expect("the pairs table"), &["sae_a", "sae_b", "mean_cosine", "frac_above_0.5", "frac_above_0.7", "frac_above_0.9", "nearest_mean_cosine", "null_mean_cosine", "random_mean_cosine", "mcc", "solver", "assignment_s"])?;
for row in &mut pairs.rows {
    for cell in &mut row[..2] {
        *cell = std::path::Path::new(&cell.to_csv()).file_name().map(|f| f.to_string_lossy().to_string()).into();
    }
}
show_html(&table_html(&pairs, 10));"""),
    md("""
## The matched-cosine histogram
One histogram per pair of runs: how similar each unit's best one-to-one partner is.
"""),
    code("""show_png(&out.join("matched_cosines.png"))?;"""),
    md("""
The distribution is skewed: its bulk sits a little above the null level (what an unrelated
dictionary gets), and a thin tail reaches above 0.5. Units in the tail are found again by the
other seed; the bulk are directions that the runs have not pinned down (split, merged or rotated among
neighbours, or still near their random start after this short training). The mean sits well above
the null and a little below the `nearest` bound: most units have a partial counterpart, and the
one-to-one constraint costs something, since where one run has one unit another may have two
half-aligned ones.

## Which features are stable?
Split the units of the first run into quartiles of how often they fire (the firing rate logged in
training) and look at their matched cosines to the second run.
"""),
    code("""
let density: Vec<f32> = Vec::try_from(&tch::Tensor::read_safetensors(saes[0].join("sparsity.safetensors"))?[0].1)?;
let matches = report.table("matches_0_1").cloned().expect("the matches_0_1 table");
let (unit, cosine, corr) = (column_f64(&matches, "unit_a")?, column_f64(&matches, "cosine")?, column_f64(&matches, "activation_corr")?);
let above: Vec<f64> = cosine.iter().map(|&c| f64::from(u8::from(c > 0.7))).collect();
let mut order: Vec<usize> = (0..unit.len()).collect();
order.sort_by(|&i, &j| density[unit[i] as usize].total_cmp(&density[unit[j] as usize]));
/// Mean of the finite `v[i]` over `rows`.
fn mean(v: &[f64], rows: &[usize]) -> f64 {
    let x: Vec<f64> = rows.iter().map(|&i| v[i]).filter(|x| x.is_finite()).collect();
    x.iter().sum::<f64>() / x.len().max(1) as f64
}
let mut t = Table::new("stability", &["firing-rate quartile", "log10 rate from", "to", "units", "mean matched cosine", "share > 0.7", "mean activation corr"]);
for (q, rows) in order.chunks(order.len().div_ceil(4)).enumerate() {
    let rate = |i: usize| f64::from(density[unit[rows[i]] as usize]);
    let row: Vec<Value> = vec![(q + 1).into(), rate(0).into(), rate(rows.len() - 1).into(), rows.len().into(),
        mean(&cosine, rows).into(), mean(&above, rows).into(), mean(&corr, rows).into()];
    t.push(row);
}
show_html(&table_html(&t, 4));"""),
    md("""
**What this says.** Stability tracks frequency: the quartile of units that fire most often is
found again by another seed with clearly higher cosines and correlated activations, while the
rarest quartile matches close to the null level. Frequent units are learned from many examples and
sit in well-determined directions; rare units are fitted to few frames and land wherever their
initialisation led them. For interpretation, prefer units that survive across seeds (match them
with this plugin before reading much into one), and train as long as 02 or longer when stability
matters: these runs are short. The same cells on the real Qwen2-Audio projector (`params.toml`)
test how reproducible that model's audio features are.
"""),
]
