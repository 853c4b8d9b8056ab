"""Goodput: what failures cost a training job, from field failure rates and the fabric.

Interruptions: every failure of a part that stops the job (:func:`fabric.blast_radius.failure_domains`:
a GPU, its server, its NIC, the only leaf switch or cable of a NIC; software; planned
maintenance) at the field rates of :mod:`collectives.training.failures`. Each one loses the
work since the last checkpoint (half an interval on average) and the restart: relaunch,
reading the checkpoint back and, for hardware, waiting for a repair when no spare server
is free. Checkpoints are written every interval, Young's optimum ``sqrt(2 C M)`` unless
given (Young 1974; Daly 2006), at ``C`` seconds each. Parts that only slow the job (a spine,
a cable between switches, one port of a dual-homed NIC) are priced by estimating the step
with one of them failed, times how many are down at a time.

Examples
--------
>>> import fabric, collectives
>>> g = collectives.goodput(collectives.MODELS["llama3-8b"], collectives.Parallelism(tp=8, dp=4, global_batch=64),
...                         fabric.dgx_superpod(4))
>>> 0.9 < g.goodput < 1, g.interruptions_per_day < 1
(True, True)
"""

import math
from dataclasses import asdict, dataclass

from fabric.blast_radius import failure_domains
from fabric.compiled import compile_fabric
from fabric.checks import require_non_negative, require_positive
from fabric.tables import format_time, html_table, text_table

from collectives.errors import InvalidSpec, collectives_errors
from collectives.training.failures import LLAMA3_RATES, FailureRates
from collectives.training.step import StepEstimate, estimate_step

# bf16 weights (2 B) and the distributed optimizer's fp32 main weight and Adam moments (12 B):
# what a Megatron-LM checkpoint holds per parameter.
CHECKPOINT_BYTES_PER_PARAMETER = 14
# Meta's Tectonic file system for Llama 3: "a sustainable throughput of 2 TB/s" (Llama 3
# paper, section 3.3.1) [mem].
CHECKPOINT_STORAGE_BANDWIDTH = 2e12
# [estimate: detecting the failure, rescheduling, starting the processes and initialising
# NCCL; the Llama 3 paper does not publish it]
RESTART_SECONDS = 600.0
# [estimate: a server out for diagnosis and repair, when no spare takes its place]
REPAIR_HOURS = 24.0


@dataclass(frozen=True, kw_only=True)
class Goodput:
    """A job's step time with failures, and where the time goes.

    Attributes
    ----------
    step_time, effective_step_time : float
        Seconds per step without and with failures.
    goodput : float
        Their ratio: the share of wall time that trains.
    interruptions_per_day : float
    interruptions : dict
        Per day, by cause (``gpu``, ``software``, ``host``, ``nic``, ``network``, ``planned``).
    mean_time_between_interruptions : float
        Seconds.
    checkpoint_seconds, checkpoint_interval, restart_seconds : float
        Writing one checkpoint; the interval between them; one restart with its wait.
    lost : dict
        Shares of wall time lost to checkpointing, lost work, restarts, and running slowed
        by failed parts that do not stop the job.
    tokens_per_day : float
    gpus : int
    domains : dict
        :class:`fabric.blast_radius.FailureDomains` of the job.
    """

    step_time: float
    effective_step_time: float
    goodput: float
    interruptions_per_day: float
    interruptions: dict
    mean_time_between_interruptions: float
    checkpoint_seconds: float
    checkpoint_interval: float
    restart_seconds: float
    lost: dict
    tokens_per_day: float
    gpus: int
    domains: dict

    def to_dict(self):
        return asdict(self)

    def _rows(self):
        rows = [("GPUs", f"{self.gpus:,}"), ("goodput", f"{self.goodput:.1%}"),
                ("step time", f"{format_time(self.step_time)} -> {format_time(self.effective_step_time)} with failures"),
                ("interruptions per day", f"{self.interruptions_per_day:.2f} ("
                 + ", ".join(f"{k} {v:.2f}" for k, v in self.interruptions.items() if v) + ")"),
                ("mean time between them", f"{self.mean_time_between_interruptions / 3600:,.2f} h"),
                ("checkpoint", f"{format_time(self.checkpoint_seconds)} every {format_time(self.checkpoint_interval)}"),
                ("restart", format_time(self.restart_seconds))]
        rows += [(f"lost to {k}", f"{v:.2%}") for k, v in self.lost.items()]
        rows.append(("tokens per day", f"{self.tokens_per_day:,.4g}"))
        return rows

    def __str__(self):
        return text_table("Goodput", self._rows())

    def _repr_html_(self):
        return html_table("Goodput", self._rows())


def _poisson_at_least(k, mean):
    """P(N >= k) for N ~ Poisson(mean)."""
    if k <= 0:
        return 1.0
    term = total = math.exp(-mean)
    for i in range(1, k):
        term *= mean / i
        total += term
    return max(0.0, 1.0 - total)


def _first_upper_switch(G, compiled, rank):
    """A switch above the leaf of ``rank``'s NIC (the failure priced as a slowdown), or None."""
    leaf = compiled.nodes[compiled.leaf[rank]] if compiled.leaf[rank] >= 0 else None
    if leaf is None:
        return None
    return next((v for v in G.successors(leaf) if G.nodes[v].get("kind") == "switch"), None)


def goodput(model, plan, G, *, ranks=None, level="analytic", rates=LLAMA3_RATES,
            storage_bandwidth=CHECKPOINT_STORAGE_BANDWIDTH, checkpoint_interval=None, restart_seconds=RESTART_SECONDS,
            repair_hours=REPAIR_HOURS, spares=None, step=None, seed=0):
    """Expected step time, goodput and tokens per day of a job under field failure rates.

    Parameters
    ----------
    model, plan, G, ranks, level, seed
        As :func:`collectives.estimate_step`.
    rates : FailureRates
        Failures per part-hour (:data:`collectives.training.failures.LLAMA3_RATES`).
    storage_bandwidth : float
        Bytes/s the checkpoint is written and read at (:data:`CHECKPOINT_STORAGE_BANDWIDTH`).
    checkpoint_interval : float or None
        Seconds between checkpoints; None takes Young's optimum.
    restart_seconds : float
        Relaunching after an interruption, before reading the checkpoint (:data:`RESTART_SECONDS`).
    repair_hours : float
        How long a failed server is out (:data:`REPAIR_HOURS`): a hardware interruption waits
        for it when every spare is in use, and slowing parts stay failed that long.
    spares : int or None
        Spare servers held for the job; None: one is always free (the restart never waits).
    step : StepEstimate or None
        The job's failure-free step, if estimated already.

    Returns
    -------
    Goodput
    """
    if not isinstance(rates, FailureRates):
        raise InvalidSpec(f"rates={rates!r:.80} must be a collectives.training.failures.FailureRates")
    with collectives_errors():
        require_positive("storage_bandwidth", storage_bandwidth)
        require_non_negative("restart_seconds", restart_seconds)
        require_non_negative("repair_hours", repair_hours)
        if checkpoint_interval is not None:
            require_positive("checkpoint_interval", checkpoint_interval)
    if spares is not None and (not isinstance(spares, int) or isinstance(spares, bool) or spares < 0):
        raise InvalidSpec(f"spares={spares!r} must be a whole number of servers >= 0, or None")
    if step is None:
        step = estimate_step(model, plan, G, level=level, ranks=ranks, seed=seed)
    elif not isinstance(step, StepEstimate):
        raise InvalidSpec(f"step={step!r:.80} must be a StepEstimate of this job, or None")
    compiled = compile_fabric(G)
    parts = failure_domains(G, ranks, compiled=compiled)

    per_hour = {
        "gpu": rates.per_gpu_hour.get("gpu", 0.0) * parts.gpus,
        "software": rates.per_gpu_hour.get("software", 0.0) * parts.gpus,
        "host": rates.per_host_hour * parts.hosts,
        "nic": rates.per_nic_hour * parts.nics,
        "network": rates.per_attachment_hour * (parts.stopping_leaves + parts.stopping_cables),
        "planned": rates.planned_per_day / 24,
    }
    rate = sum(per_hour.values()) / 3600  # interruptions per second
    mtbi = math.inf if rate == 0 else 1 / rate
    checkpoint = model.parameters() * CHECKPOINT_BYTES_PER_PARAMETER / storage_bandwidth
    interval = checkpoint_interval or (math.inf if rate == 0 else math.sqrt(2 * checkpoint * mtbi))
    hardware = sum(per_hour[k] for k in ("gpu", "host", "nic", "network"))
    wait = 0.0 if spares is None else _poisson_at_least(spares, hardware * repair_hours)
    restart = restart_seconds + checkpoint + (hardware / (rate * 3600) * wait * repair_hours * 3600 if rate else 0.0)

    checkpointing = checkpoint / (interval + checkpoint) if math.isfinite(interval) else 0.0
    lost_work = rate * interval / 2 if math.isfinite(interval) else 0.0
    restarts = rate * restart
    slowed = _slowdown(model, plan, G, compiled, parts, rates, repair_hours, ranks, level, seed, step)
    share = (1 - checkpointing) * max(0.0, 1 - lost_work - restarts) / (1 + slowed)
    effective = math.inf if share == 0 else step.time / share
    tokens = plan.global_batch * model.seq_len
    return Goodput(
        step_time=step.time, effective_step_time=effective, goodput=share,
        interruptions_per_day=sum(per_hour.values()) * 24, interruptions={k: v * 24 for k, v in per_hour.items()},
        mean_time_between_interruptions=mtbi, checkpoint_seconds=checkpoint, checkpoint_interval=interval,
        restart_seconds=restart,
        lost={"checkpointing": checkpointing, "lost work": lost_work, "restarts": restarts,
              "slowed by failed parts": 1 - 1 / (1 + slowed)},
        tokens_per_day=0.0 if share == 0 else tokens / effective * 86400, gpus=parts.gpus, domains=parts.to_dict(),
    )


def _slowdown(model, plan, G, compiled, parts, rates, repair_hours, ranks, level, seed, step):
    """Expected fractional slowdown from the parts that fail without stopping the job: the
    parts down at a time (their failures per hour times the hours each stays down) times the
    slowdown of one of them, estimated with the switch above the first rank's leaf removed."""
    down = rates.per_attachment_hour * repair_hours * (parts.slowing_switches + parts.slowing_switch_cables
                                                       + parts.slowing_leaves + parts.slowing_cables)
    if down == 0:
        return 0.0
    first = 0 if ranks is None else int(list(ranks)[0])
    switch = _first_upper_switch(G, compiled, first)
    if switch is None:
        return 0.0
    H = G.copy()
    H.remove_node(switch)
    failed = estimate_step(model, plan, H, level=level, ranks=ranks, seed=seed)
    return down * max(0.0, failed.time / step.time - 1)
