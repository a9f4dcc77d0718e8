"""Writes the evcxr notebooks (notebooks/*.ipynb) from the cell lists below.

The .ipynb files are committed; edit this file and rerun `python3 notebooks/build_notebooks.py` to
change them, so that the notebooks' prose and code stay reviewable as plain text.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# Every notebook starts with the same dependency set, so evcxr builds audiosae once and reuses it
# (EVCXR_TMPDIR is fixed by the kernelspec), and with panics failing the run.
PRELUDE = """:preserve_vars_on_panic 0
:dep audiosae = { path = "../core" }
:dep tch = "=0.24.0"
:dep anyhow = "1"
"""
USE = """use audiosae::notebook::{NotebookParams, show_png, show_html, audio_html};
use anyhow::Result;
let p = NotebookParams::load()?;
std::fs::create_dir_all(&p.work_dir)?;"""


def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip("\n")}


def code(text):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": text.strip("\n")}


def notebook(cells):
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Rust (audiosae)", "language": "rust", "name": "audiosae-rust"},
            "language_info": {"codemirror_mode": "rust", "file_extension": ".rs", "mimetype": "text/rust", "name": "Rust", "pygment_lexer": "rust", "version": ""},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


NOTEBOOKS = {}

NOTEBOOKS["00-setup"] = [
    md("""
# 00 · Set-up: the core, the device, the model and the corpus

audiosae is a Rust library; these notebooks run it in the **evcxr** Jupyter kernel. The first cell
pulls in the library (the first run of the first notebook compiles it, a few minutes; later runs
reuse the build). Every notebook reads its parameters from `notebooks/params.toml`: point that one
file at a real Qwen2-Audio checkpoint and a LibriSpeech manifest and every notebook follows.
"""),
    code(PRELUDE),
    code(USE + "\nprintln!(\"{p:#?}\");"),
    md("""
## Device
audiosae runs on CUDA when libtorch sees a GPU and on the CPU otherwise. `auto` picks for you.
"""),
    code("""
let device = audiosae::device::parse_device(&p.device)?;
println!("device: {}   (CUDA available: {})", audiosae::device::describe(device), tch::Cuda::is_available());"""),
    md("""
## The model
By default this is the real Whisper tiny.en (CTranslate2 weights, fp16 on disk). Every layer's
output carries its `FrameTiming`: the hop and offset that map frame `i` to seconds. Qwen2-Audio's
projector has 40 ms frames; Whisper's encoder layers 20 ms.
"""),
    code("""
use audiosae::models::{AudioModel, LayerSpec};
let model = AudioModel::load(&p.model, device, tch::Kind::Float, false)?;
println!("{} from {}: {} encoder layers, {} mel bins", model.name(), model.dir.display(), model.n_encoder_layers(), model.mel.n_mels());
for layer in [LayerSpec::Projector, LayerSpec::Encoder, LayerSpec::EncoderLayer(0)] {
    match (model.timing(layer), model.dim(layer)) {
        (Ok(t), Ok(d)) => println!("  {layer:<10} d = {d:<5} hop {:.0} ms, frame 0 starts at {:.0} ms", t.hop_s * 1e3, t.offset_s * 1e3),
        _ => println!("  {layer:<10} (not in this model)"),
    }
}"""),
    md("""
## The corpus
The demo corpus mixes real aligned speech (MFA and praatio test data) with espeak-ng speech whose
phone and word timings are exact. Whole voices are held out for the test split.
"""),
    code("""
use audiosae::corpus::Corpus;
let corpus = Corpus::open(&p.corpus)?;
let stats = audiosae::corpus::stats::compute(&corpus, corpus.manifest.phone_set)?;
println!("{stats}");"""),
]

NOTEBOOKS["01-extract"] = [
    md("""
# 01 · Extract frame-level features

We run the model over the corpus and keep only each clip's **valid** frames (no 30 s padding) in an
activation store: `.npy` shards plus a JSON manifest, readable from Python with
`numpy.load(..., mmap_mode="r")`. Extraction resumes if interrupted.
"""),
    code(PRELUDE),
    code(USE + """
use audiosae::models::{AudioModel, LayerSpec, Trim};
use audiosae::corpus::Corpus;
let device = audiosae::device::parse_device(&p.device)?;
let model = AudioModel::load(&p.model, device, tch::Kind::Float, false)?;
let layer: LayerSpec = if p.layer.is_empty() { model.default_layer() } else { p.layer.parse()? };
let corpus = Corpus::open(&p.corpus)?;
println!("{} clips; extracting {layer} of {}", corpus.manifest.items.len(), model.name());"""),
    md("""
## One clip: log-mel, phones and sound
The log-mel is exactly the model input (transformers' `WhisperFeatureExtractor`). Under it, the
clip's phone tier from its TextGrid, on the same time axis.
"""),
    code("""
use audiosae::plot::{Heatmap, Segment, heatmap_with_tier_png};
use audiosae::textgrid::TextGrid;
let item = corpus.manifest.items.iter().find(|it| it.textgrid.is_some() && it.duration_s > 2.0).expect("an aligned clip");
let samples = audiosae::models::load_clip(&corpus.audio_path(item))?;
let (mel, n) = model.mel.compute(&samples);
let tg = TextGrid::read(&corpus.textgrid_path(item).unwrap())?;
let phones: Vec<Segment> = tg.phones()?.intervals.iter().map(|i| Segment { start: i.xmin, end: i.xmax, label: i.text.clone() }).collect();
let map = Heatmap::from_frames(format!("{}: \\"{}\\"", item.id, item.transcript), "mel bin", &mel.narrow(1, 0, n as i64).tr(), audiosae::FrameTiming::MEL)?;
let png = p.work_dir.join("01-logmel-phones.png");
heatmap_with_tier_png(&png, &map, "phones", &phones)?;
show_png(&png)?;"""),
    code("""show_html(&audio_html(&samples, 0.0, item.duration_s)?);"""),
    md("""
## The whole corpus into a store
`extract` batches 30 s windows through the model; long clips are cut into windows whose frames
concatenate on one time grid. Bad files are logged to `errors.jsonl` and skipped.
"""),
    code("""
use audiosae::extract::{extract, ExtractOptions};
let store_dir = p.work_dir.join(format!("store-{layer}"));
let opts = ExtractOptions {
    layers: vec![layer], out: store_dir.clone(), batch_size: 8, shard: None,
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


def main():
    for name, cells in NOTEBOOKS.items():
        path = os.path.join(HERE, f"{name}.ipynb")
        with open(path, "w") as f:
            json.dump(notebook(cells), f, indent=1)
            f.write("\n")
        print("wrote", path)


if __name__ == "__main__":
    main()
