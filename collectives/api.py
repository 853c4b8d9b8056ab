"""Public entry points: one function per collective, concurrent groups, size sweeps."""

import math
import numbers

import numpy as np

from fabric.checks import require_choice, require_seed
from fabric.compiled import compile_fabric
from fabric.schema import ROUTINGS, gpu_count, gpu_name, graph_attr, node_attr

from collectives import algorithms
from collectives.engine import LEVELS, Context, UniformFabric, check_uplinks, profile, solve_steps
from collectives.errors import InvalidSpec, Unsupported
from collectives.groups import make_groups
from collectives.params import PROTOCOL_BANDWIDTH, checked_params
from collectives.result import Phase, make_result

AUTO = "auto"


def _check_nbytes(nbytes):
    if isinstance(nbytes, bool) or not isinstance(nbytes, numbers.Real) or not math.isfinite(nbytes):
        raise InvalidSpec(f"nbytes={nbytes!r} must be a finite number of bytes")
    if nbytes < 0:
        raise InvalidSpec(f"nbytes={nbytes!r} must be >= 0")
    return float(nbytes)


def _candidates(collective, algorithm, contexts):
    """Algorithm modules to evaluate: the named one (checked) or every eligible one."""
    if algorithm == AUTO:
        eligible = []
        for module in algorithms.for_collective(collective):
            if module.FAMILY == "collnet" and not contexts[0].params.collnet:
                continue  # NCCL runs CollNet (SHARP) only when enabled
            try:
                for ctx in contexts:
                    module.check(ctx)
            except Unsupported:
                continue
            eligible.append(module)
        return eligible
    require_choice("algorithm", algorithm, algorithms.NAMES + (AUTO,))
    module = algorithms.TABLE.get((collective, algorithm))
    if module is None:
        known = [name for (c, name) in algorithms.TABLE if c == collective]
        raise Unsupported(f"algorithm={algorithm!r} does not implement {collective}; it has: {', '.join(known)}")
    for ctx in contexts:
        module.check(ctx)
    return [module]


def _best(collective, module, contexts, level, background=None):
    """Results of every group with ``module``, at the protocol that makes the slowest
    group fastest."""
    if level == "flow":
        phases = solve_steps(contexts[0], [module.steps(ctx) for ctx in contexts], background)
    else:
        phases = [module.analytic(ctx) for ctx in contexts]
    combine = max if getattr(module, "PIPELINED", False) else sum
    # across sites: the long-haul propagation each group's rounds wait for, part of its latency
    far = [combine(p.far_latency for p in group_phases) if group_phases else 0.0 for group_phases in phases]
    best = best_time = None
    for protocol in contexts[0].params.protocols(module.FAMILY):
        factor = PROTOCOL_BANDWIDTH[protocol]
        latencies = [module.latency(ctx, protocol) + wait for ctx, wait in zip(contexts, far)]
        bandwidth = [combine(p.time / factor for p in group_phases) for group_phases in phases]
        slowest = max(lat + bw for lat, bw in zip(latencies, bandwidth))
        if best is None or slowest < best_time:
            best, best_time = (protocol, latencies, bandwidth), slowest
    protocol, latencies, bandwidth = best
    return [
        make_result(
            collective=collective,
            algorithm=module.NAME,
            protocol=protocol,
            level=level,
            ranks=ctx.group.size,
            nbytes=ctx.nbytes,
            latency=latency,
            phases=[_scaled(p, PROTOCOL_BANDWIDTH[protocol]) for p in group_phases],
            bandwidth_time=bandwidth_time,
            far_latency=wait,
        )
        for ctx, group_phases, latency, bandwidth_time, wait in zip(contexts, phases, latencies, bandwidth, far)
    ]


def _scaled(phase, factor):
    """The phase run at a protocol reaching ``factor`` of the Simple bandwidth."""
    if factor == 1.0:
        return phase
    return Phase(phase.name, phase.flows, phase.bytes_per_flow, phase.repeats, phase.rate * factor, phase.time / factor,
                 phase.far_latency)


def _graph_domain_of(G):
    nodes = G.nodes

    def domain_of(ranks):
        try:
            return np.array([nodes[gpu_name(r)]["domain"] for r in ranks.tolist()])
        except KeyError:  # name the GPU without a domain
            return np.array([node_attr(G, gpu_name(r), "domain") for r in ranks.tolist()])

    return domain_of


def _contexts(G, collective, groups, nbytes, *, level, params, routing, seed, root=None, extras=None, compiled=None):
    """One Context per group; the fabric is compiled only at the flow level (once, when
    ``compiled`` is passed by a caller that evaluates many collectives)."""
    nbytes = _check_nbytes(nbytes)
    require_choice("level", level, LEVELS)
    require_seed(seed)
    if routing is not None:
        require_choice("routing", routing, ROUTINGS)
    params = checked_params(params)
    if not isinstance(G, UniformFabric):
        graph_attr(G, "gpu")  # a fabric graph with a GPU spec, or a typed error saying what it is
    if isinstance(G, UniformFabric):
        if level == "flow":
            raise InvalidSpec("level='flow' needs the fabric graph, not its uniform summary")
        per, n = G.gpus_per_domain, G.n_gpus
        n_gpus, domain_of, exists = (lambda: n), (lambda r: r // per), (lambda r: r < n)
    elif level == "flow":
        compiled = compiled or compile_fabric(G)
        n_gpus = lambda: compiled.n_gpus  # noqa: E731
        domain_of = lambda r: np.where(compiled.domain[r] >= 0, compiled.domain[r], -1 - r)  # noqa: E731
        exists = None
    else:
        compiled, n_gpus, domain_of = None, lambda: gpu_count(G), _graph_domain_of(G)
        exists = lambda r: gpu_name(r) in G  # noqa: E731
    extras = extras or [{}] * len(groups)
    contexts = []
    for g, extra in zip(make_groups(groups, n_gpus=n_gpus, domain_of=domain_of, exists=exists), extras):
        r = int(g.ranks[0]) if root is None else root
        if r not in g.ranks:
            raise InvalidSpec(f"root={r!r} must be one of the group's ranks")
        if compiled is None and not isinstance(G, UniformFabric) and len(g.domains) > 1:
            check_uplinks(G, g.ranks)  # the closed forms read one GPU's profile: the others must have it too
        if not contexts:  # concurrent groups are priced alike: one profile serves them all
            prof = G.profile if isinstance(G, UniformFabric) else profile(G, int(g.ranks[0]), params)
        contexts.append(Context(G, g, collective, nbytes, params, prof, compiled, r, routing, seed, extra))
    return contexts


def contexts_for(G, collective, groups, nbytes, *, level="flow", params=None, routing=None, seed=0, compiled=None):
    """The algorithm contexts of ``groups`` (for callers that build their own steps)."""
    return _contexts(G, collective, groups, nbytes, level=level, params=params, routing=routing, seed=seed,
                     compiled=compiled)


def evaluate(G, collective, groups, nbytes, *, algorithm=AUTO, level="flow", params=None, routing=None, seed=0,
             root=None, compiled=None, background=None):
    """Results of ``collective`` on concurrent disjoint ``groups`` (the engine of the
    public functions; ``compiled`` reuses a :func:`fabric.compiled.compile_fabric`;
    ``background``: ``(src, dst)`` of other traffic sharing the fabric, at the flow level,
    :func:`collectives.engine.solve_steps`)."""
    contexts = _contexts(G, collective, groups, nbytes, level=level, params=params, routing=routing, seed=seed,
                         root=root, compiled=compiled)
    _disjoint(contexts)
    modules = _candidates(collective, algorithm, contexts)
    if not modules:
        raise Unsupported(f"no algorithm can run {collective} on this group")
    best = None
    for module in modules:
        results = _best(collective, module, contexts, level, background)
        if best is None or max(r.time for r in results) < max(r.time for r in best):
            best = results
    return best


def _disjoint(contexts):
    if len(contexts) < 2:
        return
    ranks = np.concatenate([c.group.ranks for c in contexts])
    uniq, counts = np.unique(ranks, return_counts=True)
    if (counts > 1).any():
        raise InvalidSpec(f"concurrent groups must be disjoint; rank {int(uniq[counts > 1][0])} is in two groups")


def _collective(name, doc_example):
    def run(G, nbytes, *, ranks=None, algorithm=AUTO, level="flow", params=None, routing=None, seed=0):
        return evaluate(
            G, name, [ranks], nbytes, algorithm=algorithm, level=level, params=params, routing=routing, seed=seed
        )[0]

    run.__name__ = run.__qualname__ = name
    run.__doc__ = f"""Cost of one {name.replace('_', '-')} on fabric ``G``.

    Parameters
    ----------
    G : networkx.DiGraph
        A fabric (see :mod:`fabric.schema`).
    nbytes : float
        Message size as nccl-tests counts it (for all-gather and reduce-scatter, the
        whole gathered buffer; for all-to-all, what each rank sends in total).
    ranks : sequence of int or None
        The group; None is every GPU. Order does not matter.
    algorithm : str
        One of {', '.join(repr(m.NAME) for m in algorithms.for_collective(name))} or ``"auto"``
        (the fastest eligible, as NCCL picks by its cost model).
    level : {{"flow", "analytic"}}
        ``"flow"`` routes every step on the graph and shares links max-min fairly;
        ``"analytic"`` uses closed forms (instant, no contention beyond the endpoints).
    params : collectives.params.CommParams or None
        Efficiencies and latency tables; None uses the calibrated defaults.
    routing : {{"adaptive", "ecmp"}} or None
        None uses the graph's.
    seed : int
        Seeds ECMP hashing.

    Returns
    -------
    CollectiveResult

    Examples
    --------
{doc_example}
    """
    return run


all_reduce = _collective(
    "all_reduce",
    """    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(1, gpu="H100")
    >>> r = collectives.all_reduce(G, 4 * 2**30, algorithm="ring")
    >>> round(r.busbw / 1e9)          # ~80% of 450 GB/s NVLink, as nccl-tests measures
    361
    >>> collectives.all_reduce(G, 4 * 2**30).algorithm   # NVLink SHARP wins on H100
    'nvls'""",
)
all_gather = _collective(
    "all_gather",
    """    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(2, gpu="H100")
    >>> r = collectives.all_gather(G, 2**30, ranks=range(16))
    >>> r.algorithm, r.ranks
    ('ring', 16)""",
)
reduce_scatter = _collective(
    "reduce_scatter",
    """    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(2, gpu="H100")
    >>> collectives.reduce_scatter(G, 2**30, level="analytic").ranks
    16""",
)
all_to_all = _collective(
    "all_to_all",
    """    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(2, gpu="H100")
    >>> r = collectives.all_to_all(G, 2**28, ranks=range(16))
    >>> r.algorithm
    'direct'""",
)


def broadcast(G, nbytes, *, ranks=None, root=None, algorithm=AUTO, level="flow", params=None, routing=None, seed=0):
    """Cost of a broadcast from ``root`` (default: the group's lowest rank) to ``ranks``.

    Parameters are those of :func:`all_reduce`, plus ``root``. NCCL broadcasts with a
    pipelined ring (chain) only.

    Examples
    --------
    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(2, gpu="H100")
    >>> r = collectives.broadcast(G, 2**30, root=3)
    >>> r.algorithm, r.busbw == r.algbw
    ('ring', True)
    """
    return evaluate(
        G, "broadcast", [ranks], nbytes, algorithm=algorithm, level=level, params=params, routing=routing,
        seed=seed, root=root,
    )[0]


def send_recv(G, nbytes, *, ranks, algorithm=AUTO, level="flow", params=None, routing=None, seed=0):
    """Cost of sending ``nbytes`` from ``ranks[0]`` to ``ranks[1]`` (pipeline stages).

    Examples
    --------
    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(2, gpu="H100")
    >>> r = collectives.send_recv(G, 2**30, ranks=(0, 8))
    >>> round(r.algbw / 1e9)          # one 400 Gb/s NIC at 94%
    47
    """
    return concurrent_send_recv(G, nbytes, [ranks], algorithm=algorithm, level=level, params=params,
                                routing=routing, seed=seed)[0]


def concurrent_send_recv(G, nbytes, pairs, *, algorithm=AUTO, level="flow", params=None, routing=None, seed=0,
                         compiled=None):
    """Cost of many sends at once (e.g. every pipeline-stage boundary), sharing the fabric.

    Examples
    --------
    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(2, gpu="H100")
    >>> [round(r.algbw / 1e9) for r in collectives.concurrent_send_recv(G, 2**30, [(0, 8), (1, 8)])]
    [23, 23]
    """
    groups, extras = [], []
    pairs = list(pairs)
    if not pairs:
        raise InvalidSpec("pairs is empty; give at least one (sender, receiver) pair")
    for pair in pairs:
        pair = np.asarray(pair)
        if pair.shape != (2,):
            raise InvalidSpec(f"a send_recv pair must be (sender, receiver), got {pair.tolist()!r}")
        groups.append(pair)
        extras.append({"sender": int(pair[0]), "receiver": int(pair[1])})
    # Pairs may share a rank (two senders into one GPU): they are one flow set, not
    # disjoint groups.
    contexts = _contexts(G, "send_recv", groups, nbytes, level=level, params=params, routing=routing, seed=seed,
                         extras=extras, compiled=compiled)
    module = _candidates("send_recv", algorithm, contexts)[0]
    return _best("send_recv", module, contexts, level)


def concurrent(G, collective, groups, nbytes, *, algorithm=AUTO, level="flow", params=None, routing=None, seed=0):
    """Cost of one collective run at once by several disjoint groups sharing the fabric.

    All data-parallel groups of a training step reduce their gradients at the same time;
    at the flow level their flows compete for the same links. The algorithm (and
    protocol) is chosen once for all groups, by the slowest group.

    Returns
    -------
    list of CollectiveResult
        One per group, in order.

    Examples
    --------
    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(4, gpu="H100")
    >>> dp = [list(range(i, 32, 8)) for i in range(8)]      # one GPU per node, rail i
    >>> results = collectives.concurrent(G, "all_reduce", dp, 2**28, algorithm="ring")
    >>> len(results), round(min(r.busbw for r in results) / 1e9)   # 94% of 50 GB/s each
    (8, 46)
    """
    require_choice("collective", collective, tuple(c for c in _COLLECTIVES if c != "send_recv"))
    groups = list(groups)
    if not groups:
        raise InvalidSpec("groups must list at least one group")
    return evaluate(
        G, collective, groups, nbytes, algorithm=algorithm, level=level, params=params, routing=routing, seed=seed
    )


_COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv")
_FUNCTIONS = {"all_reduce": all_reduce, "all_gather": all_gather, "reduce_scatter": reduce_scatter,
              "all_to_all": all_to_all, "broadcast": broadcast}


def sweep(G, collective, sizes=None, *, ranks=None, algorithm=AUTO, level="flow", params=None, routing=None, seed=0):
    """The nccl-tests curve: one result per message size (default 8 B to 8 GiB, x4 steps).

    Examples
    --------
    >>> import fabric, collectives
    >>> G = fabric.dgx_superpod(1)
    >>> curve = collectives.sweep(G, "all_reduce", [2**10, 2**20, 2**30], level="analytic")
    >>> [r.busbw < s.busbw for r, s in zip(curve, curve[1:])]
    [True, True]
    """
    fn = _FUNCTIONS.get(collective)
    if fn is None:
        raise InvalidSpec(f"collective={collective!r} must be one of {', '.join(map(repr, _FUNCTIONS))}")
    if sizes is not None and (isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__")):
        raise InvalidSpec(f"sizes={sizes!r:.80} must be a sequence of message sizes in bytes")
    sizes = [8 * 4**k for k in range(16)] if sizes is None else list(sizes)
    return [
        fn(G, s, ranks=ranks, algorithm=algorithm, level=level, params=params, routing=routing, seed=seed)
        for s in sizes
    ]
