from common import PRELUDE, code, md

NAME = "02-train"
CELLS = [
    md("""
# 02 · Train a sparse autoencoder on the frames

A sparse autoencoder (SAE) rewrites every frame `x` (here a 384-dim Whisper encoder frame) as a
sparse combination of many learned directions, the decoder **atoms**: `x ≈ b_dec + Σ h_i W_dec[i]`
with only a few non-zero codes `h_i`. If the model stores speech sounds as directions, some atoms
should line up with them, and the codes become readable units.

We train the standard **TopK** SAE (OpenAI/sparsify): the encoder keeps the `k` largest
pre-activations of each frame, decoder rows have unit norm, and an auxiliary loss (AuxK) pulls
unused latents back towards the residual so that few of them die. Width, `k`, steps and seed come
from `notebooks/params.toml`.

The data is the activation store 01-extract wrote. Items (clips), not frames, are split into train
and test: an item is held out when a hash of its id falls below 10 %, so the same clips are held
out for every run, and no frame of a test clip is ever seen in training. Frames of one clip are
strongly correlated, so a split by frame would leak.
"""),
    code(PRELUDE + """
use audiosae::notebook::{table_html, topk_config, train_on_store};
use audiosae::plugins::api::{Table, Value};
use audiosae::sae::store_source::{is_test_item, SplitStore};
let store_dir = p.store_dir()?;
let sae_dir = p.sae_dir();
let split = SplitStore::open(&store_dir, 0.1)?;
let d_in = split.reader.d();
let (test_items, test_frames) = split.reader.items().iter()
    .filter(|it| is_test_item(&it.meta.id, split.test_frac))
    .fold((0, 0), |(n, f), it| (n + 1, f + it.rows()));
let train_frames = split.train_rows().len();
println!("store {}: {} items, {} frames of d = {d_in}", store_dir.display(), split.reader.items().len(), split.reader.rows());
println!("  train: {} items, {train_frames} frames", split.reader.items().len() - test_items);
println!("  test:  {test_items} items, {test_frames} frames (held out by item)");"""),
    md("""
## The run
The notebooks' TopK set-up (`audiosae::notebook::topk_config`): Adam at lr 1e-3 with cosine decay,
batches of 512 frames drawn without replacement from the training frames, `b_dec` initialised at
the geometric median of a sample. This is `audiosae train --arch topk` with the same flags.
"""),
    code("""
let cfg = topk_config(d_in, p.sae_width, p.sae_k, p.sae_steps, p.seeds[0], &p.device);
let frames_seen = cfg.steps * cfg.batch_size;
println!("TopK SAE: d_in {} -> {} latents, k = {} ({:.1}% of latents active per frame)",
    cfg.sae.d_in, cfg.sae.d_sae, cfg.sae.k.unwrap(), 100.0 * cfg.sae.k.unwrap() as f64 / cfg.sae.d_sae as f64);
println!("{} steps x {} frames = {frames_seen} frames, {:.1} passes over the training frames; seed {}, device {}",
    cfg.steps, cfg.batch_size, frames_seen as f64 / train_frames as f64, cfg.seed, cfg.device);"""),
    code("""
if sae_dir.exists() {
    std::fs::remove_dir_all(&sae_dir)?; // always a fresh run
}
let t0 = std::time::Instant::now();
let run = train_on_store(&store_dir, &sae_dir, cfg.clone())?;
let secs = t0.elapsed().as_secs_f64();
let last = run.log.last().expect("a log row").clone();
println!("trained in {secs:.0} s ({:.0} frames/s)", frames_seen as f64 / secs);
println!("last {} steps: FVU {:.3}, L0 {:.1}, dead {:.1}%", cfg.log_every, last.fvu, last.l0, 100.0 * last.dead_frac);"""),
    md("""
## Training curves
`train` writes `training_curve.png` next to the SAE. Read it top to bottom:

* **loss** and **FVU** (fraction of variance unexplained, Σ‖x − x̂‖² / Σ‖x − x̄‖² over the batch;
  for TopK the loss is the FVU plus the small AuxK term) fall fast in the first hundred steps, as
  the atoms find the dominant directions, then slowly as the cosine schedule anneals;
* **L0** is pinned at `k` by construction: TopK sets the sparsity, the optimiser only chooses
  *which* latents fire;
* **dead latents** counts latents that have not fired for `dead_window_frames` (10 M frames by
  default, longer than this whole run), so here it stays at 0 by construction. The held-out firing
  densities in 03 are the real check for dead latents.
"""),
    code("""show_png(&sae_dir.join("training_curve.png"))?;"""),
    md("""
The same numbers as a table (`train_log.csv`; each row averages the steps since the previous
one). `frames/s` is the training throughput on this device.
"""),
    code("""
let mut t = Table::new("train_log", &["step", "frames", "loss", "FVU", "L0", "dead %", "lr", "grad norm", "frames/s"]);
let every = (run.log.len() / 10).max(1);
for (_, r) in run.log.iter().enumerate().filter(|(i, _)| i % every == 0 || *i + 1 == run.log.len()) {
    t.push(vec![r.step.into(), (r.frames as usize).into(), r.loss.into(), r.fvu.into(), r.l0.into(),
        (100.0 * r.dead_frac).into(), r.lr.into(), r.grad_norm.into(), r.frames_per_s.into()]);
}
show_html(&table_html(&t, 20));"""),
    md("""
## The saved SAE
The run is saved in the SAELens layout under **`{work_dir}/sae`** (`out/notebooks/work/sae` with
the default parameters): `cfg.json` and `sae_weights.safetensors` (`W_enc [d_in, d_sae]`,
`W_dec [d_sae, d_in]`, `b_enc`, `b_dec`), `sparsity.safetensors` (log10 firing density over the
last steps), the logs, and `training_state/` for `--resume`. Notebooks 03 to 06 and 09 load this
folder. Reloading it encodes held-out frames exactly as the trained model in memory does:
"""),
    code("""
use audiosae::sae::ItemSource;
for entry in std::fs::read_dir(&sae_dir)? {
    let entry = entry?;
    let meta = entry.metadata()?;
    println!("  {:<28} {}", entry.file_name().to_string_lossy(), if meta.is_dir() { "(dir)".to_string() } else { format!("{:.1} kB", meta.len() as f64 / 1e3) });
}
let (saved, scale) = audiosae::sae::checkpoint::load_sae(&sae_dir, run.sae.device())?;
let (id, x) = split.test_items().item(0)?;
let diff = (saved.encode(&(&x * scale)) - run.sae.encode(&(&x * run.input_scale))).abs().max().double_value(&[]);
println!("held-out item {id}: max |h_saved - h_trained| = {diff:.1e}");"""),
    md("""
## A first look at the codes
One held-out clip: the 32 latents that are most active on it, over time, with the phones
underneath (each frame takes the phone whose interval covers its centre). Even after this short
run the code is sparse in time as well: most latents are silent on most of the clip, some light up
for a single phone (short bars), others span a syllable or a word, and their on/off edges tend to
fall on phone boundaries. Notebook 03 measures how well the SAE reconstructs, and which sounds it
handles badly.
"""),
    code("""
use audiosae::corpus::Corpus;
use audiosae::plot::{heatmap_with_tier_png, Heatmap, Segment};
use audiosae::plugins::CorpusLabels;
use audiosae::textgrid::PhoneSet;
let labels = CorpusLabels::new(Corpus::open(&p.corpus)?, PhoneSet::Arpabet39);
let timing = split.reader.config().timing;
// A held-out clip of 2 to 8 s that has a phone alignment.
let mut clip = None;
for (i, it) in split.reader.items().iter().enumerate() {
    if is_test_item(&it.meta.id, split.test_frac) && (2.0..8.0).contains(&it.meta.duration_s) {
        if let Some(l) = labels.frame_labels(it, it.timing(timing), "phones")? {
            clip = Some((i, l));
            break;
        }
    }
}
let (index, phones) = clip.expect("a held-out clip with phones");
let item = split.reader.item_at(index);
let x = tch::Tensor::from_slice(item.frames.as_slice().unwrap()).view([item.frames.nrows() as i64, -1]);
let h = saved.encode(&(&x * scale));
let top = h.sum_dim_intlist([0i64].as_slice(), false, tch::Kind::Float).argsort(0, true).narrow(0, 0, 32);
let map = Heatmap::from_frames(format!("{}: 32 most active latents", item.meta.id), "latent (by total)", &h.index_select(1, &top), item.timing)?;
let png = p.work_dir.join("02-codes-phones.png");
heatmap_with_tier_png(&png, &map, "phones", &Segment::runs(&phones, item.timing))?;
show_png(&png)?;"""),
]
