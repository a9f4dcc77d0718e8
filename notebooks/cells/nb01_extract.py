from common import PRELUDE, code, md

NAME = "01-extract"
CELLS = [
    md("""
# 01 · Extract frame-level features

We run the model over the corpus and keep only each clip's **valid** frames (no 30 s padding) in an
activation store: `.npy` shards plus a JSON manifest, readable from Python with
`numpy.load(..., mmap_mode="r")`. Extraction resumes if interrupted.
"""),
    code(PRELUDE + """
use audiosae::models::{AudioModel, LayerSpec, Trim};
let device = audiosae::device::parse_device(&p.device)?;
let model = AudioModel::load(&p.model, device, tch::Kind::Float, false)?;
let layer: LayerSpec = if p.layer.is_empty() { model.default_layer() } else { p.layer.parse()? };
let corpus = p.open_corpus()?;
// Every `clip_stride`-th clip (params.toml), so that all the notebooks fit a 2-core CPU.
let stride = p.clip_stride.max(1);
let clips: Vec<_> = corpus.manifest.items.iter().step_by(stride).cloned().collect();
println!("extracting {layer} of {} from {} of the corpus's {} clips (clip_stride = {stride})", model.name(), clips.len(), corpus.manifest.items.len());"""),
    md("""
## One clip: log-mel, phones and sound
The log-mel is exactly the model input (transformers' `WhisperFeatureExtractor`). Under it, the
clip's phone tier from its TextGrid, on the same time axis.
"""),
    code("""
use audiosae::plot::{Heatmap, Segment, heatmap_with_tier_png};
use audiosae::textgrid::TextGrid;
let item = clips.iter().find(|it| it.textgrid.is_some() && it.duration_s > 2.0).cloned().expect("an aligned clip");
let samples = audiosae::models::load_clip(&corpus.audio_path(&item))?;
let (mel, n) = model.mel.compute(&samples);
let tg = TextGrid::read(&corpus.textgrid_path(&item).unwrap())?;
let phones: Vec<Segment> = tg.phones()?.intervals.iter().map(|i| Segment { start: i.xmin, end: i.xmax, label: i.text.clone() }).collect();
let map = Heatmap::from_frames(format!("{}: \\"{}\\"", item.id, item.transcript), "mel bin", &mel.narrow(1, 0, n as i64).tr(), audiosae::FrameTiming::MEL)?;
let png = p.work_dir.join("01-logmel-phones.png");
heatmap_with_tier_png(&png, &map, "phones", &phones)?;
show_png(&png)?;"""),
    code("""show_html(&audio_html(&samples, 0.0, item.duration_s)?);"""),
    md("""
## The corpus into a store
`extract` batches 30 s windows through the model; long clips are cut into windows whose frames
concatenate on one time grid. Bad files are logged to `errors.jsonl` and skipped. Whisper sees the
whole 30 s window for every clip, however short (trimming it would change its outputs), so the
demo's `clip_stride = 2` takes every second clip to keep all the notebooks within 15 minutes on a
2-core CPU; set it to 1 for the whole corpus.
"""),
    code("""
use audiosae::extract::{extract, ExtractOptions};
let store_dir = p.store_dir()?;
let opts = ExtractOptions {
    layers: vec![layer], out: store_dir.clone(), batch_size: 8, shard: p.clip_shard(),
    trim: if model.fast_is_exact() { Trim::Fast } else { Trim::Exact },
    store_dtype: audiosae::store::StoreDType::F32, shard_rows: None, progress: false,
};
let summary = extract(&model, &corpus, &opts)?;
println!("extracted {} clips ({:.0} s of audio) in {:.0} s; {} were already there; {} errors",
    summary.extracted, summary.audio_s, summary.seconds, summary.already_done, summary.errors.len());
let store = audiosae::store::StoreReader::open(&store_dir)?;
println!("{}", store.manifest().summary(&store_dir));"""),
    md("""
## Frames against phones
Each frame takes the phone whose interval covers its centre. Here: the encoder features of the
clip above, with its phones underneath.
"""),
    code("""
let frames = store.item(&item.id)?;
let x = tch::Tensor::from_slice(frames.frames.as_slice().unwrap()).view([frames.frames.nrows() as i64, -1]);
let map = Heatmap::from_frames(format!("{} {layer} frames of {}", model.name(), item.id), "feature", &x, frames.timing)?;
let png = p.work_dir.join("01-frames-phones.png");
heatmap_with_tier_png(&png, &map, "phones", &phones)?;
show_png(&png)?;"""),
]
