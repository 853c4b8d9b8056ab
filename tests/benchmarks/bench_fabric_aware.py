"""The fabric-aware analytic level against the flow level, fabric by fabric and plan by plan.

For each fabric of the matrix (DGX SuperPOD, Spectrum-X, RoCE rail-optimized ECMP, RoCE
top-of-rack ECMP with 1 and 16 queue pairs, 3:1 and 7:1 oversubscribed pods, 2 of 8 spines
down, 6 of 8 uplinks of one leaf cut) and each plan (Llama-3 8B, 70B, 405B, a 64-expert
Mixtral-shaped MoE with expert parallelism across servers), prints the analytic step time
at seed 0, the flow level's mean and p5..p95 over 8 ECMP seeds, the analytic level's mean
over the same seeds, and the errors; then the medians and maxima, and the time of the
probing and of one analytic estimate on a prepared cluster. Last, a Llama-3-8B search on a
SuperPOD and on a 3:1 oversubscribed top-of-rack ECMP fabric: how the rankings differ, and the
flow-level times of the ECMP search's top 20.

Run: python tests/benchmarks/bench_fabric_aware.py [gpus] [seeds] [fabrics]   (default 1024 GPUs,
8 seeds, every fabric; ``fabrics``: comma-separated parts of their names, e.g. ``"3:1,7:1"``).
A cell whose flow level does not fit in memory prints ``fabric.TooLarge``'s message.
"""

import statistics
import sys
import time
import warnings
from dataclasses import replace

import collectives
import fabric
from collectives.training.step import Cluster

import mdtable  # tests/benchmarks/mdtable.py, beside this script


def _remove_spines(G, down, of):
    """``down`` of every ``of`` spines in index order (so each pod of a 3-tier fabric loses its share)."""
    spines = sorted((n for n, d in G.nodes(data=True) if d.get("tier") == 2), key=lambda n: int(n.removeprefix("spine")))
    G.remove_nodes_from(n for i, n in enumerate(spines) if i % of < down)
    return G


def _cut_uplinks(G, cut, of):
    leaf = next(n for n, d in G.nodes(data=True) if d.get("tier") == 1)
    ups = sorted(v for v in G.successors(leaf) if G.nodes[v].get("kind") == "switch")
    for v in ups[: len(ups) * cut // of]:
        G.remove_edge(leaf, v)
        G.remove_edge(v, leaf)
    return G


def fabrics(nodes):
    tor = dict(routing="ecmp", rail_optimized=False)
    return {
        "DGX SuperPOD": lambda: fabric.dgx_superpod(nodes),
        "Spectrum-X": lambda: fabric.spectrum_x(nodes),
        "RoCE rail ECMP qps1": lambda: fabric.fat_tree(nodes, routing="ecmp", qps=1),
        "RoCE ToR ECMP qps1": lambda: fabric.fat_tree(nodes, qps=1, **tor),
        "RoCE ToR ECMP qps16": lambda: fabric.fat_tree(nodes, qps=16, **tor),
        "ToR 3:1 pods": lambda: fabric.fat_tree(nodes, oversubscription=3.0, **tor),
        "ToR 7:1 pods": lambda: fabric.fat_tree(nodes, oversubscription=7.0, **tor),
        "SuperPOD, 2 of 8 spines down": lambda: _remove_spines(fabric.dgx_superpod(nodes), 2, 8),
        "SuperPOD, 6 of 8 uplinks of a leaf cut": lambda: _cut_uplinks(fabric.dgx_superpod(nodes), 6, 8),
    }


def plans(gpus):
    m = collectives.MODELS
    moe = replace(m["mixtral-8x7b"], experts=64, name="moe-64x7b")  # EP 64 spans 8 servers
    return {
        "Llama-3-8B tp8": (m["llama3-8b"], collectives.Parallelism(
            tp=8, dp=gpus // 8, global_batch=gpus, overlap_grad_reduce=False)),
        "Llama-3-70B tp8 pp4": (m["llama3-70b"], collectives.Parallelism(
            tp=8, pp=4, dp=gpus // 32, global_batch=gpus // 2, zero=1)),
        "Llama-3-405B tp8 pp16": (m["llama3-405b"], collectives.Parallelism(
            tp=8, pp=16, dp=gpus // 128, global_batch=max(256, gpus // 8), virtual_stages=2, zero=1)),
        "MoE-64 ep64 across servers": (moe, collectives.Parallelism(
            tp=1, pp=4, dp=gpus // 4, ep=64, etp=1, global_batch=gpus, recompute="full")),
    }


def _cell(fname, G, pname, model, plan, seeds, seed0_errors, mean_errors, probe_times, fast_times):
    """One row of the matrix; the errors and times are appended to the lists given."""
    start = time.perf_counter()
    cluster = Cluster(G, "analytic")
    fast = collectives.estimate_step(model, plan, G, cluster=cluster).time
    probe_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    collectives.estimate_step(model, replace(plan, zero=2 if plan.zero != 2 else 1), G, cluster=cluster)
    fast_times.append(time.perf_counter() - start)
    flow = collectives.step_spread(model, plan, G, seeds=seeds)
    fast_spread = collectives.step_spread(model, plan, G, seeds=seeds, level="analytic")
    e0, em = fast / flow.mean - 1, fast_spread.mean / flow.mean - 1
    seed0_errors.append(abs(e0))
    mean_errors.append(abs(em))
    return [fname, pname, f"{fast:.3f}", f"{flow.mean:.3f}", f"{flow.p5:.3f}..{flow.p95:.3f}",
            f"{fast_spread.mean:.3f}", f"{e0:+.1%}", f"{em:+.1%}"]


def main():
    gpus = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    wanted = sys.argv[3].split(",") if len(sys.argv) > 3 else [""]
    warnings.simplefilter("ignore", collectives.MemoryWarning)
    rows, seed0_errors, mean_errors, probe_times, fast_times = [], [], [], [], []
    for fname, build in fabrics(gpus // 8).items():
        if not any(part in fname for part in wanted):
            continue
        G = build()
        for pname, (model, plan) in plans(gpus).items():
            try:
                rows.append(_cell(fname, G, pname, model, plan, seeds, seed0_errors, mean_errors, probe_times,
                                  fast_times))
            except (fabric.TooLarge, fabric.NoRoute) as error:
                rows.append([fname, pname, f"{type(error).__name__}: {error}"] + [""] * 5)
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)  # progress; the table follows
    header = ["fabric", "plan", "analytic seed 0 (s)", f"flow mean of {seeds} (s)", "flow p5..p95",
              f"analytic mean of {seeds}", "seed 0 vs flow mean", "mean vs flow mean"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print(mdtable.head(header, widths))
    for r in rows:
        print(mdtable.row(r, widths))
    print(f"\n{gpus:,} GPUs: analytic seed 0 vs the flow mean: median {statistics.median(seed0_errors):.1%}, "
          f"max {max(seed0_errors):.1%}; analytic mean vs flow mean: median {statistics.median(mean_errors):.1%}, "
          f"max {max(mean_errors):.1%}")
    print(f"first analytic estimate on a fresh cluster (probing included): median "
          f"{statistics.median(probe_times):.2f} s, max {max(probe_times):.2f} s; "
          f"another plan on the prepared cluster: median {1e3 * statistics.median(fast_times):.2f} ms")


def rankings(gpus):
    """Searches on a SuperPOD and on a 3:1 top-of-rack ECMP fabric; the ECMP top 20 at the flow level."""
    model = collectives.MODELS["llama3-8b"]
    superpod = fabric.dgx_superpod(gpus // 8)
    roce = fabric.fat_tree(gpus // 8, routing="ecmp", rail_optimized=False, oversubscription=3.0)
    keys = {}
    for name, G in (("SuperPOD", superpod), ("RoCE ToR 3:1 ECMP", roce)):
        start = time.perf_counter()
        ranked = collectives.search(model, G, global_batch=gpus, progress=False)
        print(f"\nsearch on {name}: {len(ranked):,} plans in {time.perf_counter() - start:.1f} s; best "
              f"{ranked[0].time:.3f} s {ranked[0].plan}")
        keys[name] = [tuple(sorted(e.plan.items())) for e in ranked]
    top = keys["SuperPOD"][:20]
    moved = sum(1 for k in top if k not in keys["RoCE ToR 3:1 ECMP"][:20])
    print(f"of the SuperPOD's top 20 plans, {moved} are not in the ECMP fabric's top 20")
    flow = []
    for key in keys["RoCE ToR 3:1 ECMP"][:20]:
        plan = collectives.Parallelism(**dict(key), global_batch=gpus)
        flow.append(collectives.estimate_step(model, plan, roce, level="flow").time)
    print(f"flow level of the ECMP search's top 20: its best plan {flow[0]:.4f} s, best of the 20 {min(flow):.4f} s "
          f"({flow[0] / min(flow) - 1:+.2%})")


if __name__ == "__main__":
    main()
    if len(sys.argv) <= 3:  # the whole matrix: the rankings too
        rankings(int(sys.argv[1]) if len(sys.argv) > 1 else 1024)
