"""A scaling study for "can it support ten times more": one model from a cluster size to many
times it, the global batch growing with the cluster up to what training can use.

At every size :func:`scaling_study` builds the fabric, searches the fastest plan that fits,
and reports its step time and MFU, its goodput under failures (:func:`collectives.goodput`),
tokens per day, the facility's power (:func:`fabric.facility_power`) and the network's bill
of materials. The batch grows in proportion to the GPUs (so each GPU keeps its share of the
work) until it reaches ``max_tokens_per_step``: beyond the critical batch size more tokens per
step stop buying fewer steps (McCandlish et al. 2018, "An Empirical Model of Large-Batch
Training"), so a bigger cluster then splits the same batch finer.

Examples
--------
>>> import fabric, collectives
>>> from concurrent.futures import ThreadPoolExecutor
>>> with ThreadPoolExecutor(1) as pool:
...     study = scaling_study(collectives.MODELS["llama3-8b"], [16, 32], build=lambda n: fabric.dgx_superpod(n // 8),
...                           global_batch=16, pue=1.2, executor=pool, progress=False)
>>> [p.gpus for p in study.points], [p.global_batch for p in study.points]
([16, 32], [16, 32])
"""

import math
import sys
import warnings
from dataclasses import asdict, dataclass

from fabric.facility import facility_power
from fabric.schema import gpu_count
from fabric.tables import format_time, format_watts, html_table, text_table

from collectives.errors import FabricBlindWarning, Infeasible, InvalidSpec
from collectives.training.goodput import goodput
from collectives.training.plan import Parallelism
from collectives.training.search import search

# The largest batches published for frontier pre-training: DeepSeek-V3 ramped to 15,360
# sequences of 4,096 tokens (~63M tokens per step; DeepSeek-V3 technical report, 2024,
# section 4.2); Llama 3 405B used 16M (Llama 3 paper, section 3.4.1) [mem]. The default limit
# is the larger; a named parameter to change.
MAX_TOKENS_PER_STEP = 15_360 * 4_096


@dataclass(frozen=True)
class ScalingPoint:
    """One size of a :class:`ScalingStudy` (``error`` says why a size has no plan)."""

    gpus: int
    global_batch: int
    tokens_per_step: int
    plan: dict
    step_time: float
    mfu: float
    goodput: float
    tokens_per_day: float
    facility_watts: float
    network_watts: float
    switches: int
    fabric_aware: bool
    error: str = ""


@dataclass(frozen=True)
class ScalingStudy:
    """The sizes of a study, smallest first."""

    model: str
    pue: float
    max_tokens_per_step: int
    points: tuple

    def to_dict(self):
        return asdict(self)

    def _rows(self):
        rows = [("model", f"{self.model}, PUE {self.pue:g}, batch capped at {self.max_tokens_per_step:,} tokens")]
        for p in self.points:
            if p.error:
                rows.append((f"{p.gpus:,} GPUs", p.error))
                continue
            plan = " ".join(f"{k}{v}" for k, v in p.plan.items() if k in ("tp", "pp", "dp", "cp", "ep") and v != 1)
            rows.append((f"{p.gpus:,} GPUs", f"{plan}, batch {p.global_batch:,}: {format_time(p.step_time)}, MFU "
                         f"{p.mfu:.1%}, goodput {p.goodput:.1%}, {p.tokens_per_day / 1e9:,.1f}B tokens/day, "
                         f"{format_watts(p.facility_watts)}" + ("" if p.fabric_aware else " (fabric-blind)")))
        return rows

    def __str__(self):
        return text_table("Scaling study", self._rows())

    def _repr_html_(self):
        return html_table("Scaling study", self._rows())

    def figure(self):
        """Step time, MFU, goodput, tokens per day and power by GPU count
        (:func:`collectives.training.plot_study.study`)."""
        from collectives.training.plot_study import study

        return study(self)


def scaling_study(model, gpus, *, build, global_batch, pue, max_tokens_per_step=MAX_TOKENS_PER_STEP,
                  executor=None, progress=True, **goodput_options):
    """The fastest plan of ``model`` at each size of ``gpus``, and what it yields and costs.

    Parameters
    ----------
    model : collectives.Transformer
    gpus : sequence of int
        Cluster sizes, increasing; the first sets the batch's share per GPU.
    build : callable
        ``build(n)`` returns the fabric of ``n`` GPUs: ``lambda n: fabric.preset(name, gpus=n)``,
        or ``lambda n: fabric.dgx_superpod(n // 8)``.
    global_batch : int
        Sequences per step at the first size.
    pue : float
    max_tokens_per_step : int
        The batch stops growing here (:data:`MAX_TOKENS_PER_STEP`).
    executor, progress
        As :func:`collectives.search`.
    **goodput_options
        Passed to :func:`collectives.goodput` (``rates=``, ``spares=``, ...).

    Returns
    -------
    ScalingStudy
    """
    sizes = list(gpus)
    if not sizes or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
        raise InvalidSpec(f"gpus={gpus!r:.80} must be one or more GPU counts >= 1")
    if sizes != sorted(set(sizes)):
        raise InvalidSpec(f"gpus={sizes} must be increasing")
    if not callable(build):
        raise InvalidSpec(f"build={build!r:.80} must be a callable giving the fabric of n GPUs")
    if not (isinstance(max_tokens_per_step, int) and max_tokens_per_step >= model.seq_len):
        raise InvalidSpec(f"max_tokens_per_step={max_tokens_per_step!r} must be an integer >= one sequence "
                          f"({model.seq_len} tokens)")
    cap = max(global_batch, max_tokens_per_step // model.seq_len // global_batch * global_batch)
    points = []
    for n in sizes:
        batch = min(global_batch * n // sizes[0] // global_batch * global_batch, cap)
        if progress:
            print(f"scaling_study: {n:,} GPUs, global batch {batch:,}", file=sys.stderr)
        G = _built(build, n)
        power = facility_power(G, pue=pue)
        network, switches = power.network_watts, power.switches
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FabricBlindWarning)
            try:
                best = search(model, G, global_batch=batch, executor=executor, progress=progress, top=1)[0]
            except Infeasible as error:
                points.append(ScalingPoint(n, batch, batch * model.seq_len, {}, math.inf, 0.0, 0.0, 0.0,
                                           power.facility_watts, network, switches, False, str(error)))
                continue
            plan = Parallelism(**best.plan, global_batch=batch)
            good = goodput(model, plan, G, step=best, **goodput_options)
        blind = any(issubclass(w.category, FabricBlindWarning) for w in caught)
        points.append(ScalingPoint(
            gpus=n, global_batch=batch, tokens_per_step=batch * model.seq_len, plan=dict(best.plan),
            step_time=best.time, mfu=best.mfu, goodput=good.goodput, tokens_per_day=good.tokens_per_day,
            facility_watts=power.facility_watts, network_watts=network, switches=switches,
            fabric_aware=best.fabric_aware and not blind))
    return ScalingStudy(model=model.name or "", pue=float(pue), max_tokens_per_step=max_tokens_per_step,
                        points=tuple(points))


def _built(build, n):
    """The fabric ``build`` gives for ``n`` GPUs, checked to have them."""
    G = build(n)
    if gpu_count(G) != n:
        raise InvalidSpec(f"build({n}) gave a fabric of {gpu_count(G)} GPUs, not {n}")
    return G
