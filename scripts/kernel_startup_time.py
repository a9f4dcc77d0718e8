"""Measures how long the audiosae-rust kernel takes to answer its first request, cold then warm.

    $AUDIOSAE_CACHE/venv/bin/python scripts/kernel_startup_time.py [--drop-page-cache] [--starts N]

Starts the installed kernelspec (written by `scripts/run_notebooks.sh --setup-only`) with a new,
empty build-directory root, so the first start is what a machine where evcxr never ran sees; the
later starts reuse that directory. With --drop-page-cache (root only) the page cache is dropped
before the first start. The runner's --ExecutePreprocessor.startup_timeout must exceed the cold
figure.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from jupyter_client import KernelManager


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drop-page-cache", action="store_true")
    ap.add_argument("--starts", type=int, default=3)
    args = ap.parse_args()

    cache = os.environ.get("AUDIOSAE_CACHE", os.path.expanduser("~/.cache/audiosae"))
    spec_path = os.path.join(cache, "jupyter/kernels/audiosae-rust/kernel.json")
    spec = json.load(open(spec_path))
    live = subprocess.run(["pgrep", "-x", "evcxr_jupyter"], capture_output=True, text=True).stdout.split()
    if live:
        raise SystemExit(f"evcxr_jupyter is already running (pids {' '.join(live)}); end it first")

    work = tempfile.mkdtemp(prefix="audiosae-kernel-start-")
    try:
        # The same kernelspec, pointed at a new build-directory root (argv[3] of the launcher).
        kdir = os.path.join(work, "jupyter/kernels/audiosae-rust")
        os.makedirs(kdir)
        spec["argv"][3] = os.path.join(work, "evcxr")
        json.dump(spec, open(os.path.join(kdir, "kernel.json"), "w"))
        os.environ["JUPYTER_PATH"] = os.path.join(work, "jupyter")
        if args.drop_page_cache:
            subprocess.run(["sync"], check=True)
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        for i in range(args.starts):
            km = KernelManager(kernel_name="audiosae-rust")
            t0 = time.monotonic()
            km.start_kernel()
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=1800)
                print(f"start {i + 1} ({'new build directory' if i == 0 else 'warm'}): "
                      f"{time.monotonic() - t0:.1f} s", flush=True)
            finally:
                kc.stop_channels()
                km.shutdown_kernel(now=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
