"""Build time and peak memory of ``fabric.dgx_superpod``, and the largest that fits.

Run: ``python tests/benchmarks/bench_build.py`` (under 10 minutes on 2 cores).

Each size is built in a fresh subprocess under an address-space cap (``RLIMIT_AS``,
22 GiB of the machine's 24) and a time limit. The subprocess reports its own peak
resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) after the imports, after
the build and after ``fabric.compiled.compile_fabric``; "graph" memory is the peak after
the build minus the peak after the imports, so bytes per GPU count the networkx graph
(and the builder's temporary lists) only. Sizes grow by doubling past 131,072 GPUs until
one fails or the time budget would be exceeded.
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
MEMORY_CAP = 22 * GiB
TARGETS = {  # GPUs: (seconds, GiB or None)
    1_024: (None, None),
    16_384: (3.0, None),
    131_072: (30.0, 4.0),
}
GROWING = (262_144, 524_288, 1_048_576, 2_097_152)
BUDGET = 570  # seconds for the whole script (10 minutes, less a margin)


def child(gpus):
    """In a fresh process: build dgx_superpod(gpus / 8), then compile it; print JSON lines."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a checkout works without installing
    import fabric
    from fabric.compiled import compile_fabric

    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    base = rss()
    t0 = time.perf_counter()
    G = fabric.dgx_superpod(gpus // 8)
    build = time.perf_counter() - t0
    tiers = max(d.get("tier", 0) for _, d in G.nodes(data=True))
    out = dict(gpus=gpus, nodes=G.number_of_nodes(), edges=G.number_of_edges(), tiers=tiers, build=build,
               base_rss=base, built_rss=rss())
    print(json.dumps(out), flush=True)
    t0 = time.perf_counter()
    compile_fabric(G)
    out.update(compile=time.perf_counter() - t0, compiled_rss=rss())
    print(json.dumps(out), flush=True)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def measure(gpus, timeout):
    """Run one size; returns (result dict or None, failure text or None)."""
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(gpus)],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_limit_memory,
        )
        lines, err = proc.stdout, proc.stderr
        failure = None if proc.returncode == 0 else (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    except subprocess.TimeoutExpired as e:
        lines = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        failure = f"timed out after {timeout:.0f} s"
    results = [json.loads(line) for line in lines.strip().splitlines() if line.startswith("{")]
    return (results[-1] if results else None), failure


def fmt_gib(x):
    return f"{x / GiB:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-growth", action="store_true", help="only the three target sizes")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    start = time.perf_counter()
    rows = []
    sizes = list(TARGETS) + ([] if args.no_growth else list(GROWING))
    previous = None
    for gpus in sizes:
        elapsed = time.perf_counter() - start
        left = BUDGET - elapsed
        if previous is not None and gpus not in TARGETS:
            # Build and compile scale about linearly: skip a size that cannot finish in time.
            guess = 2.15 * (previous["build"] + previous.get("compile", previous["build"]))
            if guess > left:
                rows.append((gpus, None, f"skipped: ~{guess:.0f} s expected, {left:.0f} s of budget left"))
                break
        print(f"  {gpus:,} GPUs ...", file=sys.stderr, flush=True)
        result, failure = measure(gpus, timeout=max(30.0, left))
        rows.append((gpus, result, failure))
        if result is None or failure:
            if gpus not in TARGETS:
                break
        else:
            previous = result

    print("dgx_superpod(GPUs / 8): build and compile time, peak memory")
    print("graph = peak RSS after the build minus peak RSS after imports (the networkx graph);")
    print("peak = peak RSS of the process after compile_fabric (graph + compiled arrays + interpreter)")
    print()
    header = ("GPUs", "tiers", "nodes", "edges", "build s", "compile s", "graph GiB", "bytes/GPU", "peak GiB",
              "target", "result")
    widths = (9, 5, 9, 10, 7, 9, 9, 9, 8, 15, 6)
    print(mdtable.head(header, widths))
    largest, per_gpu = None, None
    notes = []
    for gpus, r, failure in rows:
        target_s, target_gib = TARGETS.get(gpus, (None, None))
        target = "-" if target_s is None else f"< {target_s:g} s" + (f", {target_gib:g} GiB" if target_gib else "")
        if r is None:
            cells = (f"{gpus:,}", "-", "-", "-", "-", "-", "-", "-", "-", target, "FAIL" if target_s else "no")
            notes.append(f"{gpus:,} GPUs: {failure}")
        else:
            graph = r["built_rss"] - r["base_rss"]
            per_gpu = graph / gpus
            compiled = "compile" in r
            if compiled:
                largest = gpus
            fast = target_s is None or r["build"] < target_s
            ok = fast and (target_gib is None or r["built_rss"] < target_gib * GiB)
            verdict = "-" if target_s is None else ("pass" if ok else "FAIL")
            cells = (
                f"{gpus:,}", str(r["tiers"]), f"{r['nodes']:,}", f"{r['edges']:,}", f"{r['build']:.2f}",
                f"{r['compile']:.2f}" if compiled else "failed", fmt_gib(graph), f"{per_gpu:,.0f}",
                fmt_gib(r.get("compiled_rss", r["built_rss"])), target, verdict,
            )
            if failure:
                notes.append(f"{gpus:,} GPUs: built, then {failure}")
        print(mdtable.row(cells, widths))
    print()
    print("(the memory target is checked on the peak RSS after the build, interpreter included)")
    if largest:
        print(f"largest built and compiled within the {MEMORY_CAP / GiB:.0f} GiB cap: {largest:,} GPUs")
    if per_gpu:
        print(f"at {per_gpu:,.0f} bytes per GPU the graph alone would reach 24 GiB near "
              f"{24 * GiB / per_gpu:,.0f} GPUs (linear extrapolation; compile needs more on top)")
    for note in notes:
        print("- " + note)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
