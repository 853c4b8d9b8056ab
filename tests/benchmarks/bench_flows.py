"""Flow-level benchmarks: bandwidth a random permutation gets, and time of large flow sets.

Run: ``python tests/benchmarks/bench_flows.py`` (about 5 minutes on 2 cores; ``--quick``
skips the 131,072-GPU fabric). Prints two tables:

1. Fraction of NIC bandwidth per flow for a random permutation between GPUs under
   different leaves, with adaptive routing, single-queue ECMP (qps=1) and ECMP with
   16 queue pairs, on a 3-tier InfiniBand SuperPOD and a 2-tier Ethernet fat tree.
2. Time (compile / route / solve, i.e. what one ``fabric.flow_rates`` call spends) and
   peak memory of large flow sets, against targets.

Each timing case runs in a fresh subprocess, which reports its own peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the whole process, interpreter, fabric
graph and all, not only the flow solve). It runs under an address-space cap and a time
limit, so a case that would not fit fails cleanly instead of taking the machine down.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import mdtable  # tests/benchmarks/mdtable.py, beside this script

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # a checkout works without installing

import fabric  # noqa: E402
from fabric.compiled import compile_fabric  # noqa: E402
from fabric.flows import max_min_rates  # noqa: E402
from fabric.routing import route  # noqa: E402

GiB = 2**30
MEMORY_CAP = 12 * GiB  # RLIMIT_AS of each timing subprocess: 1.5 x the 8 GiB target, and room for others
CASE_TIMEOUT = 600  # seconds per timing subprocess

# Published reference for the bandwidth figure (NVIDIA's Spectrum-X claim): standard
# Ethernet with ECMP reaches ~60% effective bandwidth at scale, Spectrum-X ~95%.
REFERENCE = {"adaptive": "~95% (Spectrum-X, NVIDIA)", "ecmp/1": "~60% (std Ethernet, NVIDIA)", "ecmp/16": ""}
ADAPTIVE_TARGET = 0.95


# ---------------------------------------------------------------- traffic patterns


def leaf_group(C):
    """Per rank, an id of the set of leaves its server's NICs reach (min leaf of its domain).

    Two ranks with different ids cannot reach each other's leaves without a spine: on a
    rail-optimized fabric the id is the scalable unit, on a top-of-rack fabric the rack.
    """
    from fabric.routing import relay_members

    members, group = relay_members(C)
    leaves = np.where(members >= 0, C.leaf[np.maximum(members, 0)], np.iinfo(np.int64).max)
    return leaves.min(axis=1)[group]


def derange(rng, ranks, key):
    """A random permutation ``p`` of ``ranks`` with ``key[p[i]] != key[ranks[i]]`` for every i."""
    p = ranks[rng.permutation(len(ranks))]
    for _ in range(1000):
        bad = np.flatnonzero(key[p] == key[ranks])
        if not bad.size:
            return p
        for i, j in zip(bad, rng.integers(0, len(ranks), len(bad))):
            if key[p[j]] != key[ranks[i]] and key[p[i]] != key[ranks[j]]:
                p[i], p[j] = p[j], p[i]
    raise RuntimeError("could not derange")


def permutation_any_rail(C, seed=0):
    """Every GPU sends to one random GPU under a different leaf group, every GPU receives one."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(C.n_gpus)
    return ranks, derange(rng, ranks, leaf_group(C))


def permutation_same_rail(C, gpus_per_node, seed=0):
    """As :func:`permutation_any_rail`, but each GPU sends to a GPU of its own local rank (rail)."""
    rng = np.random.default_rng(seed)
    key = leaf_group(C)
    src, dst = [], []
    for rail in range(gpus_per_node):
        ranks = np.arange(rail, C.n_gpus, gpus_per_node)
        src.append(ranks)
        dst.append(derange(rng, ranks, key))
    return np.concatenate(src), np.concatenate(dst)


def ring_one_channel(n):
    """One NCCL ring in rank order: r -> r+1 (NVLink inside a server, PXN onto one rail between)."""
    src = np.arange(n)
    return src, (src + 1) % n


def ring_all_channels(n, gpus_per_node=8):
    """NCCL's rings on an 8-NIC server, all at once: channel c runs c, c+1, ..., c+7 inside a
    server and crosses to the next server's GPU c, so every NIC carries one ring hop."""
    hosts = n // gpus_per_node
    h = np.arange(hosts)
    src, dst = [], []
    for c in range(gpus_per_node):
        for k in range(gpus_per_node - 1):
            src.append(h * gpus_per_node + (c + k) % gpus_per_node)
            dst.append(h * gpus_per_node + (c + k + 1) % gpus_per_node)
        src.append(h * gpus_per_node + (c + gpus_per_node - 1) % gpus_per_node)
        dst.append(((h + 1) % hosts) * gpus_per_node + c)
    return np.concatenate(src), np.concatenate(dst)


def random_flows(n, per_gpu, seed=0):
    """``per_gpu`` flows from every GPU to uniformly random other GPUs."""
    rng = np.random.default_rng(seed)
    src = np.repeat(np.arange(n), per_gpu)
    dst = rng.integers(0, n - 1, len(src))
    return src, dst + (dst >= src)


def nic_bandwidth(C):
    """Bytes/s of rank 0's NIC uplink."""
    return float(C.bandwidth[C.edge_ids([C.nic[0]], [C.leaf[0]])[0]])


# ---------------------------------------------------------------- table 1: bandwidth


def bandwidth_table():
    fabrics = [
        ("dgx_superpod(2048): 16,384 GPUs, 3-tier IB", lambda: fabric.dgx_superpod(2048)),
        (
            'fat_tree(512, "tomahawk5", ToR): 4,096 GPUs, 2-tier Ethernet',
            lambda: fabric.fat_tree(512, switch="tomahawk5", transport="ethernet", rail_optimized=False),
        ),
    ]
    rows = []
    for name, build in fabrics:
        G = build()
        C = compile_fabric(G)
        nic = nic_bandwidth(C)
        # (pattern, flows, PXN, judged against the fabric target)
        superpod = G.graph["builder"] == "dgx_superpod"
        # NCCL's PXN funnels a server's GPUs onto shared destination-rail NICs, so with it the
        # any-rail permutation measures NIC sharing, not the fabric; without it (or on the
        # same rail) every flow has its own NIC and only the fabric is measured.
        any_rail = permutation_any_rail(C)
        patterns = [("random permutation, any rail", any_rail, True, not superpod)]
        if superpod:
            patterns.append(("random permutation, any rail, PXN off", any_rail, False, True))
            patterns.append(("random permutation, same rail", permutation_same_rail(C, G.graph["gpus_per_node"]), True, True))
        for pattern, (src, dst), pxn, judged in patterns:
            for label, routing, qps in (("adaptive", "adaptive", 1), ("ecmp/1", "ecmp", 1), ("ecmp/16", "ecmp", 16)):
                t0 = time.perf_counter()
                frac = fabric.flow_rates(G, src, dst, routing=routing, qps=qps, seed=0, pxn=pxn) / nic
                elapsed = time.perf_counter() - t0
                verdict = ""
                if label == "adaptive" and judged:
                    verdict = "pass" if frac.mean() >= ADAPTIVE_TARGET else "FAIL"
                rows.append((name, pattern, label, frac.mean(), frac.min(), elapsed, REFERENCE[label], verdict))
                print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print("Random permutation between GPUs under different leaves: fraction of NIC bandwidth per flow")
    print(f"(target: adaptive >= {ADAPTIVE_TARGET:.0%} on average)")
    print()
    header = ("fabric", "pattern", "routing", "mean", "min", "time s", "published", "target")
    widths = (58, 38, 8, 6, 6, 7, 27, 6)
    print(mdtable.head(header, widths))
    for name, pattern, label, mean, low, elapsed, ref, verdict in rows:
        cells = (name, pattern, label, f"{mean:.1%}", f"{low:.1%}", f"{elapsed:.1f}", ref, verdict or "-")
        print(mdtable.row(cells, widths))
    print()


# ---------------------------------------------------------------- table 2: timing

CASES = {
    # name: (nodes, pattern, routing, qps, target seconds, target GiB or None)
    "ring, 1 channel (r -> r+1)": (2048, "ring1", "adaptive", 1, 2.0, None),
    "ring, 8 channels (all NICs)": (2048, "ring8", "adaptive", 1, 60.0, 8.0),
    "random permutation": (2048, "perm", "adaptive", 1, 10.0, None),
    "random permutation, ECMP qps=16": (2048, "perm", "ecmp", 16, None, None),
    "8 random flows per GPU": (2048, "rand8", "adaptive", 1, 60.0, 8.0),
    "random permutation, 131,072 GPUs": (16384, "perm", "adaptive", 1, 60.0, 8.0),
}


def run_case(name):
    """In this (fresh) process: build, then compile / route / solve one case.

    Prints a JSON line after each stage (so a case that dies still tells how far it got).
    """
    nodes, pattern, routing, qps, _, _ = CASES[name]

    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    out = dict(gpus=nodes * 8, base_rss=rss(), stage="build")

    def report(stage, **values):
        out.update(values, stage=stage, peak_rss=rss())
        print(json.dumps(out), flush=True)

    t0 = time.perf_counter()
    G = fabric.dgx_superpod(nodes)
    report("compile", build=time.perf_counter() - t0, built_rss=rss())
    n = nodes * 8
    # What fabric.flow_rates(G, src, dst, routing=routing, qps=qps) does, timed in parts.
    t0 = time.perf_counter()
    C = compile_fabric(G)
    compiled = time.perf_counter() - t0
    if pattern == "ring1":
        src, dst = ring_one_channel(n)
    elif pattern == "ring8":
        src, dst = ring_all_channels(n)
    elif pattern == "rand8":
        src, dst = random_flows(n, 8)
    else:
        src, dst = permutation_any_rail(C)  # needs the compiled leaves; not timed
    report("route", compile=compiled, flows=len(src))
    t0 = time.perf_counter()
    R = route(C, src, dst, routing=routing, qps=qps, seed=0)
    report("solve", route=time.perf_counter() - t0)
    t0 = time.perf_counter()
    rates, _ = max_min_rates(R)
    per_flow = np.bincount(R.owner, rates, minlength=R.n_flows)
    solved = time.perf_counter() - t0
    frac = per_flow / nic_bandwidth(C)
    net = C.domain[src] != C.domain[dst]
    report(
        "done",
        solve=solved,
        network_flows=int(net.sum()),
        net_mean=float(frac[net].mean()) if net.any() else None,
        net_min=float(frac[net].min()) if net.any() else None,
    )


def _failure(stderr, stage, wall):
    """One line saying where and why a case died."""
    lines = stderr.strip().splitlines()
    where = [line.strip() for line in lines if line.strip().startswith("File") and "/fabric/" in line]
    func = where[-1].rsplit(" in ", 1)[-1] if where else "?"
    last = lines[-1] if lines else "no output"
    if "MemoryError" in last:
        why = f"out of memory (address-space cap {MEMORY_CAP / GiB:.0f} GiB)"
    else:
        why = last[:100]
    return f"{why} during {stage}, in fabric {func}(), after {wall:.0f} s"


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def timing_table(quick):
    rows = []
    for name, (nodes, pattern, routing, qps, target_s, target_gib) in CASES.items():
        if quick and nodes > 2048:
            continue
        print(f"  {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--case", name],
                capture_output=True,
                text=True,
                timeout=CASE_TIMEOUT,
                preexec_fn=_limit_memory,
            )
            stdout, stderr, ok = proc.stdout, proc.stderr, proc.returncode == 0
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr, ok = f"timed out after {CASE_TIMEOUT} s", False
        wall = time.perf_counter() - t0
        lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        result = lines[-1] if lines else {"stage": "build"}
        failure = None if ok else _failure(stderr, result["stage"], wall)
        rows.append((name, nodes * 8, routing, qps, target_s, target_gib, result, failure, wall))

    print("Time and peak memory of large flow sets on dgx_superpod (adaptive routing unless noted)")
    print("total = compile + route + solve (one fabric.flow_rates call on a built graph); build is separate;")
    print("peak = peak RSS of the whole fresh process (graph included), from getrusage(RUSAGE_SELF).ru_maxrss")
    print()
    header = ("case", "GPUs", "flows", "build s", "compile s", "route s", "solve s", "total s", "peak GiB",
              "target", "result")
    widths = (33, 7, 7, 7, 9, 7, 7, 7, 8, 16, 6)
    print(mdtable.head(header, widths))
    notes = []
    for name, gpus, routing, qps, target_s, target_gib, r, failure, wall in rows:
        target = "-" if target_s is None else f"< {target_s:g} s" + (f", {target_gib:g} GiB" if target_gib else "")

        def cell(key, fmt="{:.2f}"):
            return fmt.format(r[key]) if key in r else "-"

        if failure:
            if "out of memory" in failure:
                peak = f"> {MEMORY_CAP / GiB:.0f}"
            else:
                peak = f"{r['peak_rss'] / GiB:.2f}+" if "peak_rss" in r else "-"
            cells = (name, f"{gpus:,}", cell("flows", "{:,}"), cell("build"), cell("compile"), cell("route"),
                     cell("solve"), "-", peak, target, "FAIL")
            notes.append(f"{name}: {failure}")
        else:
            total = r["compile"] + r["route"] + r["solve"]
            peak = r["peak_rss"] / GiB
            ok = (target_s is None or total < target_s) and (target_gib is None or peak < target_gib)
            verdict = "-" if target_s is None else ("pass" if ok else "FAIL")
            cells = (
                name, f"{gpus:,}", f"{r['flows']:,}", f"{r['build']:.2f}", f"{r['compile']:.2f}",
                f"{r['route']:.2f}", f"{r['solve']:.2f}", f"{total:.2f}", f"{peak:.2f}", target, verdict,
            )
            if r["net_mean"] is not None:
                notes.append(
                    f"{name}: {r['network_flows']:,} flows cross the network, mean {r['net_mean']:.1%} "
                    f"/ min {r['net_min']:.1%} of NIC bandwidth"
                )
        print(mdtable.row(cells, widths))
    print()
    for note in notes:
        print("- " + note)
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="skip the 131,072-GPU fabric")
    parser.add_argument("--only", choices=("bandwidth", "timing"), help="run one table")
    args = parser.parse_args()
    if args.case:
        run_case(args.case)
        return
    if args.only != "timing":
        bandwidth_table()
    if args.only != "bandwidth":
        timing_table(args.quick)


if __name__ == "__main__":
    main()
