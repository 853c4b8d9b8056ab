"""Accuracy and speed of the training-step estimator (issue: step time, search, energy).

Prints every training.csv row against the model (median and max error), the time of
one Llama-3-405B estimate on dgx_superpod(2048) at both levels, and the analytic
search rate.

Run: python tests/benchmarks/bench_step.py
"""

import os
import time
from concurrent.futures import ProcessPoolExecutor

import collectives
import fabric
from collectives import step_calibration
from collectives.engine import uniform_fabric
from collectives.params import DEFAULT_PARAMS
from collectives.search import candidate_plans
from collectives.step import Cluster, estimate_step


def main():
    lines, _ = step_calibration.report()
    print("training.csv (analytic level)")
    print("\n".join("  " + line for line in lines))

    G = fabric.dgx_superpod(2048, gpu="H100")
    model = collectives.MODELS["llama3-405b"]
    plan = collectives.Parallelism(tp=8, pp=16, dp=128, global_batch=2048, virtual_stages=2, zero=2)
    print("\nLlama-3-405B, tp8 pp16 dp128 (v=2, zero=2), 16,384 H100")
    for level, target in (("flow", 2.0), ("analytic", 0.01)):
        start = time.perf_counter()
        est = collectives.estimate_step(model, plan, G, level=level)
        took = time.perf_counter() - start
        print(f"  {level:>8}: {took:7.3f} s (target {target:g} s)  step {est.time:.2f} s, MFU {est.mfu:.1%}")
    cluster = Cluster(G, "analytic")
    estimate_step(model, plan, G, cluster=cluster)
    other = collectives.Parallelism(tp=8, pp=16, dp=128, global_batch=2048, virtual_stages=2, zero=1)
    start = time.perf_counter()
    estimate_step(model, other, G, cluster=cluster)
    print(f"  analytic with a prepared Cluster: {time.perf_counter() - start:.4f} s")

    summary = uniform_fabric(G, DEFAULT_PARAMS, cluster.network_watts)
    plans = list(candidate_plans(model, summary.n_gpus, 2048, gpus_per_domain=summary.gpus_per_domain))[:2000]
    start = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        chunks = [plans[i:i + 64] for i in range(0, len(plans), 64)]
        futures = [pool.submit(_chunk, model, c, summary) for c in chunks]
        done = sum(len(f.result()) for f in futures)
    took = time.perf_counter() - start
    print(f"\nanalytic search: {done} plans in {took:.1f} s on {os.cpu_count()} cores = {done / took:.0f} plans/s "
          f"(target 3,000 plans/s)")


def _chunk(model, plans, summary):
    cluster = Cluster(summary, "analytic")
    return [estimate_step(model, p, summary, cluster=cluster) for p in plans]


if __name__ == "__main__":
    main()
