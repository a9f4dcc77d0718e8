from common import PRELUDE, code, md

NAME = "00-setup"
CELLS = [
    md("""
# 00 · Set-up: the core, the device, the model and the corpus

audiosae is a Rust library; these notebooks run it in the **evcxr** Jupyter kernel. The first cell
pulls in the library (the first run of the first notebook compiles it, a few minutes; later runs
reuse the build). Every notebook reads its parameters from `notebooks/params.toml`: point that one
file at a real Qwen2-Audio checkpoint and a LibriSpeech manifest and every notebook follows.
"""),
    code(PRELUDE + "\nprintln!(\"{p:#?}\");"),
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
phone and word timings are exact. Whole voices are held out for the test split. On a machine that
never ran `./audiosae.sh demo`, this cell builds it first (about two minutes, once).
"""),
    code("""
let corpus = p.open_corpus()?;
let stats = audiosae::corpus::stats::compute(&corpus, corpus.manifest.phone_set)?;
println!("{stats}");"""),
]
