"""Evaluating algorithm steps on a fabric: the flow level (routed, max-min fair) and the
analytic level (closed forms), with concurrent groups sharing links.

An algorithm describes a collective as :class:`Step` objects: sets of concurrent flows
repeated some number of times. At the flow level every step is routed on the compiled
fabric and solved; identical repeats are solved once, and a round met again on the same
compiled fabric is not routed again. Link capacities are scaled by the
efficiency of their medium (:class:`collectives.params.CommParams`), so the solver sees
what NCCL achieves, not line rate.
"""

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from fabric.parts import model_spec
from fabric.errors import NoRoute
from fabric.flows import fluid_completion, max_min_rates
from fabric.routing import Routes, route
from fabric.schema import MEDIA, edge_bandwidth, gpu_name, graph_attr

from collectives.array_memo import read_only
from collectives.errors import InvalidSpec
from collectives.groups import checked_ranks
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
    src: np.ndarray = None
    dst: np.ndarray = None
    links: tuple = None
    mode: str = LOCKSTEP

    @property
    def flows(self):
        n = 0 if self.src is None else len(self.src)
        return n + (0 if self.links is None else self.links[3])


@dataclass(frozen=True)
class Profile:
    """The link rates the closed forms use, read from the graph in O(1).

    Attributes
    ----------
    nvlink : float
        Effective NVLink bytes/s per GPU per direction.
    nic : float
        Effective scale-out bytes/s of one GPU (its NIC's links, or PCIe if slower).
    nvlink_line : float
        NVLink line rate (NVLS applies its own efficiency to it).
    rail_optimized : bool
        Whether leaves carry rails, so cross-rail traffic takes PXN's NVLink hop.
    nvlink_generation : int
        Of the GPU (NVLink SHARP needs 4 or later).
    in_network_reduction : bool
        Whether the leaf and the switches above it can reduce (InfiniBand SHARP).
    multinode_nvlink : bool
        Whether the NVLink domain spans several hosts (GB200 NVL72's compute trays,
        joined by NVLink switch trays), where NVLS runs at its own efficiency.
    nic_ports : int
        Switches the GPU's NIC is cabled to (2 with dual top-of-rack, one per plane).
    """

    nvlink: float
    nic: float
    nvlink_line: float
    rail_optimized: bool
    nvlink_generation: int
    in_network_reduction: bool
    multinode_nvlink: bool = False
    nic_ports: int = 1


def profile(G, rank, params):
    """Rates around GPU ``rank`` (all GPUs of a fabric are alike in the builders).

    Examples
    --------
    >>> import fabric
    >>> from collectives.params import DEFAULT_PARAMS
    >>> p = profile(fabric.dgx_superpod(1), 0, DEFAULT_PARAMS)
    >>> round(p.nvlink / 1e9, 1), round(p.nic / 1e9, 1), p.rail_optimized, p.in_network_reduction
    (361.8, 47.0, True, True)
    """
    gpu = graph_attr(G, "gpu")
    node = gpu_name(rank)
    nic = next((v for v in G.successors(node) if G.nodes[v].get("kind") == "nic"), None)
    # a NIC with several ports (dual top-of-rack, one per plane) sends over all of them
    leaves = [] if nic is None else [v for v in G.successors(nic) if G.nodes[v].get("kind") == "switch"]
    if not leaves:
        nic_rate, rail, reduces = 0.0, False, False
    else:
        nic_rate = min(
            sum(edge_bandwidth(G, nic, leaf) * params.efficiency(G.edges[nic, leaf]["medium"]) for leaf in leaves),
            edge_bandwidth(G, node, nic) * params.efficiency("pcie"),
        )
        rail = "rail" in G.nodes[leaves[0]]
        tree = leaves + [v for leaf in leaves for v in G.successors(leaf) if G.nodes[v].get("kind") == "switch"]
        reduces = all(_reduces_in_network(G, G.nodes[v].get("model")) for v in tree)
    switch = next((v for v in G.successors(node) if G.nodes[v].get("kind") == "nvswitch"), None)
    domain = 0 if switch is None else sum(1 for v in G.successors(switch) if G.nodes[v].get("kind") == "gpu")
    return Profile(
        gpu.nvlink_bandwidth * params.nvlink_efficiency, nic_rate, gpu.nvlink_bandwidth, rail,
        gpu.nvlink_generation, reduces, domain > graph_attr(G, "gpus_per_node"), max(len(leaves), 1),
    )


def _reduces_in_network(G, model):
    """Whether switch ``model`` of ``G`` (its own spec or the catalog's) reduces in the
    network; an unknown model does not."""
    try:
        return model_spec(G, "switch", model).in_network_reduction
    except InvalidSpec:
        return False


def check_uplinks(G, ranks):
    """``NoRoute`` unless every GPU of ``ranks`` has a NIC cabled to a switch: a group spanning
    NVLink domains leaves them through the scale-out network, which the closed forms read at
    one GPU only. (A network split above the leaves is seen at the flow level only.)

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(2)
    >>> check_uplinks(G, [0, 8])
    >>> G.remove_node("nic8")
    >>> check_uplinks(G, [0, 8])
    Traceback (most recent call last):
    ...
    fabric.errors.NoRoute: GPU rank 8 has no NIC cabled to a switch: the group cannot leave its NVLink domain
    """
    succ, nodes = G.succ, G.nodes
    for rank in ranks:
        node = gpu_name(int(rank))
        if not any(nodes[nic].get("kind") == "nic" and any(nodes[sw].get("kind") == "switch" for sw in succ[nic])
                   for nic in succ[node]):
            raise NoRoute(f"GPU rank {int(rank)} has no NIC cabled to a switch: the group cannot leave its NVLink "
                          "domain")


@dataclass(frozen=True)
class UniformFabric:
    """What the analytic level needs of a fabric whose GPUs are all alike: small and
    picklable, so a parameter search ships it to worker processes instead of the graph.

    Built by :func:`uniform_fabric`; NVLink domains are consecutive blocks of
    ``gpus_per_domain`` ranks.
    """

    gpu: object
    n_gpus: int
    gpus_per_domain: int
    profile: Profile
    network_watts: float
    name: str
    slowdowns: tuple = None  # (pattern key, slowdown) pairs probed on the graph (collectives.patterns)
    sites: tuple = None  # the site of each rank, where the fabric joins several (fabric.join_sites)


def site_of_ranks(G):
    """The site of every GPU rank of a fabric that joins sites (:func:`fabric.join_sites`),
    as a tuple; None for a fabric of one site."""
    if "sites" not in G.graph:
        return None
    site = {d["rank"]: d["site"] for _, d in G.nodes(data=True) if d.get("kind") == "gpu"}
    return tuple(site[rank] for rank in range(len(site)))


def uniform_fabric(G, params, network_watts, ranks=None):
    """Summarise ``G`` for the analytic level; ``InvalidSpec`` if its domains are not
    consecutive equal blocks of ranks (then use the graph itself).

    ``ranks``: summarise the job on those GPUs of ``G`` (checked and distinct) instead of
    the whole fabric; they must fill each NVLink domain they touch equally, in rank order
    (64 GPUs of each NVL72 rack, say). ``network_watts`` is the job's share then.

    Examples
    --------
    >>> import fabric
    >>> from collectives.params import DEFAULT_PARAMS
    >>> u = uniform_fabric(fabric.nvl72(2), DEFAULT_PARAMS, 0.0)
    >>> u.n_gpus, u.gpus_per_domain
    (144, 72)
    >>> job = [r for r in range(144) if r % 72 < 64]
    >>> uniform_fabric(fabric.nvl72(2), DEFAULT_PARAMS, 0.0, ranks=job).gpus_per_domain
    64
    """
    domains = {}
    for node, data in G.nodes(data=True):
        if data.get("kind") == "gpu":
            domains[data["rank"]] = data["domain"]
    job = list(range(len(domains))) if ranks is None else [int(r) for r in ranks]
    if ranks is not None:
        if checked_ranks(job, lambda: len(domains), lambda r: r < len(domains)).tolist() != job:
            raise InvalidSpec(f"ranks must be in increasing order, got {ranks!r:.80}")
    of = [domains[r] for r in job]
    n = len(of)
    per = sum(1 for d in of if d == of[0])
    if not n or n % per or any(of[i] != of[i - i % per] or (i % per == 0 and i and of[i] == of[i - 1])
                               for i in range(n)):
        raise InvalidSpec("the job's NVLink domains are not equal blocks of consecutive ranks")
    sites = site_of_ranks(G)
    if sites is not None:
        sites = tuple(sites[r] for r in job)
    return UniformFabric(graph_attr(G, "gpu"), n, per, profile(G, job[0], params), network_watts,
                         G.graph.get("name", ""), sites=sites)


@dataclass(frozen=True, eq=False)
class Context:
    """What an algorithm needs: the graph, the group, the message, the rates.

    ``compiled`` is the compiled fabric at the flow level and None at the analytic level.
    """

    G: object
    group: object
    collective: str
    nbytes: float
    params: object
    profile: Profile
    compiled: object = None
    root: int = 0
    routing: str = None
    seed: int = 0
    extra: dict = field(default_factory=dict)


def phase(name, flows, bytes_per_flow, repeats, rate):
    """A closed-form phase: ``repeats`` rounds of ``bytes_per_flow`` at ``rate``; ``NoRoute``
    when data must move at no rate (the GPUs' NIC or leaf is gone from the graph)."""
    if bytes_per_flow and not rate > 0:
        raise NoRoute(f"phase {name!r} moves {bytes_per_flow:g} bytes per flow at rate {rate!r}: the group's GPUs "
                      "have no link to carry it (a NIC, leaf or cable removed from the graph?)")
    return Phase(name, flows, bytes_per_flow, repeats, rate, repeats * bytes_per_flow / rate if bytes_per_flow else 0.0)


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
        qps = graph_attr(ctx.G, "qps")
        routes = route(C, src, dst, routing=routing, qps=qps, seed=ctx.seed)
    else:
        routes = Routes(
            n_flows=0,
            owner=np.zeros(0, np.int64),
            host=sp.csr_matrix((len(C.bandwidth), 0)),
            cls=(),
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
            # route() numbers variables in flow order (owner is non-decreasing)
            lo, hi = np.searchsorted(routes.owner, [flow_start, flow_start + len(s.src)])
            owners.append(np.arange(lo, hi))
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
            far_latency=None if routes.far_latency is None else np.concatenate([routes.far_latency,
                                                                                 np.zeros(n_extra)]),
        )
    return replace(routes, capacity=capacity), owners


def _lanes(routes, n_edges):
    """First resource and resource count of each edge (cables under ECMP, 1 otherwise)."""
    counts = np.bincount(routes.resource_edge, minlength=n_edges)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return first, counts


# Bytes of a background flow in a fluid step: it outlasts every flow of the pattern it loads.
_ENDLESS = 1e30


def solve_steps(ctx, steps_per_group, background=None):
    """Bandwidth time of each step of each group, groups running concurrently.

    Parameters
    ----------
    ctx : Context
    steps_per_group : list of list of Step
        Every group lists the same number of steps; step k of all groups runs at once.
    background : tuple of ndarray or None
        ``(src, dst)`` GPU ranks of flows that never end (other jobs' traffic on the same
        fabric): routed with every step, they take their max-min share of each link.

    Returns
    -------
    list of list of Phase
        Per group, per step.
    """
    counts = {len(s) for s in steps_per_group}
    if len(counts) != 1:
        raise InvalidSpec(f"concurrent groups must run the same number of steps, got {sorted(counts)}: give groups of "
                          "one size and shape (the same algorithm must fit them all)")
    load = [] if background is None or not len(background[0]) else \
        [Step("background", _ENDLESS, 1, np.asarray(background[0]), np.asarray(background[1]))]
    phases = [[] for _ in steps_per_group]
    for k in range(counts.pop()):
        steps = [group_steps[k] for group_steps in steps_per_group]
        fluid = any(s.mode == FLUID for s in steps)
        last, slowest, far = _solved_round(ctx, steps, load, fluid)
        for g, s in enumerate(steps):
            if fluid and s.bytes_per_flow > 0:
                t = float(last[g]) * s.repeats
                rate = s.bytes_per_flow * s.repeats / t
            else:  # lockstep, or nothing to move: the rate the flows would get
                rate = float(slowest[g])
                t = s.repeats * s.bytes_per_flow / rate
            wait = s.repeats * float(far[g]) if far is not None and s.bytes_per_flow > 0 else 0.0
            phases[g].append(Phase(s.name, s.flows, s.bytes_per_flow, s.repeats, rate, t, wait))
    return phases


def _round_key(ctx, steps, load, fluid):
    """What a round's solution depends on, hashed: the flows of every step (and of the
    background), in-switch flows, routing, queue pairs, hash seed, link efficiencies, and
    for a fluid round each step's bytes (a lockstep round's rates do not depend on them)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((ctx.routing or graph_attr(ctx.G, "routing"), graph_attr(ctx.G, "qps"), ctx.seed,
                   tuple(ctx.params.efficiency(m) for m in MEDIA), fluid)).encode())
    for s in steps + load:
        moved = s.bytes_per_flow if fluid else s.bytes_per_flow > 0
        h.update(repr((s.mode, moved, s.src is None, s.links is None)).encode())
        for part in (s.src, s.dst, *(s.links or ())):
            if np.isscalar(part):
                h.update(repr(part).encode())
            else:
                part = np.ascontiguousarray(part)
                h.update(part.dtype.str.encode() + repr(part.shape).encode() + part.tobytes())
    return "solved round", h.digest()


def _solved_round(ctx, steps, load, fluid):
    """Per group: the last completion (fluid rounds), the slowest rate and the long-haul
    wait of one round of concurrent steps; kept on the compiled fabric, so the same flows
    met again (a data-parallel reduce-scatter and all-gather route the same rounds) are
    not routed and solved twice."""
    key = _round_key(ctx, steps, load, fluid)
    cache = ctx.compiled.cache
    if key not in cache:
        routes, owners = _merged_routes(ctx, steps + load)
        if fluid:
            per_flow = np.zeros(routes.n_flows)
            for s, own in zip(steps + load, owners):
                per_flow[routes.owner[own]] = s.bytes_per_flow
            done = fluid_completion(replace(routes, latency=np.zeros(routes.n_flows)), per_flow)
        owners = owners[:len(steps)]  # the background is timed by nobody
        # the max-min rates: of every lockstep step, and of fluid steps that move nothing
        rates = max_min_rates(routes)[0] if not fluid or any(s.bytes_per_flow <= 0 for s in steps) else None
        # per group, the last of its flows to finish and the slowest of its flows' rates
        # (variables are split between the groups' steps, so one sum over all serves all)
        last = _per_group(done, routes.owner, owners, np.maximum) if fluid else None
        slowest = None if rates is None else \
            _per_group(np.bincount(routes.owner, rates, minlength=routes.n_flows), routes.owner, owners, np.minimum)
        # across sites, each round of a step waits for its slowest flow's long-haul propagation
        # (a lockstep round cannot start before the last one's data has arrived)
        far = None if routes.far_latency is None else _per_group(routes.far_latency, routes.owner, owners, np.maximum)
        cache[key] = tuple(None if a is None else read_only(a) for a in (last, slowest, far))
    return cache[key]


def _per_group(per_flow, owner, owners, reduce):
    """``reduce`` (``np.minimum`` or ``np.maximum``) of ``per_flow`` over the flows of each
    group's variables ``owners[g]`` (``owner``: the flow of each variable), in one pass."""
    sizes = np.fromiter((len(own) for own in owners), np.int64, len(owners))
    if not sizes.all():
        raise InvalidSpec(f"group {int(np.argmin(sizes))} of a step has no flow to time")
    flows = owner[np.concatenate(owners)]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return reduce.reduceat(per_flow[flows], starts)
