"""Search over parallelism plans: enumerate, drop what does not fit, estimate, rank.

Plans are estimated in chunks on any :class:`concurrent.futures.Executor` (a process
pool by default; ``dask.distributed.Client(...).get_executor()`` works the same way).
At the analytic level workers receive a small :class:`collectives.engine.UniformFabric`
summary of the fabric, not the graph.

Examples
--------
>>> import fabric, collectives
>>> from concurrent.futures import ThreadPoolExecutor
>>> G = fabric.dgx_superpod(4)
>>> with ThreadPoolExecutor(1) as pool:
...     best = collectives.search(collectives.MODELS["llama3-8b"], G, global_batch=64,
...                               executor=pool, progress=False)
>>> best[0].time <= best[-1].time, best[0].fits
(True, True)
"""

import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from functools import lru_cache
from itertools import groupby, product

import numpy as np

from fabric.checks import require_choice, require_int, require_seed
from fabric.compiled import compile_fabric
from fabric.errors import TooLarge
from fabric.materials import bill_of_materials
from fabric.schema import gpu_count, graph_attr

from collectives.engine import check_uplinks, site_of_ranks, uniform_fabric
from collectives.errors import FabricBlindWarning, Infeasible, InvalidSpec, collectives_errors
from collectives.params import checked_params
from collectives.patterns import BLIND
from collectives.training.communication import check_routing_memory
from collectives.training.compute import checked_compute
from collectives.training.activations import PRECISIONS
from collectives.training.memory import rank_contents, usable_memory, worst_memory
from collectives.training.pipeline import simulation_shape
from collectives.training.plan import (DP_OUTER_ORDER, MEGATRON_ORDER, RANK_ORDERS, Parallelism, cp_groups,
                                        ep_groups, layout)
from collectives.training.step import Cluster, estimate_many, job_ranks

MICRO_BATCHES = (1, 2, 4, 8)
RECOMPUTE = ("none", "selective", "full")  # Megatron-LM's choices (torchtitan's "op" is not searched)
VIRTUAL_STAGES = (1, 2, 4)
ZERO = (0, 1, 2, 3)
CHUNK = 128


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def candidate_plans(model, n_gpus, global_batch, *, gpus_per_domain, precision="bf16",
                    rank_orders=(MEGATRON_ORDER,), sites=None):
    """Every plan Megatron-LM could run: TP inside an NVLink domain, the rest factored
    over PP, CP and DP, with micro-batch sizes, interleaving, recompute and ZeRO stage;
    deepest pipelines first. MoE models also get their expert layouts, folded as
    Megatron-Core does: expert TP of ``tp`` (its default) or 1, and every expert-parallel
    size that divides the experts and ``tp * cp * dp / etp``, so ``ep`` may exceed ``dp``.
    Each in every one of ``rank_orders``; with ``sites`` (the site of each job rank), only
    the plans whose TP, CP, EP and PP groups stay inside a site.

    Examples
    --------
    >>> from collectives import MODELS
    >>> plans = list(candidate_plans(MODELS["llama3-8b"], 16, 32, gpus_per_domain=8))
    >>> all(p.world_size == 16 for p in plans), len(plans) > 100
    (True, True)
    """
    inside = {}
    for pp in reversed(_divisors(n_gpus)):
        for tp in _divisors(min(n_gpus // pp, gpus_per_domain)):
            if (n_gpus // pp) % tp:
                continue
            for cp in _divisors(n_gpus // (tp * pp)):
                dp = n_gpus // (tp * pp * cp)
                for (ep, etp), v, order in product(_expert_layouts(model, tp, cp, dp), VIRTUAL_STAGES, rank_orders):
                    if v > 1 and pp == 1:
                        continue
                    fits = None  # the plan's problems depend on tp, pp, cp, ep and v, not on what follows
                    for mb, recompute, zero in product(MICRO_BATCHES, RECOMPUTE, ZERO):
                        if global_batch % (dp * mb) or (v > 1 and global_batch // (dp * mb) % pp):
                            continue
                        try:
                            plan = Parallelism(tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, etp=etp, micro_batch=mb,
                                               global_batch=global_batch, virtual_stages=v, recompute=recompute,
                                               zero=zero, precision=precision, rank_order=order)
                        except InvalidSpec:
                            continue
                        if fits is None:
                            fits = not plan.problems(model)  # tp*pp*dp*cp is n_gpus by construction
                            if fits and sites is not None:
                                layout = (tp, cp, pp, dp, ep, etp, order)
                                if layout not in inside:
                                    inside[layout] = groups_inside_sites(plan, sites)
                                fits = inside[layout]
                        if not fits:
                            break
                        yield plan


def groups_inside_sites(plan, sites):
    """Whether ``plan``'s TP, CP, EP groups and pipelines each run inside one site
    (``sites``: the site of each plan rank).

    Examples
    --------
    >>> import numpy as np
    >>> two = np.repeat([0, 1], 8)
    >>> groups_inside_sites(Parallelism(tp=4, pp=2, dp=2, global_batch=2), two)            # PP crosses
    False
    >>> groups_inside_sites(Parallelism(tp=4, pp=2, dp=2, global_batch=2, rank_order=DP_OUTER_ORDER), two)
    True
    """
    ranks = layout(plan)
    groups = [ranks.reshape(-1, plan.tp), cp_groups(plan), ranks.transpose(1, 2, 3, 0).reshape(-1, plan.pp)]
    if plan.ep > 1:
        groups.append(ep_groups(plan))
    return all(bool((sites[g] == sites[g[:, :1]]).all()) for g in groups)


def _expert_layouts(model, tp, cp, dp):
    """(ep, etp) pairs of an MoE model's layers on a stage of ``tp * cp * dp`` GPUs; (1, tp)
    for a dense model."""
    if model.experts == 1:
        return [(1, tp)]
    stage = tp * cp * dp
    return [(ep, etp) for etp in sorted({tp, 1}, reverse=True)
            for ep in _divisors(stage // etp) if model.experts % ep == 0]


@lru_cache(maxsize=4)
def _analytic_cluster(fabric_summary, params, seed):
    """One prepared cluster per worker process and fabric summary (its slowdowns probed
    with ``seed``), so the collective times priced for one chunk serve the next."""
    return Cluster(fabric_summary, "analytic", params, seed=seed)


def _fitting(model, plans, limit):
    """The plans whose worst rank fits in ``limit`` bytes (candidate_plans yields valid
    plans: the unchecked memory model), with their memory."""
    fitting, memories = [], []
    for plan in plans:
        memory = worst_memory(model, plan, rank_contents(model, plan))
        if memory["total"] <= limit:
            fitting.append(plan)
            memories.append(memory)
    return fitting, memories


def _fitting_chunk(model, plans, gpu):
    """The plans of a chunk that fit in memory on ``gpu`` (a worker's first pass)."""
    return _fitting(model, plans, usable_memory(gpu))[0]


def _estimate_chunk(model, plans, fabric_summary, level, params, compute, ranks=None, seed=0):
    """Estimates of the plans that fit in memory (checked here, in the workers); their
    pipelines are simulated together. The analytic summary already describes the job's GPUs;
    the graph (flow level) needs ``ranks``."""
    if level == "analytic":
        cluster = _analytic_cluster(fabric_summary, params, seed)
    else:
        cluster = Cluster(fabric_summary, level, params, ranks=ranks, seed=seed)
    fitting, memories = _fitting(model, plans, usable_memory(cluster.gpu))
    return estimate_many(model, fitting, cluster, compute, memories=memories)


def _layout(plan):
    """What a plan's probed patterns depend on: its groups (tp, pp, dp, cp, ep, etp) and the
    sizes that pick a data-parallel algorithm (virtual stages, sharded or not). Micro-batch
    size, recompute and the ZeRO stage beyond that change no group, and the sizes they
    change (sends, all-to-all) have one algorithm each."""
    return tuple(value for name, value in vars(plan).items()
                 if name not in ("recompute", "zero", "micro_batch")) + (plan.zero > 0,)


def _probe_chunk(model, plans, G, params, compute, ranks, seed):
    """The (pattern key, slowdown) pairs the communication of ``plans`` meets on graph ``G``
    (a worker's share of the probing)."""
    cluster = Cluster(G, "analytic", params, ranks=ranks, seed=seed)
    if cluster.comm.probes is None:  # the parent found that the tables fit; this worker does not
        raise TooLarge("the routing tables of the probes do not fit in a worker's memory (see the FabricBlindWarning)")
    for plan in plans:
        estimate_many(model, [plan], cluster, compute)
    return list(cluster.comm.probes.table.items())


def probed_summary(model, plans, G, summary, params, compute, ranks, seed, executor, progress=False):
    """``summary`` with the slowdowns of every communication pattern of ``plans`` probed on
    ``G`` (:mod:`collectives.patterns`): one plan per :func:`_layout` is estimated on the
    graph, which probes each distinct pattern once. Layouts are dealt to the workers by
    their data-parallel shape (``tp * cp``, ``dp``, ``pp``), so the layouts that share the
    costliest patterns share a worker. A fabric whose routing tables would not fit is not
    probed: the summary is returned as it is, with a :class:`collectives.FabricBlindWarning`;
    so is a pattern too large to probe (:data:`collectives.patterns.BLIND`)."""
    try:
        check_routing_memory(compile_fabric(G))
    except TooLarge as error:
        warnings.warn(FabricBlindWarning(f"{error}; the search reads one GPU's links instead"), stacklevel=3)
        return summary
    representatives = list({_layout(plan): plan for plan in plans}.values())
    workers = max(1, os.cpu_count() or 1)
    shares = [[] for _ in range(workers)]
    for plan in representatives:
        shares[hash((plan.tp * plan.cp, plan.dp, plan.pp)) % workers].append(plan)
    pairs = dict(_run(executor, _probe_chunk, (model,), [share for share in shares if share],
                      (G, params, compute, ranks, seed), progress, "probing the fabric (layouts)"))
    blind = sum(slowdown is BLIND for slowdown in pairs.values())
    if blind:  # the workers' warnings stay in the workers
        warnings.warn(FabricBlindWarning(f"{blind} of the {len(pairs)} communication patterns of the search were too "
                                         "large to probe (fabric.TooLarge) and are priced from one GPU's links"),
                      stacklevel=3)
    return replace(summary, slowdowns=tuple(pairs.items()))


def _chunks(plans, size):
    """Plans from :func:`candidate_plans` (deepest pipelines first, the slowest to
    simulate, so that workers finish together) in chunks of at least ``size`` that never
    split a :func:`collectives.training.pipeline.simulation_shape`: a shape's pipelines share one
    array step per wave, so each shape is simulated once, by one worker. Each pipeline depth
    is sorted and handed out as soon as it is enumerated."""
    for pp, same_depth in groupby(plans, key=lambda p: p.pp):
        shapes = [(simulation_shape(pp, plan.virtual_stages, plan.micro_batches), plan) for plan in same_depth]
        # by chunks per device, then the short runs by length, then the long runs together
        shapes.sort(key=lambda item: (item[0][1], item[0][2] is None, item[0][2] or 0))
        chunk, previous = [], None
        for shape, plan in shapes:
            if len(chunk) >= size and shape != previous:
                yield chunk
                chunk = []
            chunk.append(plan)
            previous = shape
        if chunk:
            yield chunk


def search(model, G, *, global_batch, executor=None, level="analytic", precision="bf16", params=None,
           compute=None, progress=True, top=None, ranks=None, seed=0, rank_orders=None):
    """Estimate every fitting plan of ``model`` on ``G`` and return them fastest first.

    Parameters
    ----------
    model : collectives.Transformer
    G : networkx.DiGraph
    global_batch : int
        Sequences per optimizer step.
    executor : concurrent.futures.Executor or None
        Where chunks of plans are estimated; None makes a process pool of the machine's
        cores. A dask.distributed ``Client(...).get_executor()`` scales it out.
    level : {"analytic", "flow"}
        ``"analytic"``: closed forms, each communication pattern of the fitting plans
        probed once at the flow level on ``G`` (:mod:`collectives.patterns`), so the
        ranking sees oversubscription, ECMP collisions and failures. ``"flow"`` ships the
        graph with every chunk and is far slower.
    precision : {"bf16", "fp16", "fp8"}
    progress : bool
        Show a tqdm progress bar.
    top : int or None
        Keep only the best ``top``.
    ranks : sequence of int or None
        The job's GPUs on ``G`` (default all of them), in increasing rank order; at the
        analytic level they must fill the NVLink domains they touch equally (e.g. 8,192
        GPUs of a 16k-GPU fabric, or 64 GPUs of each NVL72 rack).
    seed : int
        ECMP hash seed.
    rank_orders : sequence of str or None
        The :attr:`Parallelism.rank_order` values to try. None: Megatron-LM's on a fabric of
        one site; on a job across sites (:func:`fabric.join_sites`), DP outermost, with only
        the plans whose TP, CP, EP and PP groups each stay inside a site, so that only data
        parallelism crosses. Given, every plan of those orders is tried, PP across sites too.

    Returns
    -------
    list of StepEstimate
        Plans that fit in memory, fastest first.
    """
    with collectives_errors():
        require_int("global_batch", global_batch, minimum=1)
        require_choice("precision", precision, PRECISIONS)
        if top is not None:
            require_int("top", top, minimum=1)
        require_seed(seed)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise InvalidSpec(f"executor={executor!r:.80} must be a concurrent.futures.Executor (with submit) or None")
    params = checked_params(params)
    compute = checked_compute(compute)
    gpu = graph_attr(G, "gpu")
    job = None if ranks is None else job_ranks(ranks, gpu_count(G))
    watts = bill_of_materials(G).network_watts * (1 if job is None else len(job) / gpu_count(G))
    summary = uniform_fabric(G, params, watts, ranks=job)
    if summary.n_gpus > summary.gpus_per_domain:  # the summary reads one GPU: every GPU must reach the network
        check_uplinks(G, range(summary.n_gpus) if job is None else job)
    sites = job_sites(G, job)
    if rank_orders is None:
        rank_orders = (MEGATRON_ORDER,) if sites is None else (DP_OUTER_ORDER,)
    else:
        rank_orders = tuple(rank_orders) if isinstance(rank_orders, (list, tuple)) else (rank_orders,)
        for order in rank_orders:
            require_choice("rank_orders", order, RANK_ORDERS)
        sites = None
    plans = candidate_plans(model, summary.n_gpus, global_batch, gpus_per_domain=summary.gpus_per_domain,
                            precision=precision, rank_orders=rank_orders, sites=sites)
    own = executor is None
    executor = executor or ProcessPoolExecutor(max_workers=os.cpu_count())
    try:
        if level == "analytic":
            # First the plans that fit, then their patterns probed on the graph, then the
            # estimates from the summary and its table of slowdowns.
            plans = _run(executor, _fitting_chunk, (model,), _chunks(plans, CHUNK), (gpu,), progress,
                         "checking memory")
            shipped = probed_summary(model, plans, G, summary, params, compute, job, seed, executor, progress) \
                if plans else summary
            results = _run(executor, _estimate_chunk, (model,), _chunks(plans, CHUNK),
                           (shipped, level, params, compute, None, seed), progress, "estimating plans")
        else:
            results = _run(executor, _estimate_chunk, (model,), _chunks(plans, CHUNK),
                           (G, level, params, compute, job, seed), progress, "checking and estimating plans")
    finally:
        if own:
            executor.shutdown()
    if not results:
        raise Infeasible(f"no plan of {model.name or 'the model'} fits in {gpu.name} memory on {summary.n_gpus} GPUs "
                         f"with global_batch={global_batch}")
    results.sort(key=lambda e: e.time)
    return results[:top] if top else results


def job_sites(G, job):
    """The site of each of the job's ranks (``job``: its fabric ranks, None for all), or None
    when the job runs on one site."""
    sites = site_of_ranks(G)
    if sites is None:
        return None
    sites = np.asarray(sites, dtype=np.int64)
    sites = sites if job is None else sites[job]
    return sites if len(np.unique(sites)) > 1 else None


def _run(executor, fn, before, chunks, after, progress, what):
    """``fn(*before, chunk, *after)`` for every chunk on ``executor`` (workers start on the
    first chunks while the rest are enumerated), joined in submission order so that ties
    rank the same on every executor."""
    futures = {executor.submit(fn, *before, chunk, *after): len(chunk) for chunk in chunks}
    for _ in _progress(futures, sum(futures.values()), progress, what):
        pass
    return [item for future in futures for item in future.result()]


def _progress(futures, total, show, what):
    """Futures (mapped to their plan counts) as they finish, with a tqdm bar when ``show``."""
    if not show:
        yield from as_completed(futures)
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="plan", desc=what) as bar:
        for future in as_completed(futures):
            bar.update(futures[future])
            yield future
