"""audiosae-assignment's Jonker–Volgenant against scipy.optimize.linear_sum_assignment, in one run.

For each size n it builds the cosine matrix between two sets of n unit vectors (random Gaussian
directions in `--dim` dimensions, or the decoder atoms of two trained SAEs given as .npy files of shape
(units, dim)), solves it with both (maximising the total cosine), checks that the totals agree and prints
times and ratios. Only the solver calls are timed: scipy gets a float64 matrix (what it converts to
anyway), Rust reads the float32 one from disk before its clock starts.

Wall and CPU time are both printed: on a machine shared with compilers the CPU ratio is the steadier one.
Run (others compiling on the machine distort both timings; rerun when it is quiet):
  cargo build --release -p audiosae-assignment --example bench_assignment
  .cache/venv-fixtures/bin/python benches/assignment_peer.py [--sizes 2048 4096 8192] [--dim 1280]
      [--atoms A.npy B.npy]
"""
import argparse
import json
import pathlib
import subprocess
import tempfile
import time

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "examples" / "bench_assignment"


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cosine_matrix(n, dim, rng, atoms):
    if atoms is None:
        a = unit_rows(rng.standard_normal((n, dim), dtype=np.float32))
        b = unit_rows(rng.standard_normal((n, dim), dtype=np.float32))
    else:
        a = unit_rows(atoms[0][:n].astype(np.float32))
        b = unit_rows(atoms[1][:n].astype(np.float32))
    return (a @ b.T).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--dim", type=int, default=1280, help="dimension of the random unit vectors")
    ap.add_argument("--atoms", nargs=2, metavar=("A.npy", "B.npy"), help="decoder atoms (units, dim) of two SAEs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not BINARY.exists():
        raise SystemExit(f"{BINARY} is missing: cargo build --release -p audiosae-assignment --example bench_assignment")
    atoms = None
    if args.atoms:
        atoms = [np.load(p) for p in args.atoms]
        for p, x in zip(args.atoms, atoms):
            if x.ndim != 2 or x.shape[0] < max(args.sizes):
                raise SystemExit(f"{p}: shape {x.shape}, need (units >= {max(args.sizes)}, dim)")
    rng = np.random.default_rng(args.seed)
    source = "decoder atoms " + " vs ".join(args.atoms) if atoms else f"random unit vectors, dim {args.dim}"
    print(f"scipy {scipy.__version__}, numpy {np.__version__}; cosine matrices of {source}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n in args.sizes:
            s = cosine_matrix(n, args.dim, rng, atoms)
            path = pathlib.Path(tmp) / f"cos_{n}.npy"
            np.save(path, s)
            paths.append(path)
        out = subprocess.run([str(BINARY), *map(str, paths)], check=True, capture_output=True, text=True).stdout
        rust = [json.loads(line) for line in out.splitlines() if line.strip()]
        for n, path, r in zip(args.sizes, paths, rust):
            s = np.load(path).astype(np.float64)
            t0, c0 = time.perf_counter(), time.process_time()
            _, cols = linear_sum_assignment(s, maximize=True)
            t_scipy, c_scipy = time.perf_counter() - t0, time.process_time() - c0
            total_scipy = float(s[np.arange(n), cols].sum())
            jv_cols = np.load(str(path) + ".jv_cols.npy")
            rows.append((n, r, t_scipy, c_scipy, total_scipy, float(np.mean(jv_cols == cols))))
            del s
    print("wall and CPU seconds of the solver calls; ratios < 1: Rust is faster")
    print(f"{'n':>6} {'rust s':>8} {'scipy s':>8} {'ratio':>6} {'rust cpu':>9} {'scipy cpu':>9} {'ratio':>6} "
          f"{'total diff':>11} {'same pairs':>10} {'JV gap':>8}")
    for n, r, t_scipy, c_scipy, total_scipy, same in rows:
        print(f"{n:>6} {r['seconds']:>8.3f} {t_scipy:>8.3f} {r['seconds'] / t_scipy:>6.3f} "
              f"{r['cpu_seconds']:>9.2f} {c_scipy:>9.2f} {r['cpu_seconds'] / max(c_scipy, 1e-9):>6.3f} "
              f"{r['total'] - total_scipy:>11.2e} {same:>10.4f} {r['certified_gap']:>8.1e}")
        if abs(r["total"] - total_scipy) > 1e-6 * max(1.0, abs(total_scipy)):
            print(f"  n={n}: totals differ beyond rounding: rust {r['total']!r} scipy {total_scipy!r}")


if __name__ == "__main__":
    main()
