"""Evaluating algorithm steps on a fabric: the flow level (routed, max-min fair) and the
analytic level (closed forms), with concurrent groups sharing links.

An algorithm describes a collective as :class:`Step` objects: sets of concurrent flows
repeated some number of times. At the flow level every step is routed on the compiled
fabric and solved; identical repeats are solved once. Link capacities are scaled by the
efficiency of their medium (:class:`collectives.params.CommParams`), so the solver sees
what NCCL achieves, not line rate.
"""

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from fabric.flows import fluid_completion, max_min_rates
from fabric.routing import Routes, route
from fabric.schema import MEDIA, graph_attr

from collectives.result import Phase

LEVELS = ("analytic", "flow")
LOCKSTEP, FLUID = "lockstep", "fluid"


@dataclass(frozen=True, eq=False)
class Step:
    """Concurrent flows of one algorithm step.

    Attributes
    ----------
    name : str
    bytes_per_flow : float
    repeats : float
        Identical rounds run back to back (the 2(n-1) steps of a ring); fractional when
        a sample of rounds stands for all of them.
    analytic_rate : float
        Per-flow bytes/s of the closed form (no contention from other groups).
    src, dst : ndarray or None
        GPU ranks of GPU-to-GPU flows.
    links : tuple or None
        In-switch flows (NVLS, SHARP) as ``(variable, edge id, coefficient)`` arrays and a
        variable count: ``(var, edge, coef, n_vars)``.
    mode : str
        ``"lockstep"``: a round ends when its slowest flow does (pipelined rings, trees);
        ``"fluid"``: flows share bandwidth until each is done (all-to-all).
    """

    name: str
    bytes_per_flow: float
    repeats: float
    analytic_rate: float
    src: np.ndarray = None
    dst: np.ndarray = None
    links: tuple = None
    mode: str = LOCKSTEP

    @property
    def flows(self):
        n = 0 if self.src is None else len(self.src)
        return n + (0 if self.links is None else self.links[3])


@dataclass(frozen=True, eq=False)
class Context:
    """What an algorithm needs: the graph, its compiled arrays, the group, the message."""

    G: object
    compiled: object
    group: object
    collective: str
    nbytes: float
    params: object
    root: int = 0
    routing: str = None
    qps: int = None
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def nvlink_rate(self):
        """Effective NVLink bytes/s per GPU per direction."""
        return graph_attr(self.G, "gpu").nvlink_bandwidth * self.params.nvlink_efficiency

    def nic_rate(self, ranks):
        """Effective scale-out bytes/s of the slowest NIC path (PCIe and NIC link) of ``ranks``."""
        C = self.compiled
        ranks = np.asarray(ranks)
        up = C.edge_ids(C.nic[ranks], C.leaf[ranks])
        pcie = C.edge_ids(C.gpu[ranks], C.nic[ranks])
        if (up < 0).any() or (pcie < 0).any():
            return 0.0
        eff = self.params.efficiency
        nic = C.bandwidth[up].min() * eff(MEDIA[C.medium[up[0]]])
        host = C.bandwidth[pcie].min() * eff("pcie")
        return min(nic, host)


def endpoint_rate(ctx, src, dst):
    """Closed-form per-flow rate of concurrent flows, limited only at their endpoints.

    Each GPU's NVLink port and each NIC is shared equally by the flows crossing it; the
    fabric between NICs is taken as non-blocking. Cross-rail flows on rail-optimized
    fabrics cross NVLink to the destination-rail GPU first (PXN), as the flow level
    routes them. The slowest flow's rate is returned (steps run in lockstep).
    """
    C = ctx.compiled
    src, dst = np.asarray(src), np.asarray(dst)
    n = C.n_gpus
    dom = np.where(C.domain >= 0, C.domain, -1 - np.arange(n))
    intra = dom[src] == dom[dst]
    pxn = ~intra & (C.leaf_rail[src] >= 0) & (C.leaf_rail[dst] >= 0) & (C.leaf_rail[src] != C.leaf_rail[dst])
    # The GPU of src's domain on dst's rail, where PXN applies.
    key = dom.astype(np.int64) * (C.leaf_rail.max() + 2) + C.leaf_rail
    order = np.argsort(key)
    found = np.searchsorted(key[order], dom[src] * (C.leaf_rail.max() + 2) + C.leaf_rail[dst])
    found = np.minimum(found, n - 1)
    peer = np.where(pxn & (key[order][found] == dom[src] * (C.leaf_rail.max() + 2) + C.leaf_rail[dst]), order[found], src)
    pxn &= peer != src
    nic_src = np.where(pxn, peer, src)

    def count(ranks):
        return np.bincount(ranks, minlength=n).astype(np.float64)

    nvl_out = count(np.concatenate([src[intra], src[pxn]]))
    nvl_in = count(np.concatenate([dst[intra], peer[pxn]]))
    nic_out, nic_in = count(nic_src[~intra]), count(dst[~intra])
    nvl = ctx.nvlink_rate()
    rate = np.full(len(src), np.inf)
    rate[intra] = np.minimum(nvl / nvl_out[src[intra]], nvl / nvl_in[dst[intra]])
    if (~intra).any():
        nic = ctx.nic_rate(np.unique(np.concatenate([nic_src[~intra], dst[~intra]])))
        rate[~intra] = np.minimum(nic / nic_out[nic_src[~intra]], nic / nic_in[dst[~intra]])
        rate[pxn] = np.minimum(rate[pxn], np.minimum(nvl / nvl_out[src[pxn]], nvl / nvl_in[peer[pxn]]))
    return float(rate.min())


def _edge_efficiency(compiled, params):
    per_medium = np.array([params.efficiency(m) for m in MEDIA])
    return per_medium[compiled.medium]


def _merged_routes(ctx, steps):
    """One Routes for the steps of all concurrent groups; returns it and each step's variables."""
    C = ctx.compiled
    pairs = [s for s in steps if s.src is not None]
    owners = []
    if pairs:
        src = np.concatenate([s.src for s in pairs])
        dst = np.concatenate([s.dst for s in pairs])
        routing = ctx.routing or graph_attr(ctx.G, "routing")
        qps = ctx.qps or graph_attr(ctx.G, "qps")
        routes = route(C, src, dst, routing=routing, qps=qps, seed=ctx.seed)
    else:
        routes = Routes(
            n_flows=0,
            owner=np.zeros(0, np.int64),
            host=sp.csr_matrix((len(C.bandwidth), 0)),
            cls=None,
            class_of=np.zeros(0, np.int64),
            capacity=C.bandwidth.copy(),
            resource_edge=np.arange(len(C.bandwidth)),
            latency=np.zeros(0),
        )
    capacity = routes.capacity * _edge_efficiency(C, ctx.params)[routes.resource_edge]
    # Map each step's flows to variables of the merged routes.
    flow_start = 0
    n_var = len(routes.owner)
    extra_rows, extra_cols, extra_vals = [], [], []
    lanes_of_edge = _lanes(routes, len(C.bandwidth))
    for s in steps:
        if s.src is not None:
            flows = np.arange(flow_start, flow_start + len(s.src))
            owners.append(np.flatnonzero(np.isin(routes.owner, flows)))
            flow_start += len(s.src)
        else:
            owners.append(np.zeros(0, np.int64))
        if s.links is not None:
            var, edge, coef, count = s.links
            first, n_lanes = lanes_of_edge
            lane_count = n_lanes[edge]
            rows = np.repeat(first[edge], lane_count) + np.arange(lane_count.sum()) - np.repeat(
                np.cumsum(lane_count) - lane_count, lane_count
            )
            extra_rows.append(rows)
            extra_cols.append(np.repeat(var + n_var, lane_count))
            extra_vals.append(np.repeat(coef / lane_count, lane_count))
            new = np.arange(n_var, n_var + count)
            owners[-1] = np.concatenate([owners[-1], new])
            n_var += count
    if extra_rows:
        add = sp.csr_matrix(
            (np.concatenate(extra_vals), (np.concatenate(extra_rows), np.concatenate(extra_cols))),
            shape=(routes.host.shape[0], n_var),
        )
        host = sp.hstack([routes.host, sp.csr_matrix((routes.host.shape[0], n_var - routes.host.shape[1]))])
        host = (host + add).tocsr()
        n_extra = n_var - len(routes.owner)
        routes = replace(
            routes,
            n_flows=routes.n_flows + n_extra,
            owner=np.concatenate([routes.owner, routes.n_flows + np.arange(n_extra)]),
            host=host,
            class_of=np.concatenate([routes.class_of, np.full(n_extra, -1)]),
            latency=np.concatenate([routes.latency, np.zeros(n_extra)]),
        )
    return replace(routes, capacity=capacity), owners


def _lanes(routes, n_edges):
    """First resource and resource count of each edge (cables under ECMP, 1 otherwise)."""
    counts = np.bincount(routes.resource_edge, minlength=n_edges)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return first, counts


def solve_steps(ctx, steps_per_group):
    """Bandwidth time of each step of each group, groups running concurrently.

    Parameters
    ----------
    ctx : Context
    steps_per_group : list of list of Step
        Every group lists the same number of steps; step k of all groups runs at once.

    Returns
    -------
    list of list of Phase
        Per group, per step.
    """
    counts = {len(s) for s in steps_per_group}
    if len(counts) != 1:
        raise ValueError("concurrent groups must have the same number of steps")
    phases = [[] for _ in steps_per_group]
    for k in range(counts.pop()):
        steps = [group_steps[k] for group_steps in steps_per_group]
        routes, owners = _merged_routes(ctx, steps)
        fluid = any(s.mode == FLUID for s in steps)
        if fluid:
            per_flow = np.zeros(routes.n_flows)
            for s, own in zip(steps, owners):
                per_flow[routes.owner[own]] = s.bytes_per_flow
            done = fluid_completion(replace(routes, latency=np.zeros(routes.n_flows)), per_flow)
        else:
            rates, _ = max_min_rates(routes)
        for g, (s, own) in enumerate(zip(steps, owners)):
            if fluid:
                t = float(done[np.unique(routes.owner[own])].max()) * s.repeats
                rate = s.bytes_per_flow * s.repeats / t if t > 0 else float("inf")
            else:
                per_flow = np.bincount(routes.owner[own], rates[own], minlength=routes.n_flows)
                rate = float(per_flow[np.unique(routes.owner[own])].min())
                t = s.repeats * s.bytes_per_flow / rate
            phases[g].append(Phase(s.name, s.flows, s.bytes_per_flow, s.repeats, rate, t))
    return phases


def analytic_phases(steps):
    """Phases from the closed-form rates of ``steps``."""
    return [
        Phase(s.name, s.flows, s.bytes_per_flow, s.repeats, s.analytic_rate, s.repeats * s.bytes_per_flow / s.analytic_rate)
        for s in steps
    ]
