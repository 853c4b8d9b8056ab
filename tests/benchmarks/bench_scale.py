"""The flow level and the whole-fabric figures at 131k to 1M GPUs (the million-GPU issue):
one row per target, each measured in a fresh subprocess under a memory cap and a time limit.

Run: ``python tests/benchmarks/bench_scale.py [case ...]`` (all cases: ~25 minutes on 2 cores;
``--list`` names them). A case that runs out of its cap or its time is reported as such, with
the error it raised (a typed ``TooLarge`` where the library saw it coming, ``MemoryError`` or a
kill where it did not). Times count the measured call only, not the fabric's build (which
has a row of its own); "peak" is the peak resident set of the whole process, build included.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import mdtable  # tests/benchmarks/mdtable.py, beside this script

GiB = 2**30
MACHINE_CAP = 22 * GiB  # of the 24 GiB machine: a case beyond it fails instead of swapping the host
M = 1_048_576
K131 = 131_072

# name: (what, GPUs, target seconds, target GiB, time limit s)
CASES = {
    "build-1m": ("dgx_superpod(131072) built", M, 45, None, 400),
    "summary-1m": ("fabric.summary of dgx_superpod(131072)", M, 10, None, 600),
    "bom-1m": ("fabric.bill_of_materials of dgx_superpod(131072)", M, 10, None, 400),
    "summary-nvl72": ("fabric.summary of nvl72(5632), 405,504 GB200", 405_504, 5, None, 400),
    "step-superpod": ("flow-level 405B step, tp8 pp16, DGX SuperPOD", K131, 10, 4, 400),
    "step-spectrumx": ("flow-level 405B step, tp8 pp16, Spectrum-X", K131, 10, 4, 400),
    "step-roce": ("flow-level 405B step, tp8 pp16, RoCE ToR ECMP fat tree", K131, 10, 4, 400),
    "step-1m": ("flow-level 405B step, tp8 pp16, DGX SuperPOD", M, 60, 16, 600),
    "ring-1m": ("flow-level ring all-reduce (8 channels), 1 GiB, all GPUs", M, 60, None, 600),
    "alltoall-1m": ("flow-level all-to-all in 64-GPU groups, 64 MiB", M, 60, None, 600),
    "permutation-131k": ("random permutation routed and solved, adaptive", K131, 10, None, 300),
}


def _fabric(name, gpus):
    import fabric

    if name == "step-spectrumx":
        return fabric.spectrum_x(gpus // 8)
    if name == "step-roce":
        return fabric.fat_tree(gpus // 8, switch="tomahawk5", transport="ethernet", rail_optimized=False)
    if name == "summary-nvl72":
        return fabric.nvl72(gpus // 72)
    return fabric.dgx_superpod(gpus // 8)


def child(name):
    """In a fresh process: build the case's fabric, time the measured call, print JSON."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a checkout works without installing
    import warnings

    import numpy as np

    import collectives
    import fabric

    _, gpus, _, cap, _ = CASES[name]
    start = time.perf_counter()
    G = _fabric(name, gpus)
    built = time.perf_counter() - start
    print(json.dumps({"build": built}), flush=True)
    start = time.perf_counter()
    if name == "summary-1m" or name == "summary-nvl72":
        fabric.summary(G)
    elif name == "bom-1m":
        fabric.bill_of_materials(G)
    elif name.startswith("step"):
        dp = gpus // 128
        plan = collectives.Parallelism(tp=8, pp=16, dp=dp, global_batch=16 * dp, virtual_stages=2, zero=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", collectives.MemoryWarning)
            collectives.estimate_step(collectives.MODELS["llama3-405b"], plan, G, level="flow")
    elif name == "ring-1m":
        collectives.all_reduce(G, 2**30, algorithm="ring", level="flow")
    elif name == "alltoall-1m":
        groups = [list(range(i, i + 64)) for i in range(0, gpus, 64)]
        collectives.concurrent(G, "all_to_all", groups, 2**26, level="flow")
    elif name == "permutation-131k":
        rng = np.random.default_rng(0)
        dst = rng.permutation(gpus)
        src = np.arange(gpus)
        keep = src != dst
        fabric.flow_rates(G, src[keep], dst[keep], routing="adaptive")
    took = built if name == "build-1m" else time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"build": built, "time": took, "peak": peak}), flush=True)


def measure(name):
    """Run one case; returns (result dict or None, failure text or None)."""
    _, _, _, cap, limit = CASES[name]
    memory = MACHINE_CAP if cap is None else min(MACHINE_CAP, int(2 * cap * GiB))  # twice the target, to see it fail

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    try:
        proc = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True,
                              timeout=limit, preexec_fn=limit_memory)
        lines, failure = proc.stdout, None
        if proc.returncode:
            tail = proc.stderr.strip().splitlines()
            failure = tail[-1] if tail else f"killed (exit {proc.returncode}) under a {memory / GiB:.0f} GiB cap"
    except subprocess.TimeoutExpired as e:
        lines = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        failure = f"still running after {limit} s"
    results = [json.loads(line) for line in lines.strip().splitlines() if line.startswith("{")]
    return (results[-1] if results else None), failure


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="cases to run (default: all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="name the cases and stop")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.list:
        for name, (what, gpus, *_rest) in CASES.items():
            print(f"{name:18} {what}, {gpus:,} GPUs")
        return
    unknown = [name for name in args.cases if name not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; --list names them")
    rows, notes = [], []
    for name in args.cases or list(CASES):
        what, gpus, target_s, target_gib, _ = CASES[name]
        print(f"  {name} ...", file=sys.stderr, flush=True)
        result, failure = measure(name)
        target = f"< {target_s} s" + (f", {target_gib} GiB" if target_gib else "")
        build = f"{result['build']:.1f}" if result and "build" in result else "-"
        if result is None or "time" not in result:
            rows.append((what, f"{gpus:,}", build, "-", "-", target, "FAIL"))
            notes.append(f"{name}: {failure}")
            continue
        ok = result["time"] < target_s and (target_gib is None or result["peak"] < target_gib * GiB)
        rows.append((what, f"{gpus:,}", build, f"{result['time']:.1f}", f"{result['peak'] / GiB:.2f}", target,
                     "pass" if ok else "FAIL"))
    print(mdtable.table(("case", "GPUs", "build s", "time s", "peak GiB", "target", "result"), rows))
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
