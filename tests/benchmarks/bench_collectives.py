"""Speed of the collective models (issue: collectives on the fabric).

Targets: flow-level ring all-reduce over all 16,384 GPUs of dgx_superpod(2048) under 3 s;
all 128 data-parallel groups of a TP8 x PP16 x DP128 layout reducing concurrently under
10 s; analytic level under 1 ms per call. Also prints the busbw curve of one DGX H100
against the published nccl-tests points.

Run: python tests/benchmarks/bench_collectives.py
"""

import time

import collectives
import fabric
from collectives import calibration
from fabric.units import GiB


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main():
    G = fabric.dgx_superpod(2048, gpu="H100")
    rows = []
    t, r = timed(lambda: collectives.all_reduce(G, GiB, algorithm="ring"))
    rows.append(("ring all-reduce, 16,384 GPUs, flow", t, 3.0, f"busbw {r.busbw / 1e9:.1f} GB/s"))
    # Megatron order: TP innermost, then DP, PP outermost.
    dp_groups = [[(pp * 128 + dp) * 8 + tp for dp in range(128)] for pp in range(16) for tp in range(8)]
    t, rs = timed(lambda: collectives.concurrent(G, "all_reduce", dp_groups, GiB, algorithm="ring"))
    rows.append(("128 DP groups (TP8 PP16 DP128) at once, flow", t, 10.0,
                 f"slowest busbw {min(x.busbw for x in rs) / 1e9:.1f} GB/s"))
    t, rs = timed(lambda: collectives.concurrent(G, "all_reduce", dp_groups, GiB))
    rows.append(("same, algorithm=auto (all eligible), flow", t, None, f"picked {rs[0].algorithm}"))
    group = dp_groups[0]
    t, r = timed(lambda: collectives.all_reduce(G, GiB, ranks=group, level="analytic"), repeat=20)
    rows.append(("analytic all-reduce, 128-rank DP group, auto", t, 1e-3, f"{r.algorithm}"))
    t, r = timed(lambda: collectives.all_reduce(G, GiB, ranks=range(8), algorithm="ring", level="analytic"), repeat=20)
    rows.append(("analytic ring all-reduce, 8-rank TP group", t, 1e-3, ""))
    print(f"{'case':<48} {'seconds':>9} {'target':>8} {'pass':>5}  note")
    for name, seconds, target, note in rows:
        verdict = "" if target is None else ("yes" if seconds < target else "NO")
        target_text = "" if target is None else f"{target:g}"
        print(f"{name:<48} {seconds:>9.4f} {target_text:>8} {verdict:>5}  {note}")

    print("\nnccl.csv: published busbw against the model (flow level)")
    for row in calibration.read_nccl_csv():
        model = calibration.predict(row)
        print(f"  {row['collective']:>10} {row['gpu']} {row['nodes']}x{row['gpus_per_node']} {row['algorithm']:>4}: "
              f"published {row['busbw'] / 1e9:6.1f}  model {model / 1e9:6.1f} GB/s  ({model / row['busbw'] - 1:+.1%})")


if __name__ == "__main__":
    main()
