from common import PRELUDE, code, md

NAME = "09-text-sae"
CELLS = [
    md("""
# 09 · Audio and text dictionaries in one space

Qwen2-Audio's `multi_modal_projector` maps audio into the **input embedding space of its language
model**: the same space as the embeddings of text tokens. So we can ask whether an SAE trained on
audio embeddings and an SAE trained on token embeddings learn the same directions. Both SAEs read
vectors of the LM's hidden size, and the seed-matching plugin (06) compares their decoder atoms
with an optimal one-to-one assignment.

- **Audio side**: the projector rows of every `generator_clip_stride`-th corpus clip, from `params.generator`.
- **Text side**: `extract_text` (the `audiosae extract-text --layer embed` path) tokenizes every
  corpus transcript with the model's tokenizer and stores the LM's input embedding of each token,
  one row per token, the token strings in the store's manifest.

A Whisper encoder (384-d for tiny.en) cannot be compared with the LM this way: the dimensions and
the spaces differ, which is why this notebook works on the projector output.

**Read the numbers as a mechanics demo.** Offline, `params.generator` is the tiny random
Qwen2-Audio fixture (hidden size 32): its projector and its embeddings are random, so any
audio–text match here is chance-level by construction. With
`generator = "Qwen/Qwen2-Audio-7B-Instruct"` in `params.toml` (and `device = "cuda"`), the same
cells compare 4096-wide dictionaries of the real model, which is the actual experiment.
"""),
    code(PRELUDE + """
use audiosae::extract::{extract, extract_text, ExtractOptions, JobShard, TextExtractOptions, TextLayer};
use audiosae::models::{AudioModel, LayerSpec, Trim};
use audiosae::notebook::{build_plugins, select, table_html, topk_config, train_on_store};
use audiosae::plugins::Analysis;
use audiosae::store::{StoreDType, StoreReader};
let device = audiosae::device::parse_device(&p.device)?;
build_plugins(&["seed-matching"])?;
let generator = AudioModel::load(&p.generator, device, tch::Kind::Float, true)?;
let corpus = p.open_corpus()?;"""),
    md("""
## Two stores in the LM's embedding space
The audio store holds the generator's projector rows (extraction resumes, so a rerun recomputes nothing); the text store
takes all transcripts (a few seconds).
"""),
    code("""
let gen_store = p.work_dir.join("generator-store-projector");
extract(&generator, &corpus, &ExtractOptions {
    layers: vec![LayerSpec::Projector], out: gen_store.clone(), batch_size: 8,
    shard: Some(JobShard { index: 0, count: p.generator_clip_stride.max(1) }),
    trim: if generator.fast_is_exact() { Trim::Fast } else { Trim::Exact },
    store_dtype: StoreDType::F32, shard_rows: None, progress: false,
})?;
let text_store = p.work_dir.join("generator-store-text-embed");
extract_text(&generator, &corpus, &TextExtractOptions {
    layer: TextLayer::Embeddings, out: text_store.clone(), store_dtype: StoreDType::F32, shard_rows: None, progress: false,
})?;
for dir in [&gen_store, &text_store] {
    let r = StoreReader::open(dir)?;
    println!("{:<28} layer {:<9} {:>6} rows x {} from {} items", dir.file_name().unwrap().to_string_lossy(), r.config().layer, r.rows(), r.d(), r.items().len());
}
{
    let text = StoreReader::open(&text_store)?;
    let first = &text.items()[0].meta;
    println!("one text item, {}: {:?}", first.id, first.tokens.as_deref().unwrap_or_default());
};"""),
    md("""
## Three SAEs: two audio seeds and one text
One TopK configuration for all three (4 latents per dimension, steps in proportion to
the latents), each with its own seed. The second audio seed gives the reference: how well do two
*audio* dictionaries agree? An audio–text pair can only be read against that. The seeds must
differ: two SAEs with the same seed start from the same random atoms, and a short run leaves them
close to that start, so a same-seed audio–text pair would "match" through its initialisation alone.
"""),
    code("""
let d = generator.dim(LayerSpec::Projector)?;
let (width, k) = (4 * d, p.sae_k.min(d / 4));
let steps = (p.sae_steps * width / p.sae_width).max(300);
/// The `i`-th seed of `params.seeds`, or the first one plus `i`.
fn nth_seed(seeds: &[u64], i: usize) -> u64 {
    seeds.get(i).copied().unwrap_or(seeds[0] + i as u64)
}
let mut saes = Vec::new();
for (i, (name, store)) in [("audio-a", &gen_store), ("audio-b", &gen_store), ("text", &text_store)].into_iter().enumerate() {
    let seed = nth_seed(&p.seeds, i);
    let dir = p.work_dir.join("09-saes").join(name);
    let log = train_on_store(store, &dir, topk_config(d, width, k, steps, seed, &p.device))?.log;
    let last = log.last().expect("a training log");
    println!("{name:<8} seed {seed}: {width} latents, k {k}, {steps} steps: FVU {:.3}, dead {:.1}%", last.fvu, 100.0 * last.dead_frac);
    saes.push(dir);
};"""),
    md("""
## Match the dictionaries
All three pairs in one call. `frames=0` skips the activation correlation: the two modalities have
no common frames to correlate on, so only the geometry of the atoms is compared.
"""),
    code("""
let out = p.work_dir.join("09-audio-text-matching");
let report = Analysis::new("seed-matching", &text_store, &saes, &out).device(&p.device).param("frames", 0).run()?;
let mut pairs = select(report.table("pairs").expect("the pairs table"), &["sae_a", "sae_b", "mean_cosine", "frac_above_0.5", "frac_above_0.7", "nearest_mean_cosine", "null_mean_cosine", "random_mean_cosine", "solver"])?;
for row in &mut pairs.rows {
    for cell in &mut row[..2] {
        *cell = std::path::Path::new(&cell.to_csv()).file_name().map(|f| f.to_string_lossy().to_string()).into();
    }
}
show_html(&table_html(&pairs, 3));
show_png(&out.join("matched_cosines.png"))?;"""),
    md("""
**How to read it.** The reference is the `null_mean_cosine` column: what the same optimal
matching finds between a dictionary and random Gaussian atoms. In 32 dimensions 128 directions
always have a fairly close partner, so the null is high (about 0.4); in 4096 dimensions it is far
lower. The audio-a–audio-b row says how much two audio dictionaries agree beyond the null, and the
audio–text rows can only be read against both. With the tiny random fixture every row sits within
a few hundredths of the null: two short runs on a random model barely agree, and audio and text
share nothing, as they must with random weights. What this run shows is that the path works end to
end: both modalities extracted into one space, three SAEs trained, matched exactly, plotted.

On the real 7B, audio–text matches well above the null and approaching the audio–audio level would
mean the projector writes some audio features along token-embedding directions: the LM then reads
that sound as (a mixture of) tokens. The matched pairs (`matches_0_2.csv`, `matches_1_2.csv` in the
output folder) name the units to inspect: take a matched audio unit to 05's unit cards, and look up
the tokens whose embeddings load most on its text partner.
"""),
]
