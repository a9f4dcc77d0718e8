#!/usr/bin/env bash
# Starts evcxr_jupyter in a build directory that no other live kernel uses.
#   evcxr_kernel.sh EVCXR_JUPYTER SLOTS_DIR CONNECTION_FILE
#
# The kernelspec written by run_notebooks.sh calls this. evcxr keeps each kernel's crate and
# target/ in EVCXR_TMPDIR; two kernels compiling in one directory at once overwrite each other's
# Cargo.toml and wait on cargo's lock. Each kernel therefore takes the first free slot
# SLOTS_DIR/slot-N, held by an flock on slot-N/.lock for as long as the kernel or any process it
# started (cargo, rustc) is alive: the lock's file descriptor is inherited by all of them. One
# kernel at a time (the batch runner) always gets slot-0 and reuses its build; a second notebook
# opened in JupyterLab meanwhile gets slot-1 (one cold build, then warm too).
set -euo pipefail
evcxr="$1" slots="$2" connection="$3"
max_slots=8
for ((i = 0; i < max_slots; i++)); do
  dir="$slots/slot-$i"
  mkdir -p "$dir"
  exec {lock}>"$dir/.lock"
  if flock -n "$lock"; then
    echo "[audiosae kernel] build directory $dir" >&2
    export EVCXR_TMPDIR="$dir"
    exec "$evcxr" --control_file "$connection"
  fi
  exec {lock}>&-
done
echo "[audiosae kernel] all $max_slots build directories under $slots are in use by live kernels;" \
  "close a notebook (or end its evcxr_jupyter process) and try again" >&2
exit 1
