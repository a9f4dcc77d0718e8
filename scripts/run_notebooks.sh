#!/usr/bin/env bash
# Executes the evcxr notebooks headless and fails on the first cell that fails.
#   scripts/run_notebooks.sh [NAME...]     (default: every notebooks/*.ipynb, in order)
#   scripts/run_notebooks.sh --setup-only  (install the kernel and runner, run nothing)
# Executed copies, outputs and plots included, go to out/notebooks/. Called by
# `./audiosae.sh test` and `./audiosae.sh notebooks`; expects the set-up to have run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${AUDIOSAE_CACHE:-$HOME/.cache/audiosae}"
VENV="$CACHE/venv"
EVCXR_VERSION=0.22.0
OUT="$ROOT/out/notebooks"
say() { printf '\033[1m[notebooks]\033[0m %s\n' "$*" >&2; }

# 1. The headless runner (nbconvert/nbclient) in the project venv.
if ! "$VENV/bin/python" -c "import nbconvert, nbclient, jupyter_client" 2>/dev/null; then
  say "installing nbconvert/nbclient into $VENV"
  "$VENV/bin/pip" install -q "nbconvert==7.16.6" "nbclient==0.10.2" "jupyter-client==8.6.3" "nbformat==5.10.4"
fi

# 2. The evcxr kernel (pinned; --locked is required, see shared/spec/toolchain.md).
EVCXR="$HOME/.cargo/bin/evcxr_jupyter"
if ! cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
  say "installing evcxr_jupyter $EVCXR_VERSION (one-off, about 11 min on 2 cores)"
  cargo install --locked "evcxr_jupyter@$EVCXR_VERSION"
fi

# 3. A kernelspec that carries libtorch's environment, so no one exports anything by hand, and a
#    fixed build directory so that the :dep build of audiosae is reused across notebooks and runs.
TORCH="$(realpath "$(ls -d "$VENV"/lib/python3*/site-packages/torch | head -n1)")"
# evcxr builds cells with -Cprefer-dynamic, so they need the toolchain's libstd at dlopen time.
SYSROOT_LIB="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"
KDIR="$CACHE/jupyter/kernels/audiosae-rust"
mkdir -p "$KDIR" "$CACHE/evcxr"
cat > "$KDIR/kernel.json" <<JSON
{
  "argv": ["$EVCXR", "--control_file", "{connection_file}"],
  "display_name": "Rust (audiosae)",
  "language": "rust",
  "interrupt_mode": "message",
  "env": {
    "LIBTORCH": "$TORCH",
    "LIBTORCH_CXX11_ABI": "1",
    "LD_LIBRARY_PATH": "$TORCH/lib:$SYSROOT_LIB",
    "EVCXR_TMPDIR": "$CACHE/evcxr",
    "AUDIOSAE_CACHE": "$CACHE",
    "AUDIOSAE_ROOT": "$ROOT"
  }
}
JSON
export JUPYTER_PATH="$CACHE/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"

[[ "${1:-}" == "--setup-only" ]] && exit 0

# 4. Execute, then fail on any error output (a panicking cell or an Err still exits 0 in
#    nbconvert, see shared/spec/toolchain.md).
mkdir -p "$OUT"
if [[ $# -gt 0 ]]; then
  books=(); for n in "$@"; do books+=("$ROOT/notebooks/${n%.ipynb}.ipynb"); done
else
  books=("$ROOT"/notebooks/*.ipynb)
fi
failed=0
for nb in "${books[@]}"; do
  name="$(basename "$nb")"
  say "running $name"
  start=$SECONDS
  # --allow-errors: the executed copy is written even when a cell fails, so that
  # check_notebook.py can name the cell and print evcxr's error text.
  if ! (cd "$ROOT/notebooks" && "$VENV/bin/jupyter" nbconvert --to notebook --execute --allow-errors \
        --ExecutePreprocessor.kernel_name=audiosae-rust --ExecutePreprocessor.timeout=1800 \
        --output-dir "$OUT" "$nb" >"$OUT/${name%.ipynb}.log" 2>&1); then
    tail -n 40 "$OUT/${name%.ipynb}.log" >&2
    say "FAILED $name (log: $OUT/${name%.ipynb}.log)"
    failed=$((failed + 1)); continue
  fi
  if ! "$VENV/bin/python" "$ROOT/scripts/check_notebook.py" "$OUT/$name"; then
    say "FAILED $name"
    failed=$((failed + 1)); continue
  fi
  say "ok $name ($((SECONDS - start)) s)"
done
total=${#books[@]}
echo "notebooks: $((total - failed)) passed, $failed failed"
[[ $failed -eq 0 ]]
