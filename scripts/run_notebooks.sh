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

# 2. The evcxr kernel (pinned; --locked is required: without it ra_ap crates resolve to versions
#    that do not build together). Installed under the cache like everything else the project
#    installs, so an empty AUDIOSAE_CACHE is a machine where evcxr has never run.
TOOLS="$CACHE/tools"
EVCXR="$TOOLS/bin/evcxr_jupyter"
if ! cargo install --list --root "$TOOLS" | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
  say "installing evcxr_jupyter $EVCXR_VERSION into $TOOLS (one-off, about 10-22 min on 2 cores)"
  cargo install --locked --root "$TOOLS" "evcxr_jupyter@$EVCXR_VERSION"
fi

# 3. A kernelspec that carries libtorch's environment, so no one exports anything by hand. Its
#    launcher (evcxr_kernel.sh) gives each live kernel its own build directory under
#    $CACHE/evcxr/slot-N, locked while the kernel or anything it started runs, so the :dep build
#    of audiosae is reused across notebooks and runs but never shared by two kernels at once.
TORCH="$(realpath "$(ls -d "$VENV"/lib/python3*/site-packages/torch | head -n1)")"
# evcxr builds cells with -Cprefer-dynamic, so they need the toolchain's libstd at dlopen time.
SYSROOT_LIB="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"
KDIR="$CACHE/jupyter/kernels/audiosae-rust"
SLOTS="$CACHE/evcxr"
mkdir -p "$KDIR" "$SLOTS"
# Before slots, $CACHE/evcxr itself was the one build directory: its target/ becomes slot-0's.
if [[ -d "$SLOTS/target" && ! -e "$SLOTS/slot-0" ]]; then
  mkdir -p "$SLOTS/slot-0" && mv "$SLOTS/target" "$SLOTS/slot-0/target"
  rm -rf "$SLOTS/src" "$SLOTS/Cargo.toml" "$SLOTS/Cargo.lock"
fi
cat > "$KDIR/kernel.json" <<JSON
{
  "argv": ["/bin/bash", "$ROOT/scripts/evcxr_kernel.sh", "$EVCXR", "$SLOTS", "{connection_file}"],
  "display_name": "Rust (audiosae)",
  "language": "rust",
  "interrupt_mode": "message",
  "env": {
    "LIBTORCH": "$TORCH",
    "LIBTORCH_CXX11_ABI": "1",
    "LD_LIBRARY_PATH": "$TORCH/lib:$SYSROOT_LIB",
    "AUDIOSAE_CACHE": "$CACHE",
    "AUDIOSAE_ROOT": "$ROOT"
  }
}
JSON
export JUPYTER_PATH="$CACHE/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"

[[ "${1:-}" == "--setup-only" ]] && exit 0

# 4. Execute, then fail on any error output (a panicking cell or an Err still exits 0 in
#    nbconvert, see docs/notebooks.md).
mkdir -p "$OUT"
# One batch run per checkout at a time: two would overwrite each other's executed copies.
exec {runner_lock}>"$OUT/.runner.lock"
flock -n "$runner_lock" || { say "another notebook run is writing $OUT; wait for it to finish"; exit 1; }
if [[ $# -gt 0 ]]; then
  books=(); for n in "$@"; do books+=("$ROOT/notebooks/${n%.ipynb}.ipynb"); done
else
  books=("$ROOT"/notebooks/*.ipynb)
fi
# How long nbclient waits for a new kernel's first reply. evcxr answers only after compiling a
# first cell of its own in its build directory; on a machine where it never ran that took up to
# 8 s on an idle 2-core machine but past the old 60 s default on a loaded one (warm: 5-7 s).
# The limit is a ceiling, not a cost.
STARTUP_TIMEOUT="${AUDIOSAE_KERNEL_STARTUP_TIMEOUT:-600}"
failed=0
for nb in "${books[@]}"; do
  name="$(basename "$nb")"
  say "running $name"
  start=$SECONDS
  rm -f "$OUT/$name"
  # --allow-errors: the executed copy is written even when a cell fails, so that
  # check_notebook.py can name the cell and print evcxr's error text. reap.py ends the kernel and
  # everything it started (cargo, rustc) once nbconvert exits, whether it passed or not, so no
  # orphan keeps compiling while the next notebook runs.
  if ! (cd "$ROOT/notebooks" && "$VENV/bin/python" "$ROOT/scripts/reap.py" -- \
        "$VENV/bin/jupyter" nbconvert --to notebook --execute --allow-errors \
        --ExecutePreprocessor.kernel_name=audiosae-rust --ExecutePreprocessor.timeout=1800 \
        --ExecutePreprocessor.startup_timeout="$STARTUP_TIMEOUT" \
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
