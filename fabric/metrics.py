"""Whole-fabric metrics: bisection bandwidth, hop diameter, summary (the bill of materials:
:mod:`fabric.materials`).

Each function reads the graph as it is now (see :mod:`fabric.schema`) and compiles what
it needs to numpy/scipy arrays inside the call, so a topology changed with the networkx
API is measured afresh.

Examples
--------
>>> import fabric
>>> from fabric.metrics import bisection_bandwidth, hop_diameter
>>> G = fabric.dgx_superpod(4, gpu="H100")
>>> bisection_bandwidth(G) == 16 * fabric.NICS["cx7"].bandwidth  # 2 hosts x 8 GPUs per half
True
>>> hop_diameter(G)
6
"""

import numbers
from dataclasses import asdict, dataclass
from itertools import count

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import maximum_flow, shortest_path

from fabric.checks import require_int, require_non_negative, require_seed
from fabric.errors import InvalidSpec, NoRoute
from fabric.graph_arrays import GraphArrays
from fabric.next_hops import ranges
from fabric.schema import KINDS, edge_attr, gpu_nodes, graph_attr, node_values, tier_label
from fabric.materials import bill_of_materials
from fabric.tables import format_rate, format_watts, html_table, text_table
from fabric.units import Mbps

# scipy's max-flow solver takes integer capacities (int32 per edge): bandwidths are
# rounded to the nearest whole FLOW_UNIT, which is exact for every catalog link speed.
FLOW_UNIT = 1 * Mbps
_INT32_MAX = np.iinfo(np.int32).max


# ----------------------------------------------------------------------------- compile


def _capacities(G, arrays):
    """Edge capacities in whole FLOW_UNITs, in G.edges order."""
    try:
        bandwidth = arrays.column("bandwidth")
    except (KeyError, TypeError, ValueError):  # a missing value or not a number: name the first such edge
        edges = list(G.edges(data="bandwidth"))
        for u, v, b in edges:
            if b is None:
                edge_attr(G, u, v, "bandwidth")  # raises if the attribute is missing
            if not isinstance(b, numbers.Real):
                raise InvalidSpec(f"bandwidth of edge ({u!r}, {v!r})={b!r:.80} must be a number") from None
        bandwidth = np.array([b for _, _, b in edges], dtype=float)  # numpy and other Real types
    bad = ~(np.isfinite(bandwidth) & (bandwidth >= 0))
    if bad.any():
        u, v, b = list(G.edges(data="bandwidth"))[int(np.argmax(bad))]
        edge_attr(G, u, v, "bandwidth")  # raises if the attribute is missing
        require_non_negative(f"bandwidth of edge ({u!r}, {v!r})", b)  # raises: nan, inf or < 0
    units = np.rint(bandwidth / FLOW_UNIT)  # compared as floats: past 2**63 an int64 wraps
    if units.size and units.max() > _INT32_MAX:
        u, v, b = list(G.edges(data="bandwidth"))[int(np.argmax(units))]
        raise InvalidSpec(
            f"bandwidth={b!r} of edge ({u!r}, {v!r}) must be <= {_INT32_MAX * FLOW_UNIT:g} bytes/s "
            "(the max-flow solver's int32 capacity in 1 Mb/s units)"
        )
    return units.astype(np.int64)


def _host_groups(G, gpus):
    """GPU ranks (``gpus``: every GPU node, by rank) grouped by host, hosts in order of their
    lowest rank: ``(ranks, starts)``, host ``h`` holding ``ranks[starts[h]:starts[h + 1]]``."""
    host = node_values(G, gpus, "host")
    # each host numbered by the position of its first GPU (setdefault keeps the first), then 0..h-1
    first = np.fromiter(map({}.setdefault, host, count()), np.int64, len(host))
    labels, group = np.unique(first, return_inverse=True)
    ranks = np.argsort(group.ravel(), kind="stable")
    return ranks, np.searchsorted(group.ravel()[ranks], np.arange(len(labels) + 1))


# ----------------------------------------------------------------------------- bisection


def _max_flow(n, src, dst, cap, senders, receivers, out_cap, in_cap):
    """Max flow from a super-source feeding ``senders`` to a super-sink fed by ``receivers``.

    A sender's source edge carries its total out-capacity and a receiver's sink edge its
    total in-capacity: exactly what unlimited terminal edges would allow. They are clipped
    to int32 for the solver, which only matters for a GPU moving over 2 Pb/s.
    """
    source, sink = n, n + 1
    rows = np.concatenate([src, np.full(senders.size, source), receivers])
    cols = np.concatenate([dst, senders, np.full(receivers.size, sink)])
    terminals = np.minimum(np.concatenate([out_cap[senders], in_cap[receivers]]), _INT32_MAX)
    data = np.concatenate([cap, terminals]).astype(np.int32)
    graph = sp.csr_array((data, (rows, cols)), shape=(n + 2, n + 2))
    return int(maximum_flow(graph, source, sink).flow_value)


def bisection_bandwidth(G, *, samples=0, seed=0):
    """Bisection bandwidth: the least traffic one half of the hosts can send the other.

    For a split of the hosts into halves A and B, a super-source feeds every GPU of A and
    every GPU of B drains into a super-sink; the max flow (scipy's Dinic,
    :func:`scipy.sparse.csgraph.maximum_flow`) over all edges, NVLink and PCIe included
    (an NVL72 rack split by the cut lends its NVLink), is the A->B bandwidth. It is computed in both directions (the graph is directed and a
    user may change one direction of a cable) and the smaller is kept. Capacities are
    rounded to whole 1 Mb/s units (:data:`FLOW_UNIT`), as the solver is integral.

    The splits are the host-order split (the first ``h // 2`` hosts in rank order against
    the rest; with an odd number of hosts the second half holds the extra host, so the
    flow is bounded by the ``h // 2`` hosts of the first) and ``samples`` random splits
    with the same sizes, drawn with ``seed``. The result is the minimum over them.

    When it is exact: the true bisection bandwidth is the minimum over *all* balanced
    host splits, so this is an upper bound on it. On the symmetric Clos networks the
    builders make, the host-order split puts whole leaf groups and pods on each side, so
    all cross traffic must climb to the top tier, the worst balanced cut: the value is
    exact there (non-blocking fat trees; oversubscribed ones with an even number of full
    pods or leaf groups). After edits that break the symmetry (a failed switch or link),
    raise ``samples`` to tighten the bound.

    Parameters
    ----------
    G : networkx.DiGraph
        A fabric with at least two hosts.
    samples : int
        Random balanced host splits to try besides the host-order split.
    seed : int
        Seed of the random splits.

    Returns
    -------
    float
        Bytes/s.

    Examples
    --------
    >>> import fabric
    >>> from fabric.units import Gbps
    >>> G = fabric.dgx_superpod(64, gpu="H100")   # non-blocking: 256 GPUs per half at 400 Gb/s
    >>> bisection_bandwidth(G) / (400 * Gbps)
    256.0
    >>> G.remove_node("spine0")                    # each leaf loses 4 of its 32 uplinks
    >>> bisection_bandwidth(G, samples=2) / (400 * Gbps)
    224.0
    """
    require_int("samples", samples, minimum=0)
    require_seed(seed)
    gpus = gpu_nodes(G)
    hosts = _host_groups(G, gpus)
    if len(hosts[1]) - 1 < 2:
        raise InvalidSpec(f"hosts={len(hosts[1]) - 1} must be >= 2 for a bisection")
    return _bisection(G, GraphArrays(G), gpus, hosts, samples, seed)


def _bisection(G, arrays, gpus, hosts, samples, seed):
    """:func:`bisection_bandwidth` on ``G`` read into ``arrays``; ``hosts``: :func:`_host_groups`."""
    index, (src, dst) = arrays.index, arrays.endpoints
    cap = _capacities(G, arrays)
    keep = src != dst  # self-loops carry no flow
    src, dst, cap = src[keep], dst[keep], cap[keep]
    n = len(index)
    out_cap = np.bincount(src, weights=cap, minlength=n).astype(np.int64)
    in_cap = np.bincount(dst, weights=cap, minlength=n).astype(np.int64)
    ranks, starts = hosts
    position = arrays.positions(gpus)[ranks]  # node of each, by host
    n_hosts = len(starts) - 1
    rng = np.random.default_rng(seed)
    orders = [np.arange(n_hosts)] + [rng.permutation(n_hosts) for _ in range(samples)]
    half = n_hosts // 2

    def gpus_of(chosen):
        return position[ranges(starts[chosen], starts[chosen + 1] - starts[chosen])[1]]

    best = None
    for order in orders:
        a, b = gpus_of(order[:half]), gpus_of(order[half:])
        for senders, receivers in ((a, b), (b, a)):
            flow = _max_flow(n, src, dst, cap, senders, receivers, out_cap, in_cap)
            best = flow if best is None else min(best, flow)
    return best * FLOW_UNIT


# ----------------------------------------------------------------------------- hop diameter


def _refined_colors(G, src, dst):
    """Colour refinement (1-dimensional Weisfeiler-Leman) of the directed graph.

    Starts from node kinds and splits colours by the multisets of in- and out-neighbour
    colours until stable. Nodes that a kind-preserving automorphism maps onto each other
    always end with the same colour. Multisets are hashed as sums of random 64-bit codes.
    """
    kind_code = {kind: i for i, kind in enumerate(KINDS)}
    colors = np.array([kind_code.get(kind, len(KINDS)) for _, kind in G.nodes(data="kind")], dtype=np.int64)
    colors = np.unique(colors, return_inverse=True)[1].reshape(-1)
    count = int(colors.max()) + 1 if colors.size else 0
    rng = np.random.default_rng(0)
    while True:
        code = rng.integers(0, 2**64, size=count, dtype=np.uint64)
        out_hash = np.zeros(colors.size, np.uint64)
        in_hash = np.zeros(colors.size, np.uint64)
        np.add.at(out_hash, src, code[colors[dst]])  # wraps modulo 2**64, as intended
        np.add.at(in_hash, dst, code[colors[src]])
        # Distinct (colour, out-hash, in-hash) triples, numbered in sorted order: a lexsort of
        # the three columns, several times faster than np.unique(axis=0) on their rows.
        order = np.lexsort((in_hash, out_hash, colors))
        new = np.ones(colors.size, dtype=bool)
        new[1:] = ((np.diff(colors[order]) != 0) | (np.diff(out_hash[order]) != 0)
                   | (np.diff(in_hash[order]) != 0))
        refined = np.empty(colors.size, np.int64)
        refined[order] = np.cumsum(new) - 1
        refined_count = int(refined.max()) + 1 if refined.size else 0
        if refined_count == count:
            return colors
        colors, count = refined, refined_count


def hop_diameter(G):
    """Longest shortest path between two GPUs, in edges (links crossed).

    GPU -> NIC -> leaf -> NIC -> GPU is 4; through a spine it is 6; GPUs of one server
    are 2 apart (GPU -> NVSwitch -> GPU). Edge attributes are ignored: this counts hops,
    not latency.

    How it stays fast on large Clos graphs: two breadth-first searches per pivot (a first
    and a last switch of the top tier, to it and from it) bound every GPU's eccentricity,
    ``ecc(a) <= d(a, pivot) + max_b d(pivot, b)``; a search from GPU 0 gives a path of
    that length on a Clos, where the longest GPU paths turn at the top tier, and the
    result is then exact after five searches. Where bounds stay above the longest path
    found (an irregular or damaged graph), a search runs from one representative GPU per
    *position*, a colour of the colour refinement (1-WL) of the graph started from node
    kinds, in order of the colours' bounds, until every bound left is reached. GPUs
    related by an automorphism of the graph share a colour and have the same
    eccentricity; on a graph where two GPUs share a colour without being symmetric
    (possible in principle; not seen on Clos networks, where the tests compare against a
    search from every GPU, also after random link and switch failures) the result is a
    lower bound.

    Parameters
    ----------
    G : networkx.DiGraph

    Returns
    -------
    int
        Edges on the longest shortest GPU-to-GPU path; 0 with a single GPU.

    Raises
    ------
    NoRoute
        If some GPU cannot reach another.

    Examples
    --------
    >>> import fabric
    >>> hop_diameter(fabric.dgx_superpod(64))    # GPU, NIC, leaf, spine, leaf, NIC, GPU
    6
    >>> hop_diameter(fabric.dgx_superpod(512))   # three tiers: up to the core and down
    8
    """
    return _diameter(G, GraphArrays(G), gpu_nodes(G))


def _bfs(adjacency, start, targets):
    """Hops from node ``start`` to each of ``targets`` (inf where unreachable)."""
    return shortest_path(adjacency, unweighted=True, indices=[start])[0, targets]


def _pivot_bounds(G, index, adjacency, gpus):
    """Upper bounds on every GPU's eccentricity through pivots (a first and a last switch
    of the top tier): ``ecc(a) <= d(a, p) + max_b d(p, b)``, inf where a pivot is out of
    reach. On a Clos the longest GPU paths turn at the top tier, so the bound is the
    diameter itself and few or no representatives need a search of their own."""
    top = {}
    for node, data in G.nodes(data=True):
        if data.get("kind") == "switch" and isinstance(data.get("tier"), int):
            top.setdefault(data["tier"], []).append(index[node])
    bound = np.full(len(gpus), np.inf)
    if not top:
        return bound
    highest = top[max(top)]
    reverse = adjacency.T.tocsr()
    for pivot in dict.fromkeys((highest[0], highest[-1])):
        to_pivot, from_pivot = _bfs(reverse, pivot, gpus), _bfs(adjacency, pivot, gpus)
        bound = np.minimum(bound, to_pivot + from_pivot.max())
    return bound


def _diameter(G, arrays, gpu_names):
    """:func:`hop_diameter` on ``G`` read into ``arrays``."""
    index, (src, dst) = arrays.index, arrays.endpoints
    gpus = arrays.positions(gpu_names)
    if gpus.size < 2:
        return 0
    n = len(index)
    adjacency = sp.csr_array((np.ones(src.size), (src, dst)), shape=(n, n))
    def eccentricity(start):
        distance = _bfs(adjacency, start, gpus)
        if np.isinf(distance).any():
            nodes = list(G)
            raise NoRoute(f"GPU {nodes[start]!r} cannot reach GPU {nodes[gpus[np.argmax(np.isinf(distance))]]!r}")
        return int(distance.max())

    bound = _pivot_bounds(G, index, adjacency, gpus)
    diameter = eccentricity(gpus[0])
    if bound.max() <= diameter:  # every GPU bounded by a path already found (a Clos, usually)
        return diameter
    colors = _refined_colors(G, src, dst)
    first, color_of_gpu = np.unique(colors[gpus], return_index=True, return_inverse=True)[1:]
    color_bound = np.zeros(len(first))
    np.maximum.at(color_bound, color_of_gpu.ravel(), bound)
    # Representatives in order of their bound, until every bound left is reached.
    for color in np.argsort(-color_bound, kind="stable"):
        if color_bound[color] <= diameter:
            break
        diameter = max(diameter, eccentricity(gpus[first[color]]))
    return diameter


# ----------------------------------------------------------------------------- summary


@dataclass(frozen=True, kw_only=True)
class Summary:
    """The headline figures of a fabric.

    Attributes
    ----------
    name : str
    gpus, hosts : int
    gpu : str
        GPU model.
    switches : dict
        ``{tier: count}``.
    transport, routing : str
    bisection_bandwidth : float or None
        Bytes/s, as :func:`bisection_bandwidth` (host-order split, no samples); None
        with a single host.
    bisection_per_gpu : float or None
        Bytes/s per GPU of the sending half (the first ``hosts // 2`` hosts): the NIC
        speed on a non-blocking fat tree.
    hop_diameter : int
        Edges, as :func:`hop_diameter`.
    network_watts : float
        As :func:`bill_of_materials`.
    """

    name: str
    gpus: int
    hosts: int
    gpu: str
    switches: dict
    transport: str
    routing: str
    bisection_bandwidth: float
    bisection_per_gpu: float
    hop_diameter: int
    network_watts: float

    def to_dict(self):
        """The fields as a plain dict."""
        return asdict(self)

    def _rows(self):
        return [
            ("name", self.name),
            ("GPUs", f"{self.gpus:,} {self.gpu}"),
            ("hosts", f"{self.hosts:,}"),
            *[(f"{tier_label(tier)} switches", f"{n:,}") for tier, n in self.switches.items()],
            ("transport", self.transport),
            ("routing", self.routing),
            ("bisection bandwidth", format_rate(self.bisection_bandwidth)),
            ("bisection per GPU", format_rate(self.bisection_per_gpu)),
            ("hop diameter", f"{self.hop_diameter} links"),
            ("network power", format_watts(self.network_watts)),
        ]

    def __str__(self):
        return text_table("Fabric summary", self._rows())

    def _repr_html_(self):
        return html_table("Fabric summary", self._rows())


def summary(G):
    """Headline figures of a fabric: size, switches, bisection, diameter, network power.

    Parameters
    ----------
    G : networkx.DiGraph

    Returns
    -------
    Summary

    Examples
    --------
    >>> import fabric
    >>> s = summary(fabric.dgx_superpod(31, gpu="H100"))
    >>> s.gpus, s.hosts, s.switches, s.hop_diameter
    (248, 31, {1: 8, 2: 4}, 6)
    >>> print(s)                    # doctest: +ELLIPSIS
    Fabric summary
    --------------
    name                    dgx_superpod: 248 x H100, cx7, 2-tier qm9700, adaptive
    GPUs                    248 H100
    hosts                   31
    tier 1 (leaf) switches  8
    tier 2 (spine) switches 4
    ...
    bisection per GPU       50 GB/s (400 Gb/s)
    hop diameter            6 links
    ...
    """
    gpus = gpu_nodes(G)
    hosts = _host_groups(G, gpus)
    n_hosts = len(hosts[1]) - 1
    arrays = GraphArrays(G)
    bom = bill_of_materials(G, arrays=arrays)
    bisection = _bisection(G, arrays, gpus, hosts, 0, 0) if n_hosts >= 2 else None
    sending = int(hosts[1][n_hosts // 2])  # the GPUs of the first n_hosts // 2 hosts
    return Summary(
        name=str(graph_attr(G, "name")),
        gpus=len(gpus),
        hosts=n_hosts,
        gpu=graph_attr(G, "gpu").name,
        switches={tier: sum(models.values()) for tier, models in bom.switches.items()},
        transport=graph_attr(G, "transport"),
        routing=graph_attr(G, "routing"),
        bisection_bandwidth=bisection,
        bisection_per_gpu=None if bisection is None else bisection / sending,
        hop_diameter=_diameter(G, arrays, gpus),
        network_watts=bom.network_watts,
    )
