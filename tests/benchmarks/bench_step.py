"""Accuracy and speed of the training-step estimator.

Prints every published row against the model (collectives.training.validation: step times of
training.csv and training_runs.csv, peak memory, nccl-tests rows; medians per GPU family), the
time of one Llama-3-405B estimate on dgx_superpod(2048) at both levels, and the analytic
search rate.

Run: python tests/benchmarks/bench_step.py
"""

import os
import time
import warnings

import numpy as np
from concurrent.futures import Executor, ProcessPoolExecutor

import collectives
import fabric
from collectives.training import calibration
from collectives.training.validation import validate
from collectives.engine import uniform_fabric
from collectives.params import DEFAULT_PARAMS
from collectives.training.search import candidate_plans
from fabric.materials import bill_of_materials
from collectives.training.step import Cluster, estimate_step


class PhaseTimes(Executor):
    """Runs on ``inner`` and records, per submitted function (one per phase of the search:
    the memory pass, the probing, the estimates), the first submit and the last completion."""

    def __init__(self, inner):
        self.inner, self.spans = inner, {}

    def submit(self, fn, *args, **kwargs):
        now = time.perf_counter()
        span = self.spans.setdefault(fn.__name__, [now, now])
        future = self.inner.submit(fn, *args, **kwargs)
        future.add_done_callback(lambda _: span.__setitem__(1, max(span[1], time.perf_counter())))
        return future


def main():
    lines, _ = calibration.report()
    print("the calibration runs: every published run off GB200 (analytic level)")
    print("\n".join("  " + line for line in lines))
    print()
    print(validate(progress=False))
    # every step time is in-sample for one fit or another: the out-of-sample figure is each
    # calibration run predicted by the fit to all the others
    start = time.perf_counter()
    held_out = np.abs(calibration.leave_one_out())
    print(f"\nleave-one-out over the {len(held_out)} calibration runs ({time.perf_counter() - start:.0f} s): "
          f"median |error| {np.median(held_out):.1%}, max {held_out.max():.1%}, {(held_out <= 0.1).sum()} within 10%")

    G = fabric.dgx_superpod(2048, gpu="H100")
    model = collectives.MODELS["llama3-405b"]

    # The search's rate on the plans it really meets: the whole candidate set of this model
    # and cluster (every pipeline depth up to 64 stages), not its first plans (tp1 pp1,
    # nothing to simulate), which flatter it by an order of magnitude. Timed first, three
    # times, before the flow-level estimate fills the process with routing tables.
    summary = uniform_fabric(G, DEFAULT_PARAMS, bill_of_materials(G).network_watts)
    candidates = sum(1 for _ in candidate_plans(model, summary.n_gpus, 2048, gpus_per_domain=summary.gpus_per_domain))
    print(f"\nanalytic search of Llama-3-405B on 16,384 H100, global batch 2048, {os.cpu_count()} processes "
          f"(the phases from their first chunk's submission to their last chunk's end):")
    for _ in range(3):
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            timed = PhaseTimes(pool)
            start = time.perf_counter()
            ranked = collectives.search(model, G, global_batch=2048, progress=False, executor=timed)
            took = time.perf_counter() - start
        phases = {name: end - begin for name, (begin, end) in timed.spans.items()}
        estimating = phases["_estimate_chunk"]
        print(f"  {candidates:,} candidates, {len(ranked):,} fit in memory and were estimated, {took:.1f} s in all:"
              f" memory pass {phases['_fitting_chunk']:.1f} s, probing {phases['_probe_chunk']:.1f} s (target 30 s),"
              f" estimates {estimating:.2f} s = {len(ranked) / estimating:,.0f} estimated plans/s (target 5,000)")
    best = ranked[0]
    print(f"  best: {best.time:.2f} s/step, MFU {best.mfu:.1%}, {best.plan}")

    plan = collectives.Parallelism(tp=8, pp=16, dp=128, global_batch=2048, virtual_stages=2, zero=2)
    print("\nLlama-3-405B, tp8 pp16 dp128 (v=2, zero=2), 16,384 H100")
    for level, note in (("flow", "target 2 s"), ("analytic", "a fresh graph: its patterns probed at the flow level")):
        start = time.perf_counter()
        est = collectives.estimate_step(model, plan, G, level=level)
        took = time.perf_counter() - start
        print(f"  {level:>8}: {took:7.3f} s ({note})  step {est.time:.2f} s, MFU {est.mfu:.1%}")
    cluster = Cluster(G, "analytic")
    estimate_step(model, plan, G, cluster=cluster)
    # a plan differing in ZeRO stage only (its pipeline is already simulated); zero=1 needs more
    # memory than the GPU has, which is beside the point of this timing
    other = collectives.Parallelism(tp=8, pp=16, dp=128, global_batch=2048, virtual_stages=2, zero=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", collectives.MemoryWarning)
        start = time.perf_counter()
        estimate_step(model, other, G, cluster=cluster)
        took = time.perf_counter() - start
    print(f"  analytic with a prepared Cluster, same pipeline: {took:.4f} s (target 0.001 s)")
    fresh = collectives.Parallelism(tp=8, pp=16, dp=128, global_batch=2048, virtual_stages=1, zero=2)
    start = time.perf_counter()
    estimate_step(model, fresh, G, cluster=cluster)
    print(f"  analytic with a prepared Cluster, a pipeline not yet simulated: {time.perf_counter() - start:.4f} s")


if __name__ == "__main__":
    main()
