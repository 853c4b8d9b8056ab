"""Presets of published clusters: build times, switches per tier, and the Llama 3 405B
pre-training runs priced on the cluster Meta ran them on.

Prints, for every preset of ``fabric.PRESETS``, the build time at its published size and at
about 16,384 GPUs (whole racks: 16,416 for NVL72 racks), with its switches per tier; then
Llama-3-405B with the Llama 3 paper's plans on ``preset("meta-llama3", gpus=8192 / 16384)``
(its Table 4: TP8 CP1 PP16, 16M tokens per step of 8,192-token sequences) at the analytic,
fabric-aware level, against the TFLOP/s per GPU the paper reports. The paper does not give
the micro-batch size, the interleaving or the sharding; the plan below states what it assumes.

Run: python tests/benchmarks/bench_presets.py
"""

import time
import warnings
from collections import Counter

import collectives
import fabric
from collectives.training.step import Cluster
from fabric.presets import PRESET_SPECS

import mdtable  # tests/benchmarks/mdtable.py, beside this script

# Llama 3 paper, Table 4 (405B pre-training at 8K sequences): GPUs, DP, reported TFLOP/s per GPU
LLAMA3_RUNS = ((8_192, 64, 430), (16_384, 128, 400))
SEQUENCES_PER_STEP = 16 * 2**20 // 8192  # 16M tokens of 8,192-token sequences


def _switches(G):
    tiers = Counter((d["tier"], d["model"]) for _, d in G.nodes(data=True) if d["kind"] == "switch")
    return ", ".join(f"t{tier} {n:,} {model}" for (tier, model), n in sorted(tiers.items()))


def builds():
    rows = []
    for name, spec in PRESET_SPECS.items():
        sizes = [spec.gpus, -(-16_384 // spec.unit) * spec.unit]
        for gpus in dict.fromkeys(sizes):
            start = time.perf_counter()
            G = fabric.preset(name, gpus=gpus)
            took = time.perf_counter() - start
            rows.append([name, f"{gpus:,}", f"{took:.2f}", _switches(G)])
    print(mdtable.table(["preset", "GPUs", "build (s)", "switches per tier"], rows))


def llama3_runs():
    model = collectives.MODELS["llama3-405b"]
    rows = []
    for gpus, dp, published in LLAMA3_RUNS:
        G = fabric.preset("meta-llama3", gpus=gpus)
        cluster = Cluster(G, "analytic")
        # assumed: one sequence per micro-batch, FSDP-like sharding (ZeRO-3), selective recompute;
        # without interleaving and with 2 or 4 chunks per stage (the paper says only "interleaved")
        for v in (1, 2, 4):
            plan = collectives.Parallelism(tp=8, pp=16, dp=dp, global_batch=SEQUENCES_PER_STEP, virtual_stages=v,
                                           zero=3, recompute="selective")
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", collectives.MemoryWarning)  # the table says whether it fits
                est = collectives.estimate_step(model, plan, G, cluster=cluster)
            took = time.perf_counter() - start
            rows.append([f"{gpus:,}", f"tp8 pp16 dp{dp} v{v} zero3 selective", f"{published}",
                         f"{est.tflops_per_gpu:.0f}", f"{est.tflops_per_gpu / published - 1:+.1%}", f"{est.time:.2f}",
                         f"{est.memory_per_gpu / 2**30:.1f}", f"{est.fits}", f"{took:.1f}"])
    print(mdtable.table(["GPUs", "plan", "published TFLOP/s", "predicted", "error", "step (s)", "GiB per GPU",
                         "fits", "estimate (s)"], rows))


if __name__ == "__main__":
    builds()
    print()
    llama3_runs()
