from common import PRELUDE, code, md

NAME = "07-capacity-sweep"
CELLS = [
    md("""
# 07 · Capacity: width against k

How much does a wider SAE help, and how much a denser one? The seed notebook sweeps the width `H`
with `topk = 1% of H`, so every wider SAE also activates more latents per frame. Width and L0
change together, and a lower FVU cannot be credited to either. Here the grid crosses them: three
widths × two values of `k`, every point an independent run (`audiosae sweep` does the same, one
run per Slurm array task on a cluster), evaluated on the held-out clips.

The grid follows `notebooks/params.toml`: widths `sae_width`/4, /2 and ×1, k = `sae_k`/2 and
`sae_k`, seed `seeds[0]`, and a third of `sae_steps` per run, so the sweep stays a few minutes on
a laptop CPU. Short runs are not converged: compare the points with each other, not with 02's SAE.
"""),
    code(PRELUDE + """
use audiosae::notebook::{table_html, topk_config, train_on_store};
use audiosae::plugins::api::{Table, Value};
use audiosae::plugins::CorpusLabels;
use audiosae::sae::{checkpoint, eval::{evaluate, write_metrics}, fidelity::downstream_fidelity, store_source::SplitStore, sweep};
let store_dir = p.store_dir()?;
let split = SplitStore::open(&store_dir, 0.1)?;
// Downstream fidelity: the model the store came from, with its decoder, and the corpus's transcripts.
let model = audiosae::models::AudioModel::load(&p.model, audiosae::device::parse_device(&p.device)?, tch::Kind::Float, true)?;
let layer: audiosae::models::LayerSpec = split.reader.config().layer.parse()?;
let labels = CorpusLabels::new(p.open_corpus()?, Default::default());
let widths = [p.sae_width / 4, p.sae_width / 2, p.sae_width];
let ks = [p.sae_k / 2, p.sae_k];
let steps = p.sae_steps / 3;
let points = sweep::grid(&widths, &ks, &p.seeds[..1]);
let sweep_dir = p.work_dir.join("07-sweep");
println!("{} runs: widths {widths:?} x k {ks:?}, seed {}, {steps} steps of 512 frames each -> {}", points.len(), p.seeds[0], sweep_dir.display());"""),
    md("""
## Run the grid
Each point trains a TopK SAE into `07-sweep/w{width}-k{k}-s{seed}/` and evaluates it on the
held-out clips into its `eval/` folder, which is what `sweep::collect` reads. The folder is cleared
first, so that the table always comes from this run's parameters.
"""),
    code("""
if sweep_dir.exists() {
    std::fs::remove_dir_all(&sweep_dir)?;
}
for pt in &points {
    let dir = sweep::run_dir(&sweep_dir, pt);
    let t0 = std::time::Instant::now();
    let run = train_on_store(&store_dir, &dir, topk_config(split.reader.d(), pt.width, pt.k, steps, pt.seed, &p.device))?;
    let (sae, scale) = checkpoint::load_sae(&dir, run.sae.device())?;
    let mut m = evaluate(&sae, scale, &split.test_items(), 200_000, Some(&dir.join("eval")))?;
    let transcript = |it: &audiosae::store::ItemEntry| labels.transcript(it).map(str::to_string);
    let f = downstream_fidelity(&model, layer, &sae, scale, &split, &transcript, 20)?;
    println!("{:<14} FVU {:.3}  L0 {:>4.1}  dead {:>4.1}%  CE recovered {:.3}  KL {:.3}  ({:.0} s)", pt.dir_name(), m.fvu, m.l0,
        100.0 * m.dead_frac, f.ce_loss_recovered_mean_ablation.unwrap_or(f64::NAN), f.kl, t0.elapsed().as_secs_f64());
    m.fidelity = Some(f);
    write_metrics(&m, &dir.join("eval"))?;
}"""),
    md("""
## The table
`sweep::collect` gathers every run's held-out metrics into `sweep.csv` (one row per run) and draws
the two figures below. Note the dead latents: at the small `k` the widest SAE leaves some latents
unused in so short a run (each frame offers only `k` slots to be shared among `H` latents), while
at the larger `k` almost every latent gets used.
"""),
    code("""
let rows = sweep::collect(&sweep_dir, &points)?;
let mut t = Table::new("sweep", &["width", "k", "seed", "FVU", "L0", "dead %", "dense %", "cosine", "CE recovered (mean abl.)", "CE recovered (zero abl.)", "KL", "WER vs clean"]);
for r in &rows {
    let m = r.metrics.as_ref().expect("every run finished");
    let f = m.fidelity.as_ref().expect("fidelity measured");
    t.push(vec![r.point.width.into(), r.point.k.into(), (r.point.seed as usize).into(), m.fvu.into(), m.l0.into(),
        (100.0 * m.dead_frac).into(), (100.0 * m.dense_frac).into(), m.cosine.into(), f.ce_loss_recovered_mean_ablation.into(),
        f.ce_loss_recovered.into(), f.kl.into(), f.wer_sae_vs_clean.into()]);
}
show_html(&table_html(&t, 20));
println!("written: {}", sweep_dir.join("sweep.csv").display());"""),
    md("""
## FVU against width, at fixed k
One line per `k` (log axes; the FVU axis spans one decade). Along a line only the width changes:
this is the effect of capacity alone. The gap between the lines at one width is the effect of `k`
alone.
"""),
    code("""show_png(&sweep_dir.join("fvu_vs_width.png"))?;"""),
    md("""
## FVU against L0
One line per width. For TopK, L0 equals `k`; the curve is the sparsity–fidelity trade-off that
SAE papers report, and a wider SAE should sit lower at the same L0.
"""),
    code("""show_png(&sweep_dir.join("fvu_vs_l0.png"))?;"""),
    md("""
## What the model says with the SAE in its place
FVU measures the reconstruction; what matters downstream is how much of the model's behaviour
survives when the reconstruction *replaces* the layer. Each run's SAE was spliced into Whisper at
the store's layer, and the held-out clips' transcripts were teacher-forced (`docs/whisper.md`):
CE loss recovered is 1 when the splice costs nothing and 0 when it is as bad as replacing the layer
by its mean frame (or by zeros). The KL is per transcript token, in nats.
"""),
    code("""show_png(&sweep_dir.join("ce_recovered.png"))?;"""),
    md("""
## Why `topk = 1% of H` confounds width and k
With the seed's rule, going from `H` to `2H` also doubles `k`: it moves along the diagonal of
this grid, from (width/2, k/2) to (width, k). The grid splits that step into its two parts: the
same width step at a fixed `k`, and the same `k` step at a fixed width.
"""),
    code("""
/// Held-out FVU of the run at (width, k).
fn fvu(rows: &[audiosae::sae::sweep::SweepRow], width: usize, k: usize) -> f64 {
    let r = rows.iter().find(|r| r.point.width == width && r.point.k == k).expect("a grid point");
    r.metrics.as_ref().expect("a finished run").fvu
}
let (w1, w2, k1, k2) = (widths[1], widths[2], ks[0], ks[1]);
let diagonal = fvu(&rows, w1, k1) - fvu(&rows, w2, k2);
let width_only = fvu(&rows, w1, k1) - fvu(&rows, w2, k1);
let k_only = fvu(&rows, w1, k1) - fvu(&rows, w1, k2);
println!("seed-style step ({w1}, k {k1}) -> ({w2}, k {k2}): FVU falls by {diagonal:.3}");
println!("  width alone   ({w1} -> {w2} at k {k1}):  {width_only:.3}");
println!("  k alone       (k {k1} -> {k2} at width {w1}): {k_only:.3}");"""),
    md("""
In this grid, doubling `k` lowers the FVU several times more than doubling the width: most of
the seed's "wider is better" gain comes from the extra active latents, not the extra capacity.
That is a statement about reconstruction only. More active latents per frame make each latent
less specific, so FVU alone cannot choose `k`; compare SAEs at **equal L0** (the FVU-vs-L0 plot)
and judge the features themselves (notebooks 04–06).
"""),
]
