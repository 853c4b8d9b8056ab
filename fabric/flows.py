"""Max-min fair bandwidth sharing and a fluid simulation of flows on a fabric.

Rates come from progressive filling: every unfrozen flow grows at the same pace until a
resource (an edge, or one cable under ECMP) fills; flows crossing it freeze; repeat.
The result is the max-min fair allocation: no resource over capacity, and every flow
crosses a saturated resource on which no other flow gets more.
"""

from functools import cached_property

import numpy as np

from fabric.checks import require_non_negative, require_seed
from fabric.compiled import compile_fabric
from fabric.errors import InvalidSpec
from fabric.adaptive_paths import ClassPart
from fabric.routing import class_load, route
from fabric.schema import graph_attr

# Relative slack under which a resource counts as full (float round-off of the filling).
_SATURATED = 1e-9
# The fluid simulation solves the rates again when flows finish; flows due within FLUID_RTOL
# of the elapsed time of the first of them finish together, at their own times under the
# current rates (the others keep their rates across that window). Each completion time is
# then within about FLUID_RTOL of the exact one (2,000 random flows on 512 GPUs: max 0.98%,
# median 0.08%), and the number of re-solves grows as the log of the spread of finishing
# times instead of with the number of flows. A modelling tolerance, not a published figure;
# 0 gives the exact event-by-event simulation.
FLUID_RTOL = 1e-2


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
    rates = _fill(routes, active)
    load = routes.host @ rates
    if routes.cls:
        member = routes.class_of >= 0
        load += class_load(routes.cls, np.bincount(routes.class_of[member], rates[member],
                                                    minlength=len(routes.cls[0].column)))
    return rates, load


def _segment_min(values, indptr):
    """Minimum of ``values`` over each compressed segment ``indptr[i]:indptr[i+1]`` (inf if empty)."""
    out = np.full(len(indptr) - 1, np.inf)
    nonempty = np.flatnonzero(indptr[1:] > indptr[:-1])
    if nonempty.size:
        out[nonempty] = np.minimum.reduceat(values, indptr[nonempty])
    return out


class _Problem:
    """The part of a filling problem still open: resources x variables, with classes.

    ``load = host @ x + sum over parts of part @ (per-column sums of x)``; ``left`` is each
    resource's capacity minus what variables frozen before the last compaction carry.
    """

    def __init__(self, host, parts, class_of, left, ids):
        self.host_r = host.tocsr()
        self.left, self.ids = left, ids
        self.cls = bool(parts)
        if self.cls:
            self.parts = [(p.matrix.tocsr(), p.column) for p in parts]
            self.n_classes = len(parts[0].column)
            self.class_of = class_of
            self.member = class_of >= 0
            members = np.flatnonzero(self.member)
            self.members = members[np.argsort(class_of[members], kind="stable")]
            sizes = np.bincount(class_of[self.member], minlength=self.n_classes)
            self.member_ptr = np.concatenate(([0], np.cumsum(sizes)))

    # By variable (CSC): made on first use, so a problem that is only restricted (the
    # whole one, when some variables are inactive) never converts its millions of entries.
    @cached_property
    def host_v(self):
        return self.host_r.tocsc()

    @cached_property
    def part_columns(self):
        return [rows.tocsc() for rows, _ in self.parts]

    def per_class(self, x):
        return np.bincount(self.class_of[self.member], x[self.member], minlength=self.n_classes)

    def load(self, x):
        """Per resource, ``A @ x``."""
        y = self.host_r @ x
        if self.cls:
            per_class = self.per_class(x)
            for rows, column in self.parts:
                y += rows @ np.bincount(column, per_class, minlength=rows.shape[1])
        return y

    def lowest(self, per_resource):
        """Per variable, the minimum of ``per_resource`` over the resources it crosses."""
        out = _segment_min(per_resource[self.host_v.indices], self.host_v.indptr)
        if self.cls:
            per_class = np.full(self.n_classes, np.inf)
            for (_, column), cols in zip(self.parts, self.part_columns):
                per_class = np.minimum(per_class, _segment_min(per_resource[cols.indices], cols.indptr)[column])
            out[self.member] = np.minimum(out[self.member], per_class[self.class_of[self.member]])
        return out

    def lowest_crossing(self, per_variable):
        """Per resource, the minimum of ``per_variable`` over the variables crossing it."""
        out = _segment_min(per_variable[self.host_r.indices], self.host_r.indptr)
        if self.cls:
            per_class = _segment_min(per_variable[self.members], self.member_ptr)
            for rows, column in self.parts:
                per_column = np.full(rows.shape[1], np.inf)
                np.minimum.at(per_column, column, per_class)
                out = np.minimum(out, _segment_min(per_column[rows.indices], rows.indptr))
        return out

    def crossing(self, flagged):
        """Per variable, whether it crosses a resource flagged in ``flagged``."""
        r = flagged.astype(np.float64)
        hit = self.host_v.T @ r
        if self.cls:
            per_class = sum((cols.T @ r)[column] for (_, column), cols in zip(self.parts, self.part_columns))
            hit[self.member] += per_class[self.class_of[self.member]]
        return hit > 0

    def restrict(self, active, x):
        """The problem left once the inactive variables are fixed at rates ``x``."""
        left = self.left - self.load(x)
        a = active.astype(np.float64)
        rows = np.flatnonzero(self.load(a) > 0)
        cols = np.flatnonzero(active)
        host = self.host_r[rows][:, cols]
        parts, class_of = (), None
        if self.cls:
            kept = np.flatnonzero(self.per_class(a) > 0)
            renumber = np.full(self.n_classes + 1, -1)
            renumber[kept] = np.arange(len(kept))
            parts = tuple(ClassPart(matrix[rows], column[kept]) for matrix, column in self.parts)
            class_of = renumber[self.class_of[cols]]
        return _Problem(host, parts, class_of, left[rows], self.ids[cols])


def _fill(routes, active):
    """Progressive filling in rounds: every locally tightest resource fills at once.

    A resource is locally tightest when no variable crossing it crosses a resource of
    lower fill level (capacity left over active weight). Levels only rise as variables
    freeze, so such a resource fills exactly at its level, whatever happens elsewhere:
    each of its active variables freezes at its own lowest level (within the relative
    tie tolerance ``_SATURATED``, the resource's). The global tightest resource always
    qualifies, so every round freezes something; independent bottlenecks fill in the
    same round, so rounds follow the depth of the bottleneck dependencies rather than
    the number of distinct rates. Rates equal those of one-level-at-a-time progressive
    filling up to round-off. When half the variables are frozen the problem is
    restricted to the rest.
    """
    rates = np.zeros(len(routes.owner))
    cols = np.flatnonzero(active)
    if not cols.size:
        return rates
    capacity = routes.capacity.astype(np.float64)
    problem = _Problem(routes.host, routes.cls, routes.class_of, capacity, np.arange(len(rates)))
    # With every variable active the whole problem is filled as it is: the resources no
    # flow crosses stay at level inf and never fill, and copying millions of entries to
    # drop them would cost more than a round.
    if not active.all():
        problem = problem.restrict(active, np.zeros(len(rates)))
    live = np.ones(len(problem.ids), dtype=bool)
    x = np.zeros(len(problem.ids))
    while True:
        a = live.astype(np.float64)
        weight = problem.load(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where(weight > 0, np.maximum(problem.left - problem.load(x), 0.0) / weight, np.inf)
        own = problem.lowest(level)
        own[~live] = np.inf
        tight = np.isfinite(level) & (level <= problem.lowest_crossing(own) * (1 + _SATURATED))
        freeze = live & problem.crossing(tight)
        if not freeze.any():  # only variables crossing no resource are left: they get 0
            return rates
        x[freeze] = own[freeze]
        rates[problem.ids[freeze]] = own[freeze]
        live &= ~freeze
        n_live = int(live.sum())
        if not n_live:
            return rates
        if n_live <= len(live) // 2:
            problem = problem.restrict(live, x)
            live = np.ones(n_live, dtype=bool)
            x = np.zeros(n_live)


def _routes_for(G, src, dst, routing, seed, qps, pxn):
    """Compile ``G`` and route the flows; ``None`` takes the graph's routing and qps."""
    require_seed(seed)
    routing = graph_attr(G, "routing") if routing is None else routing
    qps = graph_attr(G, "qps") if qps is None else qps
    compiled = compile_fabric(G)
    return compiled, route(compiled, src, dst, routing=routing, qps=qps, seed=seed, pxn=pxn)


def flow_rates(G, src, dst, *, routing=None, seed=0, qps=None, pxn=True):
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
    pxn : bool
        NCCL's PXN (default, as in NCCL); False routes every flow through its source GPU's
        own NIC (``NCCL_PXN_DISABLE=1``). See :func:`fabric.routing.route`.

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
    _, routes = _routes_for(G, src, dst, routing, seed, qps, pxn)
    rates, _ = max_min_rates(routes)
    return np.bincount(routes.owner, rates, minlength=routes.n_flows)


def link_utilization(G, src, dst, *, routing=None, seed=0, qps=None, pxn=True):
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
    compiled, routes = _routes_for(G, src, dst, routing, seed, qps, pxn)
    _, load = max_min_rates(routes)
    util = np.bincount(routes.resource_edge, load, minlength=len(compiled.bandwidth)) / compiled.bandwidth
    names = compiled.nodes
    return {
        (names[compiled.edge_src[e]], names[compiled.edge_dst[e]]): float(util[e]) for e in np.flatnonzero(util > 0)
    }


def completion_times(G, src, dst, nbytes, *, routing=None, seed=0, qps=None, pxn=True, rtol=FLUID_RTOL):
    """Seconds until each flow of ``nbytes[i]`` bytes has arrived, all starting at once.

    A fluid simulation: flows share bandwidth max-min fairly; whenever one finishes, the
    rates of the rest are solved again. Each flow's path latency is added at the end.
    Under ECMP a flow's bytes are split evenly over its queue pairs and it ends with the
    last of them. Flows due within ``rtol`` of each other finish together (:data:`FLUID_RTOL`),
    so the cost grows with the log of the spread of finishing times, not with the flow count.

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(2)
    >>> t = fabric.completion_times(G, [0, 1], [8, 8], [50e9, 25e9])
    >>> t.round(3).tolist()    # 400 Gb/s = 50 GB/s shared, then alone
    [1.5, 1.0]
    """
    _, routes = _routes_for(G, src, dst, routing, seed, qps, pxn)
    return fluid_completion(routes, nbytes, rtol=rtol)


def fluid_completion(routes, nbytes, *, solve=None, rtol=FLUID_RTOL):
    """Completion time of each flow of ``routes`` carrying ``nbytes`` (see :func:`completion_times`).

    ``solve(routes, active)`` returns per-variable rates; None is the max-min solver (another
    solver can be passed to compare, as tests/benchmarks/check_solver.py does). ``rtol``: see
    :data:`FLUID_RTOL`; 0 solves again after every single finish (exact, quadratic in the
    number of distinct finishing times).
    """
    solve = solve or (lambda r, active: max_min_rates(r, active)[0])
    try:
        nbytes = np.asarray(nbytes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidSpec(f"nbytes={nbytes!r:.80} must be numbers of bytes, one per flow") from None
    if nbytes.shape != (routes.n_flows,):
        raise InvalidSpec(f"nbytes must have one size per flow ({routes.n_flows}), got shape {nbytes.shape}")
    if (nbytes < 0).any() or not np.isfinite(nbytes).all():
        i = np.flatnonzero((nbytes < 0) | ~np.isfinite(nbytes))[0]
        raise InvalidSpec(f"nbytes[{i}]={nbytes[i]!r} must be a finite number >= 0")
    require_non_negative("rtol", rtol)
    if rtol >= 1:
        raise InvalidSpec(f"rtol={rtol!r} must be < 1")
    per_var = np.bincount(routes.owner, minlength=routes.n_flows)
    remaining = nbytes[routes.owner] / per_var[routes.owner]
    finish = np.zeros(len(remaining))
    active = remaining > 0
    now = 0.0
    while active.any():  # each pass finishes at least one variable: at most len(remaining) passes
        rates = solve(routes, active)
        left = np.full(len(remaining), np.inf)
        left[active] = remaining[active] / rates[active]
        # Every variable due within the window finishes at its own time under these rates;
        # the others keep their rates across it (the approximation rtol bounds).
        window = left.min() + rtol * (now + left.min())
        done = active & ((left <= window) | (remaining <= 1e-9 * np.maximum(nbytes[routes.owner], 1.0)))
        finish[done] = now + left[done]
        step = left[done].max()
        remaining[active] -= rates[active] * step
        now += step
        active &= ~done
    end = np.zeros(routes.n_flows)
    np.maximum.at(end, routes.owner, finish)
    return end + np.where(nbytes > 0, routes.latency, 0.0)
