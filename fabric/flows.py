"""Max-min fair bandwidth sharing and a fluid simulation of flows on a fabric.

Rates come from progressive filling: every unfrozen flow grows at the same pace until a
resource (an edge, or one cable under ECMP) fills; flows crossing it freeze; repeat.
The result is the max-min fair allocation: no resource over capacity, and every flow
crosses a saturated resource on which no other flow gets more.
"""

import heapq

import numpy as np

from fabric.checks import require_int
from fabric.compiled import compile_fabric
from fabric.errors import InvalidSpec
from fabric.routing import route
from fabric.schema import graph_attr

# Relative slack under which a resource counts as full (float round-off of the filling).
_SATURATED = 1e-9


def _load_rate(routes, active):
    """Per resource, the load added per unit rate given to every active variable."""
    a = active.astype(np.float64)
    g = routes.host @ a
    if routes.cls is not None:
        member = active & (routes.class_of >= 0)
        g += routes.cls @ np.bincount(routes.class_of[member], minlength=routes.cls.shape[1]).astype(np.float64)
    return g


def _crossing(routes, resources):
    """Per variable, whether it crosses any resource flagged in ``resources``."""
    r = resources.astype(np.float64)
    hit = routes.host.T @ r
    if routes.cls is not None:
        per_class = routes.cls.T @ r
        member = routes.class_of >= 0
        hit[member] += per_class[routes.class_of[member]]
    return hit > 0


def max_min_rates(routes, active=None):
    """Max-min fair rate (bytes/s) of each variable of ``routes``.

    Parameters
    ----------
    routes : fabric.routing.Routes
    active : ndarray of bool, optional
        Variables that compete; the others get rate 0 and use nothing.

    Returns
    -------
    rates : ndarray
        Per variable (a flow, or a queue pair under ECMP).
    load : ndarray
        Per resource, bytes/s carried.
    """
    n = len(routes.owner)
    active = np.ones(n, dtype=bool) if active is None else active.copy()
    if routes.cls is None:
        rates = _fill_by_bottleneck(routes.host, routes.capacity, active)
    else:
        rates = _fill_by_level(routes, active)
    load = routes.host @ rates
    if routes.cls is not None:
        member = routes.class_of >= 0
        load += routes.cls @ np.bincount(routes.class_of[member], rates[member], minlength=routes.cls.shape[1])
    return rates, load


def _fill_by_level(routes, active):
    """Progressive filling, one saturation level per pass over the whole matrix.

    Suits few distinct levels (adaptive routing) and keeps the class factorisation.
    """
    rates = np.zeros(len(routes.owner))
    load = np.zeros(len(routes.capacity))
    cap = routes.capacity
    while active.any():
        g = _load_rate(routes, active)
        used = g > 0
        step = max(0.0, float(np.min((cap[used] - load[used]) / g[used])))
        rates[active] += step
        load += step * g
        full = used & (cap - load <= _SATURATED * cap)
        frozen = active & _crossing(routes, full)
        if not frozen.any():  # round-off left the tightest resource a hair short
            full = used & (cap - load <= np.min((cap - load)[used]) + _SATURATED * cap)
            frozen = active & _crossing(routes, full)
        active &= ~frozen
    return rates


def _fill_by_bottleneck(A, cap, active):
    """Progressive filling driven by a heap of per-resource fill levels.

    A resource's level is (capacity - load of frozen variables) / (active coefficient
    sum); the lowest is the next bottleneck, and freezing its variables only changes the
    levels of the resources they cross, which never fall. Suits many distinct levels
    (ECMP collisions): each step touches only what changes.
    """
    by_resource = A.tocsr()
    by_variable = A.tocsc()
    weight = by_resource @ active.astype(np.float64)
    frozen_load = np.zeros(len(cap))
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(weight > 0, cap / weight, np.inf)
    heap = list(zip(level[weight > 0].tolist(), np.flatnonzero(weight > 0).tolist()))
    heapq.heapify(heap)
    rates = np.zeros(A.shape[1])
    negligible = _SATURATED * max(1.0, float(by_resource.data.max(initial=0.0)))
    while heap:
        lam, r = heapq.heappop(heap)
        if lam != level[r]:
            if np.isfinite(level[r]):  # its level rose since it was pushed
                heapq.heappush(heap, (float(level[r]), r))
            continue
        batch = [r]
        while heap and heap[0][0] <= lam * (1 + _SATURATED):
            lam2, r2 = heapq.heappop(heap)
            if lam2 == level[r2]:
                batch.append(r2)
            elif np.isfinite(level[r2]):
                heapq.heappush(heap, (float(level[r2]), r2))
        level[batch] = np.inf
        cols = np.concatenate([by_resource.indices[by_resource.indptr[b] : by_resource.indptr[b + 1]] for b in batch])
        cols = np.unique(cols[active[cols]])
        rates[cols] = lam
        active[cols] = False
        start, stop = by_variable.indptr[cols], by_variable.indptr[cols + 1]
        deg = stop - start
        pos = np.repeat(start, deg) + np.arange(deg.sum()) - np.repeat(np.cumsum(deg) - deg, deg)
        rows, coef = by_variable.indices[pos], by_variable.data[pos]
        np.add.at(frozen_load, rows, lam * coef)
        np.add.at(weight, rows, -coef)
        touched = np.unique(rows)
        touched = touched[np.isfinite(level[touched])]
        # Levels only rise: the heap keeps stale (lower) entries and re-pushes them on pop.
        alive = weight[touched] > negligible
        level[touched[~alive]] = np.inf
        touched = touched[alive]
        level[touched] = np.maximum((cap[touched] - frozen_load[touched]) / weight[touched], lam)
    return rates


def _routes_for(G, src, dst, routing, seed, qps):
    """Compile ``G`` and route the flows; ``None`` takes the graph's routing and qps."""
    require_int("seed", seed, minimum=0)
    routing = graph_attr(G, "routing") if routing is None else routing
    qps = graph_attr(G, "qps") if qps is None else qps
    compiled = compile_fabric(G)
    return compiled, route(compiled, src, dst, routing=routing, qps=qps, seed=seed)


def flow_rates(G, src, dst, *, routing=None, seed=0, qps=None):
    """Max-min fair rates of flows ``src[i] -> dst[i]`` on fabric ``G``.

    Parameters
    ----------
    G : networkx.DiGraph
        A fabric (see :mod:`fabric.schema`).
    src, dst : array_like of int
        GPU ranks; one flow per pair.
    routing : {"adaptive", "ecmp"} or None
        None uses ``G.graph["routing"]``.
    seed : int
        Seeds the ECMP hash.
    qps : int or None
        Queue pairs per flow under ECMP; None uses ``G.graph["qps"]``.

    Returns
    -------
    numpy.ndarray
        Bytes/s per flow (under ECMP, the sum over its queue pairs).

    Examples
    --------
    Two GPUs of one server sending to two GPUs of another share nothing on a rail-optimized
    fabric, so each gets its full 400 Gb/s NIC:

    >>> import fabric
    >>> G = fabric.dgx_superpod(2)
    >>> fabric.flow_rates(G, [0, 1], [8, 9]) / fabric.units.Gbps
    array([400., 400.])

    Two flows into one GPU share its NIC:

    >>> fabric.flow_rates(G, [0, 1], [8, 8]) / fabric.units.Gbps
    array([200., 200.])
    """
    _, routes = _routes_for(G, src, dst, routing, seed, qps)
    rates, _ = max_min_rates(routes)
    return np.bincount(routes.owner, rates, minlength=routes.n_flows)


def link_utilization(G, src, dst, *, routing=None, seed=0, qps=None):
    """Fraction of capacity each edge carries under the max-min rates of the flows.

    Returns
    -------
    dict
        ``{(u, v): utilization}`` for every edge that carries traffic.

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(2)
    >>> u = fabric.link_utilization(G, [0, 1], [8, 8])
    >>> u[("leaf0", "nic8")]
    1.0
    """
    compiled, routes = _routes_for(G, src, dst, routing, seed, qps)
    _, load = max_min_rates(routes)
    util = np.bincount(routes.resource_edge, load, minlength=len(compiled.bandwidth)) / compiled.bandwidth
    names = compiled.nodes
    return {
        (names[compiled.edge_src[e]], names[compiled.edge_dst[e]]): float(util[e]) for e in np.flatnonzero(util > 0)
    }


def completion_times(G, src, dst, nbytes, *, routing=None, seed=0, qps=None):
    """Seconds until each flow of ``nbytes[i]`` bytes has arrived, all starting at once.

    A fluid simulation: flows share bandwidth max-min fairly; whenever one finishes, the
    rates of the rest are solved again. Each flow's path latency is added at the end.
    Under ECMP a flow's bytes are split evenly over its queue pairs and it ends with the
    last of them.

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(2)
    >>> t = fabric.completion_times(G, [0, 1], [8, 8], [50e9, 25e9])
    >>> t.round(3).tolist()    # 400 Gb/s = 50 GB/s shared, then alone
    [1.5, 1.0]
    """
    _, routes = _routes_for(G, src, dst, routing, seed, qps)
    return fluid_completion(routes, nbytes)


def fluid_completion(routes, nbytes):
    """Completion time of each flow of ``routes`` carrying ``nbytes`` (see :func:`completion_times`)."""
    nbytes = np.asarray(nbytes, dtype=np.float64)
    if nbytes.shape != (routes.n_flows,):
        raise InvalidSpec(f"nbytes must have one size per flow ({routes.n_flows}), got shape {nbytes.shape}")
    if (nbytes < 0).any() or not np.isfinite(nbytes).all():
        i = np.flatnonzero((nbytes < 0) | ~np.isfinite(nbytes))[0]
        raise InvalidSpec(f"nbytes[{i}]={nbytes[i]!r} must be a finite number >= 0")
    per_var = np.bincount(routes.owner, minlength=routes.n_flows)
    remaining = nbytes[routes.owner] / per_var[routes.owner]
    finish = np.zeros(len(remaining))
    active = remaining > 0
    now = 0.0
    while active.any():
        rates, _ = max_min_rates(routes, active)
        dt = np.min(remaining[active] / rates[active])
        now += dt
        remaining[active] -= rates[active] * dt
        done = active & (remaining <= 1e-9 * np.maximum(nbytes[routes.owner], 1.0))
        finish[done] = now
        active &= ~done
    end = np.zeros(routes.n_flows)
    np.maximum.at(end, routes.owner, finish)
    return end + np.where(nbytes > 0, routes.latency, 0.0)

