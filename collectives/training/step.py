"""Training step time of a transformer with a parallelism plan on a fabric.

Per micro-batch and pipeline stage, each layer's time comes from
:mod:`collectives.training.layer` (compute, and tensor-, context- and expert-parallel
communication on the plan's rank groups, :mod:`collectives.training.plan`). The pipeline
is simulated op by op (:mod:`collectives.training.pipeline`) with the activation transfers between
stages; data-parallel gradient reduction runs for all DP groups at once on the shared
fabric, overlapped with the last backward pass where the plan says so; the optimizer
step is memory-bound.

Examples
--------
>>> import fabric, collectives
>>> model = collectives.MODELS["llama3-8b"]
>>> plan = collectives.Parallelism(tp=8, dp=2, global_batch=32)
>>> est = collectives.estimate_step(model, plan, fabric.dgx_superpod(2), level="analytic")
>>> 0.2 < est.mfu < 0.7, est.fits
(True, True)
"""

import warnings
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from fabric.checks import require_seed
from fabric.compiled import compile_fabric
from fabric.graph_arrays import GraphArrays
from fabric.materials import bill_of_materials
from fabric.schema import gpu_count, graph_attr, ranks_array
from fabric.tables import format_time, html_table, text_table

from collectives.engine import UniformFabric
from collectives.errors import InvalidSpec, MemoryWarning, collectives_errors
from collectives.groups import checked_ranks
from collectives.params import checked_params
from collectives.spread import over_seeds
from collectives.training.communication import ACTIVATION_BYTES, Communication
from collectives.training.compute import BACKWARD_GEMM, checked_compute, cross_entropy_time, gemm_time, peak_flops
from collectives.training.layer import remembered_layer_times
from collectives.training.memory import gradient_bytes, parameters_per_gpu, rank_contents, usable_memory, worst_memory
from collectives.training.model import padded
from collectives.training.pipeline import simulate_many
from collectives.training.plan import MEGATRON_ORDER, default_grad_reduce_in_fp32, dp_groups, dp_ranks, pp_pairs

PARAMETER_BYTES = 2  # the distributed optimizer all-gathers BF16 parameters
FP8_PARAMETER_BYTES = 1  # ... or FP8 ones with fp8_params (the GEMM weights, nearly all of them)
# Adam on the local shard: read fp32 main weight, grad, two moments (16 B), write them
# back (12 B) and the BF16 weight (2 B) (Megatron-LM distributed optimizer).
OPTIMIZER_BYTES_PER_PARAMETER = 30


@dataclass(frozen=True)
class StepEstimate:
    """What one optimizer step costs.

    Attributes
    ----------
    time : float
        Seconds per optimizer step.
    mfu : float
        Model FLOPs utilisation (DESIGN.md formula, no recompute) against the dense peak
        of the plan's precision.
    tflops_per_gpu : float
    tokens_per_second : float
    breakdown : dict
        Seconds by cause; they add up to ``time``.
    memory_per_gpu : float
        Bytes on the most loaded GPU.
    memory_breakdown : dict
    fits : bool
        Whether that fits in the GPU's usable HBM
        (:func:`collectives.training.memory.usable_memory`); a plan that does not is still
        estimated, with a :class:`collectives.MemoryWarning`.
    energy : float
        Joules per step: GPUs at board power plus the fabric's bill-of-materials watts.
    model, plan, level, seed
        What it was computed for: the model's name, the plan, the level and the ECMP hash
        seed.
    fabric_aware : bool
        Whether the communication was priced on the fabric as it is (the flow level, or the
        analytic level with its patterns probed); False where it read one GPU's links only
        (a fabric summary, or a fabric too large to probe: :class:`collectives.errors.FabricBlindWarning`),
        and where some pattern priced on the same prepared cluster was too large to probe
        (its closed form was used).
    """

    time: float
    mfu: float
    tflops_per_gpu: float
    tokens_per_second: float
    breakdown: dict
    memory_per_gpu: float
    memory_breakdown: dict
    fits: bool
    energy: float
    model: str = ""
    plan: dict = field(default_factory=dict)
    level: str = "flow"
    seed: int = 0
    fabric_aware: bool = True

    def to_dict(self):
        return asdict(self)

    def _rows(self):
        rows = [
            ("model", self.model),
            ("plan", ", ".join(f"{k}={v}" for k, v in self.plan.items())),
            ("step time", format_time(self.time)),
            ("MFU", f"{self.mfu:.1%}"),
            ("TFLOP/s per GPU", f"{self.tflops_per_gpu:.1f}"),
            ("tokens per second", f"{self.tokens_per_second:,.0f}"),
            ("memory per GPU", f"{self.memory_per_gpu / 2**30:.1f} GiB ({'fits' if self.fits else 'does NOT fit'})"),
            ("energy per step", f"{self.energy / 3.6e6:.2f} kWh"),
        ]
        rows += [(f"  {name}", f"{format_time(t)} ({t / self.time:.1%})") for name, t in self.breakdown.items()]
        return rows

    def __str__(self):
        return text_table(f"Step estimate ({self._what()})", self._rows())

    def _repr_html_(self):
        return html_table(f"Step estimate ({self._what()})", self._rows())

    def _what(self):
        return f"{self.level} level" + ("" if self.fabric_aware else ", fabric-blind: one GPU's links")


@lru_cache(maxsize=64)
def _flops_per_token(model):
    """:meth:`Transformer.flops_per_token`, remembered (the same for every plan of a search)."""
    return model.flops_per_token()


# ---------------------------------------------------------------------------- the estimate


class Cluster:
    """A fabric prepared for many estimates: GPU spec, GPU count, network power, and the
    collective and layer times already priced (keyed by collective, groups and size; by
    what a layer's time depends on).

    ``G`` may be the graph or, at the analytic level, its
    :class:`collectives.engine.UniformFabric` summary (what a search ships to workers).
    ``ranks``: the job's GPUs on the graph (default all of them); the plan's rank ``i`` in
    Megatron order runs on fabric rank ``ranks[i]``, and the job is charged its GPUs'
    share of the network's power. ``seed``: the ECMP hash seed of the flow level and of
    the analytic level's probes (:mod:`collectives.patterns`). ``background``: other jobs'
    flows ``(src, dst)`` in fabric ranks, present whenever this job's communication is
    solved on the graph (:func:`collectives.estimate_jobs`). ``compiled``: the graph's
    :func:`fabric.compiled.compile_fabric`, shared by clusters on the same graph (with the
    routing tables it keeps) instead of compiled again.
    """

    def __init__(self, G, level="flow", params=None, *, ranks=None, seed=0, background=None, compiled=None):
        if level not in ("flow", "analytic"):
            raise InvalidSpec(f"level={level!r} must be one of 'flow', 'analytic'")
        require_seed(seed)
        self.G, self.level, self.seed = G, level, seed
        params = checked_params(params)
        if isinstance(G, UniformFabric):
            if ranks is not None:
                raise InvalidSpec("ranks= needs the fabric graph, not its uniform summary")
            self.gpu, self.fabric_gpus, self._network_watts = G.gpu, G.n_gpus, G.network_watts
        else:
            self.gpu = graph_attr(G, "gpu")
            self.fabric_gpus = gpu_count(G)
            self._network_watts = None
        self.ranks = None if ranks is None else job_ranks(ranks, self.fabric_gpus)
        self.n_gpus = self.fabric_gpus if self.ranks is None else len(self.ranks)
        if background is not None:
            if isinstance(G, UniformFabric):
                raise InvalidSpec("background= needs the fabric graph, not its uniform summary")
            with collectives_errors():
                background = _checked_background(background, self.fabric_gpus)
        if not isinstance(G, UniformFabric) and compiled is None:
            arrays = GraphArrays(G)  # read once for the compile and the bill of materials
            compiled = compile_fabric(G, arrays=arrays)
            self._network_watts = bill_of_materials(G, arrays=arrays).network_watts
        self.comm = Communication(G, level, params, self.ranks, seed, background, compiled)
        self.layer_times = {}

    @property
    def network_watts(self):
        """The fabric's network power, the job's share of it when it runs on part of the GPUs."""
        if self._network_watts is None:
            self._network_watts = bill_of_materials(self.G).network_watts
        return self._network_watts * self.n_gpus / self.fabric_gpus


def _checked_background(background, n_gpus):
    """``(src, dst)`` as two equal-length int64 arrays of ranks below ``n_gpus``, checked as
    :func:`fabric.flow_rates` checks its flows."""
    try:
        src, dst = background
    except (TypeError, ValueError):
        raise InvalidSpec(f"background={background!r:.80} must be (src, dst) arrays of GPU ranks") from None
    src, dst = ranks_array("background src", src, n_gpus), ranks_array("background dst", dst, n_gpus)
    if src.shape != dst.shape:
        raise InvalidSpec(f"background must be two integer arrays of one length, got shapes {src.shape} and {dst.shape}")
    return src, dst


def job_ranks(ranks, n_gpus):
    """The GPUs of a job: distinct fabric ranks in ``0..n_gpus-1``, as a read-only array.

    Examples
    --------
    >>> job_ranks(range(0, 16, 2), 16).tolist()
    [0, 2, 4, 6, 8, 10, 12, 14]
    >>> job_ranks([1, 1], 16)
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: ranks contains rank 1 twice
    """
    arr = np.asarray(list(ranks) if not isinstance(ranks, np.ndarray) else ranks)
    if not checked_ranks(arr, lambda: n_gpus, lambda r: r < n_gpus).size:  # sorts a copy; the job keeps its order
        raise InvalidSpec("ranks is empty; give the job's GPU ranks")
    arr = arr.astype(np.int64)
    arr.flags.writeable = False
    return arr


def estimate_step(model, plan, G, *, level="flow", params=None, compute=None, cluster=None, ranks=None, seed=0):
    """Estimate one optimizer step of ``model`` trained with ``plan`` on fabric ``G``.

    Parameters
    ----------
    model : collectives.Transformer
    plan : collectives.Parallelism
        ``tp * pp * dp * cp`` must equal the job's GPUs (``ranks``, default every GPU of ``G``).
    G : networkx.DiGraph
        A fabric; its GPU spec sets compute speed and memory.
    level : {"flow", "analytic"}
        Communication at the flow level (data-parallel and pipeline traffic of all
        groups share the fabric) or with closed forms, whose network share each pattern
        takes from one flow-level probe of it on ``G`` (:mod:`collectives.patterns`).
    params : collectives.CommParams or None
    compute : collectives.training.compute.ComputeParams or None
    cluster : Cluster or None
        ``Cluster(G, level, params, ranks=ranks)`` prepared once to reuse across many
        estimates (then ``ranks`` is the cluster's).
    ranks : sequence of int or None
        The job's GPUs on ``G`` (default all of them): plan rank ``i`` (Megatron order)
        runs on fabric rank ``ranks[i]``, so a job can use part of a fabric, e.g. 64 of
        each NVL72 rack's 72 GPUs.
    seed : int
        ECMP hash seed (:func:`collectives.step_spread` gives the distribution over seeds).

    Returns
    -------
    StepEstimate

    Examples
    --------
    >>> import fabric, collectives
    >>> m = collectives.MODELS["llama3-8b"]
    >>> est = collectives.estimate_step(m, collectives.Parallelism(tp=8, dp=2, global_batch=32),
    ...                                 fabric.dgx_superpod(2), level="analytic")
    >>> round(sum(est.breakdown.values()) / est.time, 9)     # the parts add up
    1.0
    >>> half = collectives.estimate_step(m, collectives.Parallelism(tp=8, dp=2, global_batch=32),
    ...                                  fabric.dgx_superpod(4), level="analytic", ranks=range(16))
    >>> half.time == est.time                               # 16 of 32 GPUs: the same job
    True
    """
    if cluster is not None and (ranks is not None or seed):
        raise InvalidSpec("give ranks= and seed= to the Cluster, not with cluster=")
    cluster = cluster or Cluster(G, level, params, ranks=ranks, seed=seed)
    plan.check_against(model, gpus=cluster.n_gpus, of=None if cluster.ranks is None else "ranks=")
    est = estimate_many(model, [plan], cluster, compute)[0]
    if not est.fits:
        warnings.warn(MemoryWarning(
            f"{est.model or 'the model'} with tp={plan.tp} pp={plan.pp} dp={plan.dp} cp={plan.cp} needs "
            f"{est.memory_per_gpu / 2**30:.1f} GiB per GPU; {cluster.gpu.name} has "
            f"{usable_memory(cluster.gpu) / 2**30:.1f} GiB usable: the estimate is of a plan that does not fit"),
            stacklevel=2)
    return est


@dataclass(frozen=True)
class PipelineStages:
    """What the pipeline schedule needs (``schedule_args``: forward and backward seconds
    per virtual stage, micro-batches, virtual stages, transfer seconds) and the exposed
    communication per virtual stage."""

    schedule_args: tuple
    tp_exposed: list
    cp_exposed: list
    ep_exposed: list


def estimate_many(model, plans, cluster, compute=None, memories=None):
    """:func:`estimate_step` of checked ``plans`` on one prepared ``cluster``, with their
    pipeline schedules simulated together (:func:`collectives.training.pipeline.simulate_many`);
    ``memories``: their :func:`collectives.memory_per_gpu`, if already known."""
    compute = checked_compute(compute)
    # Plans that differ only in ZeRO stage run the same pipeline (ZeRO changes memory and
    # data-parallel traffic only): a search meets each pipeline four times.
    keys = [tuple(value for name, value in vars(plan).items() if name != "zero") for plan in plans]
    unique = {}
    for key, plan in zip(keys, plans):
        if key not in unique:
            unique[key] = (plan, pipeline_stages(model, plan, cluster, compute))
    schedules = simulate_many([stages.schedule_args for _, stages in unique.values()])
    timed = {key: _PipelineTimes.of(plan, stages, schedule)
             for (key, (plan, stages)), schedule in zip(unique.items(), schedules)}
    memories = memories or [None] * len(plans)
    return [finish_estimate(model, plan, cluster, timed[key], memory)
            for key, plan, memory in zip(keys, plans, memories)]


def pipeline_stages(model, plan, cluster, compute):
    """Per virtual stage, forward and backward seconds of one micro-batch, and the transfer
    between stages, of a checked plan."""
    gpu, comm = cluster.gpu, cluster.comm
    dense = remembered_layer_times(model, plan, cluster, compute, moe=False)
    moe = remembered_layer_times(model, plan, cluster, compute, moe=True) if model.experts > 1 else dense
    stages = plan.layers_per_stage(model)  # per virtual stage, pipeline order
    b, s, h = plan.micro_batch, model.seq_len, model.hidden
    T = b * s // plan.cp
    vocab = padded(model.vocab, plan.tp)
    logits = gemm_time(T, vocab // plan.tp, h, gpu, plan.precision, compute)
    loss_forward = cross_entropy_time(T, vocab // plan.tp, gpu, compute)
    loss_backward = cross_entropy_time(T, vocab // plan.tp, gpu, compute, backward=True)

    # per virtual stage, its dense and MoE layer counts, each times that layer's seconds
    ends = np.cumsum(stages)
    n_moe = np.array([model.moe_layers_in(end - count, end) for count, end in zip(stages, ends.tolist())]) \
        if model.is_moe else 0
    counts = np.stack([np.asarray(stages) - n_moe, np.broadcast_to(n_moe, len(stages))], axis=1)
    forward, backward, tp_exposed, cp_exposed, ep_exposed = (
        (counts @ [getattr(dense, name), getattr(moe, name)]).tolist()
        for name in ("forward", "backward", "tp", "cp", "ep"))
    forward[-1] += logits + loss_forward
    backward[-1] += BACKWARD_GEMM * logits + loss_backward

    v = plan.virtual_stages
    micro = plan.micro_batches
    transfer = 0.0
    if plan.pp > 1:
        act = T * h * ACTIVATION_BYTES / (plan.tp if plan.sequence_parallel else 1)
        # The closed forms price one representative pair; only the flow level needs them all.
        pairs = pp_pairs(plan) if cluster.comm.sees_groups else np.array([[0, plan.dp * plan.cp * plan.tp]])
        transfer = comm.send(pairs, act)
    return PipelineStages((tuple(forward), tuple(backward), micro, v, transfer), tp_exposed, cp_exposed, ep_exposed)


@dataclass(frozen=True)
class _PipelineTimes:
    """Seconds of a simulated pipeline, on its busiest device: compute and exposed TP, CP
    and EP communication (``busy``), waiting for transfers on the critical path
    (``pp_exposed``) and the rest of the idle time (``bubble``); and the longest virtual
    stage's backward and forward, which gradient reduction and parameter gathering can
    hide behind."""

    busy: float
    bubble: float
    pp_exposed: float
    tp: float
    cp: float
    ep: float
    last_backward: float
    first_forward: float

    @classmethod
    def of(cls, plan, stages, schedule):
        forward, backward = stages.schedule_args[:2]
        v, micro = plan.virtual_stages, plan.micro_batches
        device = int(np.argmax(schedule.busy))
        busy = float(schedule.busy[device])
        # transfers the critical path waits for; the rest of the idle time is the bubble
        idle = max(0.0, schedule.makespan - busy)
        pp_exposed = min(schedule.exposed_transfer, idle)

        def on_device(values):
            return float(sum(values[c * plan.pp + device] for c in range(v)) * micro)

        return cls(
            busy=busy, bubble=idle - pp_exposed, pp_exposed=pp_exposed, tp=on_device(stages.tp_exposed),
            cp=on_device(stages.cp_exposed), ep=on_device(stages.ep_exposed), last_backward=max(backward) / v,
            first_forward=max(forward) / v,
        )


def finish_estimate(model, plan, cluster, pipeline, memory=None):
    """The estimate of a checked plan once its pipeline is simulated (``pipeline``: its
    :class:`_PipelineTimes`; ``memory``: its :func:`collectives.memory_per_gpu`, computed
    when None)."""
    gpu, n_gpus, comm = cluster.gpu, cluster.n_gpus, cluster.comm
    peak = peak_flops(gpu, plan.precision)
    s = model.seq_len

    # Data parallel: reduce-scatter gradients and all-gather parameters (distributed
    # optimizer, zero >= 1) or all-reduce gradients (zero 0), all groups at once; across
    # sites, inside each site first (Communication.data_parallel).
    contents = rank_contents(model, plan)  # the plan was checked by estimate_step
    params_here = parameters_per_gpu(contents)
    dp_time = 0.0
    if plan.dp > 1:
        # a fabric summary prices one representative group; a graph needs them all
        groups = dp_groups(plan) if cluster.comm.sees_groups else dp_ranks(plan)
        grad_bytes = gradient_bytes(plan.grad_reduce_in_fp32)
        if plan.zero == 0:
            grads = comm.data_parallel("all_reduce", groups, params_here * grad_bytes)
            gather = 0.0
        else:
            grads = comm.data_parallel("reduce_scatter", groups, params_here * grad_bytes)
            gather_bytes = FP8_PARAMETER_BYTES if plan.fp8_params else PARAMETER_BYTES
            gather = comm.data_parallel("all_gather", groups, params_here * gather_bytes)
            if plan.zero == 3 and plan.pp == 1:
                gather *= 2  # parameters gathered again for the backward pass (with PP they stay gathered)
        if plan.overlap_grad_reduce:
            grads = max(0.0, grads - pipeline.last_backward)
        if plan.overlap_param_gather:
            gather = max(0.0, gather - pipeline.first_forward)
        dp_time = grads + gather
    shard = params_here / (plan.dp * plan.cp if plan.zero >= 1 else 1)  # Megatron shards over dp x cp
    optimizer = OPTIMIZER_BYTES_PER_PARAMETER * shard / gpu.hbm_bandwidth

    breakdown = {
        "compute": pipeline.busy - pipeline.tp - pipeline.cp - pipeline.ep,
        "tp_communication": pipeline.tp,
        "cp_communication": pipeline.cp,
        "ep_communication": pipeline.ep,
        "pipeline_bubble": pipeline.bubble,
        "pp_communication": pipeline.pp_exposed,
        "dp_communication": dp_time,
        "optimizer": optimizer,
    }
    time = sum(breakdown.values())
    tokens = plan.global_batch * s
    model_flops = _flops_per_token(model) * tokens
    if memory is None:
        memory = worst_memory(model, plan, contents)
    return StepEstimate(
        time=time,
        mfu=model_flops / (time * n_gpus * peak),
        tflops_per_gpu=model_flops / (time * n_gpus) / 1e12,
        tokens_per_second=tokens / time,
        breakdown=breakdown,
        memory_per_gpu=memory["total"],
        memory_breakdown=memory,
        fits=memory["total"] <= usable_memory(gpu),
        energy=(gpu.power * n_gpus + cluster.network_watts) * time,
        model=getattr(model, "name", None) or "",
        plan=_shown_plan(model, plan),
        level=cluster.level,
        seed=cluster.seed,
        fabric_aware=cluster.comm.fabric_aware,
    )


# The plan fields an estimate names: etp only for an MoE model, rank_order and
# grad_reduce_in_fp32 only where they are not the default.
SHOWN_PLAN_FIELDS = ("tp", "pp", "dp", "cp", "ep", "etp", "micro_batch", "virtual_stages", "recompute", "zero",
                     "precision", "grad_reduce_in_fp32", "rank_order")


def _shown_plan(model, plan):
    """The fields of :data:`SHOWN_PLAN_FIELDS` an estimate of ``plan`` on ``model`` names."""
    hidden = set()
    if not model.is_moe:
        hidden.add("etp")
    if plan.rank_order == MEGATRON_ORDER:
        hidden.add("rank_order")
    if plan.grad_reduce_in_fp32 == default_grad_reduce_in_fp32(plan.precision):
        hidden.add("grad_reduce_in_fp32")
    return {k: getattr(plan, k) for k in SHOWN_PLAN_FIELDS if k not in hidden}


def step_spread(model, plan, G, *, seeds=8, level="flow", **kwargs):
    """:class:`collectives.spread.Spread` of :func:`estimate_step`'s step time over ECMP hash
    seeds ``0..seeds-1`` (at either level: the analytic level's probes hash as the flow
    level does).

    Examples
    --------
    >>> import fabric, collectives
    >>> G = fabric.fat_tree(8, routing="ecmp", rail_optimized=False)
    >>> plan = collectives.Parallelism(tp=8, dp=8, global_batch=64)
    >>> s = step_spread(collectives.MODELS["llama3-8b"], plan, G, seeds=3, level="analytic")
    >>> s.min <= s.mean <= s.max
    True
    """
    return over_seeds(lambda seed: estimate_step(model, plan, G, level=level, seed=seed, **kwargs).time, seeds,
                      f"{getattr(model, 'name', '') or 'model'} step, {level} level, on "
                      f"{getattr(G, 'graph', {}).get('name', 'the fabric')}")
