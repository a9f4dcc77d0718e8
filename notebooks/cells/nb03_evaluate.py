from common import PRELUDE, code, md

NAME = "03-evaluate"
CELLS = [
    md("""
# 03 · Evaluate the SAE on held-out clips

The training curve of 02 measures the SAE on the frames it learns from. Here we load the SAE that
02-train saved in `{work_dir}/sae` and measure it on the **held-out clips** only, with SAELens's
definitions (`audiosae eval` computes the same). Then we ask *where* it fails (which sounds), and
what the codes look like: PCA and UMAP views of the codes coloured by phone class, and a k-means
clustering of the decoder atoms scored against phone classes.
"""),
    code(PRELUDE + """
use audiosae::embed;
use audiosae::notebook::table_html;
use audiosae::plugins::api::{Table, Value};
use audiosae::sae::{checkpoint, eval::evaluate, store_source::{is_test_item, SplitStore}, ItemSource};
use tch::{Kind, Tensor};
let device = audiosae::device::parse_device(&p.device)?;
let (sae, scale) = checkpoint::load_sae(&p.sae_dir(), device)?;
let split = SplitStore::open(&p.store_dir()?, 0.1)?;
println!("SAE {}: {} {} -> {} latents, k = {:?}", p.sae_dir().display(), sae.cfg.arch, sae.cfg.d_in, sae.cfg.d_sae, sae.cfg.k);"""),
    md("""
## Held-out metrics
Over every held-out frame (definitions as in SAELens):

| metric | definition |
|---|---|
| MSE | mean over frames and dimensions of (x − x̂)² |
| FVU | Σ‖x − x̂‖² / Σ‖x − x̄‖²: the residual's share of the variance; explained variance = 1 − FVU |
| L0, L1 | active latents per frame, and the sum of their codes |
| dead, dense | latents that never fire; latents that fire on more than 10 % of frames |
| cosine | mean cos(x, x̂) |
| shrinkage | mean ‖x̂‖ / ‖x‖ (below 1: the SAE shrinks its reconstructions, as L1 penalties do) |

For scale, we also give the explained variance of the best fixed linear subspace with as many
dimensions as the SAE has active latents (PCA fitted on these very test frames, so an optimistic
bound for a linear code).
"""),
    code("""
let eval_dir = p.work_dir.join("03-eval");
let m = evaluate(&sae, scale, &split.test_items(), 200_000, Some(&eval_dir))?;
let k_pca = m.l0.round() as usize;
let pca_ev: f64 = {
    let x: Vec<Tensor> = (0..split.test_items().n_items()).map(|i| split.test_items().item(i).map(|(_, x)| x)).collect::<Result<_>>()?;
    embed::pca(&embed::tensor_rows(&Tensor::cat(&x, 0))?, k_pca)?.variance_ratio.iter().sum()
};
let mut t = Table::new("metrics", &["metric", "value"]);
for (name, v) in [("items", m.items as f64), ("frames", m.frames as f64), ("MSE", m.mse), ("FVU", m.fvu),
    ("explained variance", m.explained_variance), ("L0", m.l0), ("L1", m.l1), ("dead latents %", 100.0 * m.dead_frac),
    ("dense latents %", 100.0 * m.dense_frac), ("cosine", m.cosine), ("shrinkage", m.shrinkage)] {
    t.push(vec![name.into(), v.into()]);
}
t.push(vec![format!("PCA-{k_pca} explained variance").into(), pca_ev.into()]);
show_html(&table_html(&t, 20));"""),
    md("""
## How often each latent fires
The log10 firing density of every latent over the held-out frames. A healthy SAE has one broad
bump: with `k` of `H` latents active per frame the average density is k/H (here about −2), and no
latent should sit at the left edge (dead, density 0, drawn at −10) or near 0 (fires on every
frame: a bias direction, not a feature). The few latents on the right, firing on more than 10 %
of frames, include the position latents met further down.
"""),
    code("""
show_png(&eval_dir.join("feature_density.png"))?;
println!("mean density k/H = {:.4} (log10 {:.2})", m.l0 / sae.cfg.d_sae as f64, (m.l0 / sae.cfg.d_sae as f64).log10());"""),
    md("""
## Which clips are reconstructed badly
Per frame, the relative error ‖x − x̂‖² / ‖x‖², over time, for the five held-out clips with the
highest mean error.
"""),
    code("""
show_png(&eval_dir.join("per_item_error.png"))?;
let mut t = Table::new("worst", &["item", "frames", "mean relative error"]);
for w in m.worst_items.iter().take(5).chain(m.worst_items.iter().rev().take(2)) {
    t.push(vec![w.item.as_str().into(), w.frames.into(), w.mean_rel_error.into()]);
}
println!("the five worst and the two best held-out clips:");
show_html(&table_html(&t, 10));
// By source (the id's prefix): espeak-ng voices, or recorded speech (MFA and praatio test data).
fn source(id: &str) -> String {
    id.split('-').next().unwrap_or("").to_string()
}
let mut by_source: std::collections::BTreeMap<String, (usize, usize, f64)> = Default::default();
for it in split.reader.items().iter().filter(|it| !is_test_item(&it.meta.id, split.test_frac)) {
    by_source.entry(source(&it.meta.id)).or_default().0 += it.rows();
}
for w in &m.worst_items {
    let e = by_source.entry(source(&w.item)).or_default();
    e.1 += w.frames;
    e.2 += w.mean_rel_error * w.frames as f64;
}
for (src, (train, test, sum)) in &by_source {
    let err = if *test > 0 { format!("{:.3}", sum / *test as f64) } else { "- (none held out)".into() };
    println!("{src:<8} {train:>6} training frames, {test:>6} held-out frames, mean relative error {err}");
};"""),
    md("""
The demo corpus is mostly synthetic espeak-ng speech; the **recorded** clips (MFA and praatio test
data) are a few percent of the frames, and a 10 % split by item may hold none of them out (their
row then reads "none held out"). The SAE's dictionary follows its data: to study recorded speech,
point `params.toml` at a store of real speech such as LibriSpeech.
"""),
    md("""
## Which sounds are reconstructed badly
Each held-out frame takes the phone whose TextGrid interval covers its centre (through the store's
frame timing), folded into ARPAbet-39 and then into broad classes (vowel, stop, affricate,
fricative, nasal, approximant, silence). We keep every frame's code, its relative error and its
phone for the rest of the notebook.
"""),
    code("""
use audiosae::corpus::Corpus;
use audiosae::plugins::CorpusLabels;
use audiosae::textgrid::{phone_class, PhoneSet, PHONE_CLASSES};
/// Index of a phone's broad class in PHONE_CLASSES.
fn class_of(phone: &str) -> usize {
    PHONE_CLASSES.iter().position(|c| *c == phone_class(phone)).expect("a class")
}
let labels = CorpusLabels::new(Corpus::open(&p.corpus)?, PhoneSet::Arpabet39);
let timing = split.reader.config().timing;
let (mut codes, mut rel_err, mut phones) = (Vec::new(), Vec::<f64>::new(), Vec::<String>::new());
// Per frame: its store item and its index within the item (0 = the clip's first frame).
let (mut item_of, mut pos_of) = (Vec::<usize>::new(), Vec::<usize>::new());
for (i, it) in split.reader.items().iter().enumerate() {
    if !is_test_item(&it.meta.id, split.test_frac) {
        continue;
    }
    let Some(l) = labels.frame_labels(it, it.timing(timing), "phones")? else { continue };
    let frames = split.reader.item_at(i).frames;
    let x = Tensor::from_slice(frames.as_slice().unwrap()).view([frames.nrows() as i64, -1]).to_device(device);
    let h = tch::no_grad(|| sae.encode(&(&x * scale)));
    let err = (&x - sae.decode(&h) / scale).square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
        / x.square().sum_dim_intlist([1i64].as_slice(), false, Kind::Double).clamp_min(1e-12);
    rel_err.extend(Vec::<f64>::try_from(err.to_device(tch::Device::Cpu))?);
    codes.push(h.to_device(tch::Device::Cpu));
    phones.extend(l);
    item_of.extend(std::iter::repeat(i).take(frames.nrows()));
    pos_of.extend(0..frames.nrows());
}
let codes = Tensor::cat(&codes, 0);
let class: Vec<usize> = phones.iter().map(|ph| class_of(ph)).collect();
println!("{} labelled held-out frames from {} clips", phones.len(), item_of.iter().collect::<std::collections::BTreeSet<_>>().len());
// Mean relative error by class and by phone.
fn mean_by<K: Ord + Clone>(keys: &[K], v: &[f64]) -> Vec<(K, usize, f64)> {
    let mut acc: std::collections::BTreeMap<K, (usize, f64)> = Default::default();
    for (k, x) in keys.iter().zip(v) {
        let e = acc.entry(k.clone()).or_default();
        e.0 += 1;
        e.1 += x;
    }
    acc.into_iter().map(|(k, (n, s))| (k, n, s / n as f64)).collect()
}
let mut t = Table::new("by_class", &["class", "frames", "mean relative error"]);
for (c, n, e) in mean_by(&class, &rel_err) {
    t.push(vec![PHONE_CLASSES[c].into(), n.into(), e.into()]);
}
show_html(&table_html(&t, 10));
let mut by_phone: Vec<(String, usize, f64)> = mean_by(&phones, &rel_err).into_iter().filter(|r| r.1 >= 30).collect();
by_phone.sort_by(|a, b| b.2.total_cmp(&a.2));
/// `phone error (frames), ...`
fn fmt(rows: &[(String, usize, f64)]) -> String {
    rows.iter().map(|(ph, n, e)| format!("{ph} {e:.3} ({n})")).collect::<Vec<_>>().join(", ")
}
println!("worst phones (>= 30 frames): {}", fmt(&by_phone[..by_phone.len().min(5)]));
println!("best phones:                 {}", fmt(&by_phone[by_phone.len().saturating_sub(5)..]));"""),
    md("""
Across phone classes the mean error varies far less than across clips: the SAE has no class of
sounds that it fails on. (`other` is MFA's spoken-noise label, a handful of frames.) Within a
class the phones differ a little more; the ranking is printed above.

## One clip: the error over time, against its phones
The held-out clip of 1.5–4 s with the largest mean error: the relative error of every frame over
time, with its phone tier underneath. The error is not spread evenly over the clip: it peaks at a
few moments, often at a pause or at a fast transition between phones, where a 20 ms frame mixes
two sounds.
"""),
    code("""
use audiosae::plot::{line_with_tier_png, Segment};
let worst = m.worst_items.iter()
    .filter_map(|w| split.reader.item_index(&w.item))
    .find(|&i| (1.5..4.0).contains(&split.reader.items()[i].meta.duration_s) && item_of.contains(&i))
    .expect("a labelled held-out clip of 1.5 to 4 s");
let rows: Vec<usize> = (0..item_of.len()).filter(|&r| item_of[r] == worst).collect();
let clip_err: Vec<f64> = rows.iter().map(|&r| rel_err[r]).collect();
let clip_phones: Vec<String> = rows.iter().map(|&r| phones[r].clone()).collect();
let clip_timing = split.reader.items()[worst].timing(timing);
let png = p.work_dir.join("03-clip-error-phones.png");
let title = format!("{}: relative error per frame (mean {:.3})", split.reader.items()[worst].meta.id, clip_err.iter().sum::<f64>() / clip_err.len() as f64);
line_with_tier_png(&png, &title, "‖x − x̂‖² / ‖x‖²", &clip_err, clip_timing, "phones", &Segment::runs(&clip_phones, clip_timing))?;
show_png(&png)?;
let mut worst_phones = mean_by(&clip_phones, &clip_err);
worst_phones.sort_by(|a, b| b.2.total_cmp(&a.2));
println!("this clip's worst phones: {}", fmt(&worst_phones[..worst_phones.len().min(6)]));"""),
    md("""
## The codes in two dimensions: PCA
The codes are `H`-dimensional and sparse. PCA (linfa-reduction) of the codes of up to 2000
held-out frames, coloured by phone class. The first two components carry only a small share of
the codes' variance: with `k` of `H` latents active, no two directions can summarise them. The
branches are groups of latents that often fire together; no phone class stands apart.
"""),
    code("""
let n_show = phones.len().min(2000);
let pick: Vec<i64> = (0..n_show).map(|i| (i * phones.len() / n_show) as i64).collect();
let sub = codes.index_select(0, &Tensor::from_slice(&pick));
let sub_class: Vec<usize> = pick.iter().map(|&i| class[i as usize]).collect();
let (pca_points, pca_ratio): (Vec<(f64, f64)>, Vec<f64>) = {
    let pr = embed::pca(&embed::tensor_rows(&sub)?, 2)?;
    (pr.coords.rows().into_iter().map(|r| (r[0], r[1])).collect(), pr.variance_ratio)
};
println!("PC1 and PC2 explain {:.1}% and {:.1}% of the codes' variance", 100.0 * pca_ratio[0], 100.0 * pca_ratio[1]);
let png = p.work_dir.join("03-codes-pca.png");
embed::scatter_png(&png, &format!("PCA of SAE codes ({n_show} held-out frames)"), ("PC1", "PC2"), &pca_points, &sub_class, &PHONE_CLASSES)?;
show_png(&png)?;"""),
    md("""
## UMAP
UMAP (umap-rs, from the exact 15 nearest neighbours of every code) keeps local neighbourhoods
instead of global variance. Coloured by phone class, neighbouring points often share a colour,
and a few small groups are pure, but no class gets a region of its own. Something else shapes the
layout as a whole.
"""),
    code("""
let t0 = std::time::Instant::now();
let umap_points: Vec<(f64, f64)> = {
    let e = embed::umap(&embed::tensor_rows(&sub)?.mapv(|v| v as f32), 15, 200)?;
    e.rows().into_iter().map(|r| (r[0] as f64, r[1] as f64)).collect()
};
println!("UMAP of {n_show} codes in {:.1} s", t0.elapsed().as_secs_f64());
let png = p.work_dir.join("03-codes-umap.png");
embed::scatter_png(&png, &format!("UMAP of SAE codes ({n_show} held-out frames)"), ("UMAP 1", "UMAP 2"), &umap_points, &sub_class, &PHONE_CLASSES)?;
show_png(&png)?;"""),
    md("""
The same layout, coloured by **where the frame sits in its clip** (time since the clip's first
frame), and the nearest neighbour of every code counted three ways:
"""),
    code("""
let buckets = [0.2, 0.5, 1.0, 2.0, 4.0, f64::INFINITY];
let bucket_names = ["0-0.2 s", "0.2-0.5 s", "0.5-1 s", "1-2 s", "2-4 s", "4 s and later"];
let sub_pos: Vec<usize> = pick.iter().map(|&i| {
    let t = pos_of[i as usize] as f64 * timing.hop_s;
    buckets.iter().position(|&b| t < b).unwrap()
}).collect();
let png = p.work_dir.join("03-codes-umap-position.png");
embed::scatter_png(&png, "UMAP of SAE codes, by time since the clip's start", ("UMAP 1", "UMAP 2"), &umap_points, &sub_pos, &bucket_names)?;
show_png(&png)?;
// Nearest neighbour of every shown code (Euclidean) against a pseudo-random partner: over all
// shown codes, then over the codes of other clips only, so that the adjacent frames of one clip
// (nearly the same code) do not decide the phone and position counts.
{
    let frame = |j: usize| pick[j] as usize;
    let clip_of = |j: usize| item_of[frame(j)];
    let d = Tensor::cdist(&sub, &sub, 2.0, None::<i64>) + Tensor::eye(n_show as i64, (Kind::Float, tch::Device::Cpu)) * 1e9;
    let sub_clip = Tensor::from_slice(&(0..n_show).map(|j| clip_of(j) as i64).collect::<Vec<_>>());
    let same_clip = sub_clip.unsqueeze(1).eq_tensor(&sub_clip.unsqueeze(0));
    let nn = Vec::<i64>::try_from(d.argmin(1, false))?;
    let nn_other = Vec::<i64>::try_from(d.masked_fill(&same_clip, 1e9).argmin(1, false))?;
    let random = |i: usize| (i * 7919 + 13) % n_show;
    let random_other = |i: usize| {
        let mut j = random(i);
        while clip_of(j) == clip_of(i) {
            j = (j + 1) % n_show;
        }
        j
    };
    let share = |same: &dyn Fn(usize, usize) -> bool, partner: &dyn Fn(usize) -> usize| {
        (0..n_show).filter(|&i| same(frame(i), frame(partner(i)))).count() as f64 / n_show as f64 * 100.0
    };
    let row = |name: &str, same: &dyn Fn(usize, usize) -> bool, nearest: &dyn Fn(usize) -> usize, other: &dyn Fn(usize) -> usize| {
        println!("{name:<34} {:>16.1}% {:>12.1}%", share(same, nearest), share(same, other));
    };
    println!("{:<34} nearest neighbour   random pair", "");
    row("same clip", &|a, b| item_of[a] == item_of[b], &|i| nn[i] as usize, &random);
    println!("among the codes of other clips:");
    row("  same phone class", &|a, b| class[a] == class[b], &|i| nn_other[i] as usize, &random_other);
    row("  within 5 frames of its position", &|a, b| pos_of[a].abs_diff(pos_of[b]) <= 5, &|i| nn_other[i] as usize, &random_other);
};"""),
    md("""
The layout as a whole is ordered by **time since the clip's start**: the arc runs from the first
frames of the clips to their later seconds; the short strings apart are runs of consecutive frames
of one clip. Most codes' nearest neighbour is a frame of their own clip, usually an adjacent one: a
code changes little from one 20 ms frame to the next. Among the codes of *other* clips, the nearest
one shares the phone class about 2.5 times as often as a random pair, and sits at the same position
(±100 ms) about 9 times as often. Phone identity shapes the neighbourhoods, position shapes the
map.

Whisper adds sinusoidal position embeddings to its input, and its encoder output still carries
them; the SAE, trained to reconstruct that output, spends latents on position. Some latents fire
almost only on the first frames of every clip:
"""),
    code("""
let early: Vec<bool> = pos_of.iter().map(|&q| q < 10).collect();
let fired = codes.gt(0.0).to_kind(Kind::Float);
let mask = Tensor::from_slice(&early).to_kind(Kind::Float);
let n_early = mask.sum(Kind::Float).double_value(&[]);
let rate_early = mask.unsqueeze(0).matmul(&fired).squeeze_dim(0) / n_early;
let rate_late = (&mask * -1.0 + 1.0).unsqueeze(0).matmul(&fired).squeeze_dim(0) / (early.len() as f64 - n_early);
let order = Vec::<i64>::try_from((&rate_early - &rate_late).argsort(0, true).narrow(0, 0, 5))?;
for u in order {
    println!("latent {u:>4}: fires on {:>5.1}% of the first 10 frames of clips, {:>5.2}% of later frames",
        100.0 * rate_early.double_value(&[u]), 100.0 * rate_late.double_value(&[u]));
};"""),
    md("""
This matters for everything downstream: a latent that looks selective for a phone may partly
track position, and analyses against labels (notebook 04 onwards) should compare against
position-matched baselines, or use a layer where position is weaker.
"""),
    md("""
## Do the decoder atoms cluster by phone class?
Each latent's **phone profile** is its mean code on the held-out frames of each class; its
dominant class is the profile's maximum (a mean, not a sum, so that frequent classes do not win by
count). We cluster the unit-norm decoder atoms of the latents that fire on at least 5 held-out
frames with k-means (linfa-clustering, one cluster per class with at least 50 frames), and score
the clusters against the dominant classes:

* **purity**: the share of atoms whose cluster's majority class is their own (1 is perfect; a
  single cluster already scores the largest class's share);
* **NMI**: mutual information between clusters and classes over the mean of their entropies
  (1: the same partition, 0: independent).

As a chance level, the same clusters against randomly permuted classes.
"""),
    code("""
let h_codes = codes.to_kind(Kind::Float);
let n_classes = PHONE_CLASSES.len() as i64;
let onehot = Tensor::from_slice(&class.iter().map(|&c| c as i64).collect::<Vec<_>>()).one_hot(n_classes).to_kind(Kind::Float);
let counts = onehot.sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
// Classes with at least 50 held-out frames (a mean over a handful of frames is noise).
let present: Vec<i64> = Vec::<f32>::try_from(&counts)?.iter().enumerate().filter(|(_, n)| **n >= 50.0).map(|(c, _)| c as i64).collect();
let present_t = Tensor::from_slice(&present);
// [classes present, H] mean code per class.
let profile = (onehot.tr().matmul(&h_codes) / counts.unsqueeze(1).clamp_min(1.0)).index_select(0, &present_t);
let fires = h_codes.gt(0.0).sum_dim_intlist([0i64].as_slice(), false, Kind::Int64);
let live = fires.ge(5).nonzero().squeeze_dim(1);
let dominant: Vec<usize> = Vec::<i64>::try_from(profile.argmax(0, false).index_select(0, &live))?.iter().map(|&c| c as usize).collect();
// Decoder atoms for any architecture: decode(e_i) - decode(0), normalised.
let atoms = tch::no_grad(|| {
    let eye = Tensor::eye(sae.cfg.d_sae as i64, (Kind::Float, device));
    let a = sae.decode(&eye) - sae.decode(&Tensor::zeros([1, sae.cfg.d_sae as i64], (Kind::Float, device)));
    let a = a.index_select(0, &live.to_device(device));
    &a / a.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
});
let clusters = embed::kmeans(&embed::tensor_rows(&atoms)?, present.len(), 0)?;
tch::manual_seed(0);
let perm = Vec::<i64>::try_from(Tensor::randperm(dominant.len() as i64, (Kind::Int64, tch::Device::Cpu)))?;
let shuffled: Vec<usize> = perm.iter().map(|&i| dominant[i as usize]).collect();
let (purity, nmi) = (embed::purity(&clusters, &dominant), embed::nmi(&clusters, &dominant));
let (purity0, nmi0) = (embed::purity(&clusters, &shuffled), embed::nmi(&clusters, &shuffled));
println!("{} live latents of {}; {} clusters", dominant.len(), sae.cfg.d_sae, present.len());
let mut t = Table::new("atoms_vs_classes", &["", "purity", "NMI"]);
t.push(vec!["k-means of decoder atoms vs dominant class".into(), purity.into(), nmi.into()]);
t.push(vec!["same clusters vs permuted classes (chance)".into(), purity0.into(), nmi0.into()]);
show_html(&table_html(&t, 5));
let mut n_dom = vec![0usize; PHONE_CLASSES.len()];
for &c in &dominant { n_dom[present[c] as usize] += 1; }
println!("latents per dominant class: {}", PHONE_CLASSES.iter().zip(&n_dom).filter(|(_, n)| **n > 0).map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", "));"""),
    md("""
The atoms do cluster by phone class above chance, but weakly: phone class is one of several
things the dictionary encodes, next to position and the details of each voice. A 1536-latent SAE
trained for half a minute on 30 000 frames is small; notebooks 04–06 look at single latents rather
than clusters, and 07 at how width and `k` change the reconstruction.
"""),
]
