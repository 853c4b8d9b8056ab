"""Completion times of many flows of distinct sizes (fabric.completion_times), exact and batched.

The fluid simulation solves the max-min rates again when flows finish. Solved after every
single finish it grows as the square of the number of distinct finishing times; flows due
within ``fabric.flows.FLUID_RTOL`` of each other finish together, which bounds the re-solves
by the log of the spread of finishing times. Prints, for random flows between the 512 GPUs of
``dgx_superpod(64)`` with sizes uniform in 1 MB..1 GB: the time at the default tolerance, the
exact time (rtol=0) where it is affordable, and the largest and median relative difference.

Run: python tests/benchmarks/bench_fluid.py [flow counts...]   (default 1000 4000 20000)
"""

import sys
import time

import numpy as np

import fabric
import mdtable  # tests/benchmarks/mdtable.py, beside this script

EXACT_UP_TO = 2000  # flows; the exact simulation of more takes minutes


def main():
    counts = [int(a) for a in sys.argv[1:]] or [1000, 4000, 20000]
    G = fabric.dgx_superpod(64)
    header = ["flows", f"rtol={fabric.flows.FLUID_RTOL:g} (s)", "exact, rtol=0 (s)", "max rel. diff", "median"]
    rows = []
    for n in counts:
        rng = np.random.default_rng(0)
        src = rng.integers(0, 512, n)
        dst = (src + rng.integers(1, 511, n)) % 512
        nbytes = rng.uniform(1e6, 1e9, n)
        start = time.perf_counter()
        fast = fabric.completion_times(G, src, dst, nbytes)
        took = time.perf_counter() - start
        row = [f"{n:,}", f"{took:.1f}", "-", "-", "-"]
        if n <= EXACT_UP_TO:
            start = time.perf_counter()
            exact = fabric.completion_times(G, src, dst, nbytes, rtol=0)
            diff = np.abs(fast - exact) / exact
            row[2:] = [f"{time.perf_counter() - start:.1f}", f"{diff.max():.2%}", f"{np.median(diff):.3%}"]
        rows.append(row)
        print(" | ".join(row), file=sys.stderr, flush=True)
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print(mdtable.head(header, widths))
    for r in rows:
        print(mdtable.row(r, widths))


if __name__ == "__main__":
    main()
