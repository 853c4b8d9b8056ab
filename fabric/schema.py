"""The graph schema: every node, edge and graph attribute a fabric carries.

A fabric is a :class:`networkx.DiGraph`. A full-duplex cable is two directed edges.
This module is the one place the attribute names are defined; builders write them,
algorithms read them through the accessors below, which raise
:class:`~fabric.errors.InvalidSpec` naming the node or edge when one is missing.

Nodes
-----
``kind``
    ``"gpu"``, ``"nic"``, ``"nvswitch"`` or ``"switch"``.
GPU nodes (named ``gpu{rank}``)
    ``rank`` (global, 0..n-1, host-major: host h, local GPU i -> ``h * gpus_per_node + i``),
    ``host``, ``local_rank``, ``rail`` (the rail its NIC is cabled to, = ``local_rank``),
    ``domain`` (the NVLink domain: the host for 8-GPU servers, the rack for NVL72).
NIC nodes (named ``nic{rank}``, the NIC of GPU ``rank``)
    ``host``, ``rail``, ``model`` (a key of :data:`fabric.catalog.NICS` or of ``G.graph["specs"]["nic"]``).
    A NIC cabled to several switches has one port on each (dual top-of-rack, one per
    plane); flows split their bytes evenly over the ports both ends have, port to port.
NVSwitch nodes (named ``nvswitch{domain}``; one node stands for all NVSwitch chips of a domain)
    ``domain``, ``model`` (``"nvlink{generation}"``).
Switch nodes (named ``leaf{i}``, ``spine{i}``, ``core{i}``, ``tier{t}-{i}`` above)
    ``tier`` (1 leaf/ToR, 2 spine, 3 core, 4 and up beyond), ``model`` (a key of
    :data:`fabric.catalog.SWITCHES` or of ``G.graph["specs"]["switch"]``), ``pod`` where pods
    exist, ``rail`` on rail-optimized leaves, ``plane`` on multi-plane fabrics (each plane a
    Clos of its own; a NIC has at most one port per plane).

Edges
-----
``bandwidth``
    bytes/s in the edge's direction (the sum over its parallel cables).
``latency``
    seconds to cross the edge, including the forwarding latency of the node it enters
    when that node is a switch or NVSwitch.
``medium``
    ``"nvlink"``, ``"pcie"``, ``"infiniband"`` or ``"ethernet"``.
``links``
    how many parallel cables the edge stands for (a DiGraph has one edge per node
    pair; ECMP hashes over the cables of an edge).
``distance_km``
    only on long-haul links between sites (:func:`fabric.join_sites`): the fibre route
    length; collectives charge such a link's latency to every round that crosses it.

Graph (``G.graph``)
-------------------
``gpu`` (a :class:`fabric.catalog.GPUSpec`), ``gpus_per_node``, ``transport``
(``"infiniband"`` or ``"ethernet"``), ``routing`` (``"adaptive"`` or ``"ecmp"``), ``qps``
(queue pairs per connection, for ECMP hashing), ``name``, ``builder`` (the builder's
name) and ``params`` (the arguments it was called with). Optional: ``specs``, the switch
and NIC specs the nodes' ``model`` names that are not catalog entries
(:func:`fabric.parts.own_specs`); ``preset`` (:func:`fabric.preset`); ``facility_power`` and
``power_budget`` (:func:`fabric.cluster_for_power`); ``sites`` (:func:`fabric.join_sites`:
per site its name, GPUs and first rank; every node then carries its ``site`` and switch
names are prefixed ``s{site}-``, with one ``s{site}-border`` switch per site).

Examples
--------
>>> import fabric
>>> G = fabric.dgx_superpod(4, gpu="H100")
>>> node_attr(G, "gpu9", "host")
1
>>> edge_attr(G, "gpu0", "nic0", "medium")
'pcie'
>>> del G.nodes["gpu9"]["host"]
>>> node_attr(G, "gpu9", "host")
Traceback (most recent call last):
...
fabric.errors.InvalidSpec: node 'gpu9' has no attribute 'host'
"""

import math
import numbers
from itertools import repeat
from operator import eq, itemgetter, methodcaller

import numpy as np

from fabric.errors import InvalidSpec

KINDS = ("gpu", "nic", "nvswitch", "switch")
MEDIA = ("nvlink", "pcie", "infiniband", "ethernet")
TRANSPORTS = ("infiniband", "ethernet")
ROUTINGS = ("adaptive", "ecmp")

NODE_ATTRS = {
    "gpu": ("kind", "rank", "host", "local_rank", "rail", "domain"),
    "nic": ("kind", "host", "rail", "model"),
    "nvswitch": ("kind", "domain", "model"),
    "switch": ("kind", "tier", "model"),
}
EDGE_ATTRS = ("bandwidth", "latency", "medium", "links")
GRAPH_ATTRS = ("gpu", "gpus_per_node", "transport", "routing", "qps", "name", "builder", "params")

SWITCH_TIER_NAMES = {1: "leaf", 2: "spine", 3: "core"}


def tier_label(tier):
    """``"tier 1 (leaf)"``: a switch tier by number and name.

    Examples
    --------
    >>> tier_label(2), tier_label(5)
    ('tier 2 (spine)', 'tier 5')
    """
    return f"tier {tier} ({SWITCH_TIER_NAMES[tier]})" if tier in SWITCH_TIER_NAMES else f"tier {tier}"


def gpu_name(rank):
    """Node name of the GPU with global ``rank``."""
    return f"gpu{rank}"


def nic_name(rank):
    """Node name of the NIC serving GPU ``rank``."""
    return f"nic{rank}"


def nvswitch_name(domain):
    """Node name of the NVSwitch fabric of NVLink ``domain``."""
    return f"nvswitch{domain}"


def switch_name(tier, index):
    """Node name of switch ``index`` in ``tier``: ``leaf3``, ``spine0``, ``core7``, ``tier4-2``."""
    return f"{SWITCH_TIER_NAMES.get(tier, f'tier{tier}-')}{index}"


def node_attr(G, node, name):
    """``G.nodes[node][name]``, or ``InvalidSpec`` naming the node and the attribute."""
    try:
        data = G.nodes[node]
    except KeyError:
        raise InvalidSpec(f"node {node!r} is not in the graph") from None
    try:
        return data[name]
    except KeyError:
        raise InvalidSpec(f"node {node!r} has no attribute {name!r}") from None


def edge_attr(G, u, v, name):
    """``G.edges[u, v][name]``, or ``InvalidSpec`` naming the edge and the attribute."""
    try:
        data = G.edges[u, v]
    except KeyError:
        raise InvalidSpec(f"edge ({u!r}, {v!r}) is not in the graph") from None
    try:
        return data[name]
    except KeyError:
        raise InvalidSpec(f"edge ({u!r}, {v!r}) has no attribute {name!r}") from None


# The slowest link a fabric may have, bytes/s: below it times overflow (a 1e-300 B/s link makes
# a step take inf seconds); no real link is slower than a byte per second.
MIN_BANDWIDTH = 1.0


def is_bandwidth(value):
    """Whether ``value`` is a usable edge bandwidth: a finite real number (not a bool) of at
    least :data:`MIN_BANDWIDTH` bytes/s.

    Examples
    --------
    >>> is_bandwidth(50e9), is_bandwidth(float("inf")), is_bandwidth("fast"), is_bandwidth(10**400)
    (True, False, False, False)
    """
    try:
        return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value) \
            and value >= MIN_BANDWIDTH
    except OverflowError:  # an integer too large for a float
        return False


def edge_bandwidth(G, u, v):
    """``G.edges[u, v]["bandwidth"]`` checked: a finite number of at least
    :data:`MIN_BANDWIDTH` bytes/s, or ``InvalidSpec`` naming the edge and the value.

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(1)
    >>> edge_bandwidth(G, "gpu0", "nic0") > 0
    True
    >>> G.edges["gpu0", "nic0"]["bandwidth"] = "fast"
    >>> edge_bandwidth(G, "gpu0", "nic0")
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: edge ('gpu0', 'nic0') bandwidth='fast' must be a finite number >= 1 bytes/s
    """
    value = edge_attr(G, u, v, "bandwidth")
    if not is_bandwidth(value):
        raise InvalidSpec(
            f"edge ({u!r}, {v!r}) bandwidth={value!r} must be a finite number >= {MIN_BANDWIDTH:g} bytes/s")
    return float(value)


def graph_attr(G, name):
    """``G.graph[name]``, or ``InvalidSpec`` naming the attribute (or saying ``G`` is no graph).

    ``G.graph["gpu"]`` must be a GPU spec (``fabric.GPUS[name]`` or a ``GPUSpec``), not a name.
    """
    graph = getattr(G, "graph", None)
    if not isinstance(graph, dict):
        raise InvalidSpec(f"G={G!r:.80} must be a fabric graph (a networkx.DiGraph from a builder)")
    try:
        value = graph[name]
    except KeyError:
        raise InvalidSpec(f"graph has no attribute {name!r} (G.graph[{name!r}])") from None
    if name == "gpu" and not hasattr(value, "bf16_flops"):
        raise InvalidSpec(f"G.graph['gpu']={value!r:.80} must be a GPU spec (fabric.GPUS[name]), not a name")
    return value


def node_items(G):
    """``(node, attribute dict)`` for every node, read-only, straight from networkx's storage.

    A third of the cost of ``G.nodes(data=True)``; for passes over whole 100k-node graphs.
    """
    return G._node.items()


def successor_items(G):
    """``(node, {successor: edge attribute dict})`` for every node, read-only, straight from
    networkx's storage (a quarter of the cost of ``G.edges(data=True)`` on large graphs)."""
    return G._succ.items()


def gpu_count(G):
    """How many nodes of ``G`` are GPUs (``kind == "gpu"``).

    Examples
    --------
    >>> import fabric
    >>> gpu_count(fabric.dgx_superpod(2, gpu="H100"))
    16
    """
    return sum(1 for _, data in node_items(G) if data.get("kind") == "gpu")


def gpu_nodes(G):
    """GPU node names ordered by rank; ranks must be exactly 0..n-1.

    Examples
    --------
    >>> import fabric
    >>> gpu_nodes(fabric.dgx_superpod(2, gpu="H100"))[:3]
    ['gpu0', 'gpu1', 'gpu2']
    """
    fast = _gpu_nodes_by_arrays(G)
    if fast is not None:
        return fast
    by_rank = {}
    for node, data in node_items(G):
        kind = data.get("kind")
        if kind is None:
            raise InvalidSpec(f"node {node!r} has no attribute 'kind'")
        if kind == "gpu":
            rank = data["rank"] if "rank" in data else node_attr(G, node, "rank")
            if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
                raise InvalidSpec(f"node {node!r} rank={rank!r:.80} must be an integer")
            if rank in by_rank:
                raise InvalidSpec(f"rank={rank} is carried by both {by_rank[rank]!r} and {node!r}")
            by_rank[rank] = node
    n = len(by_rank)
    missing = sorted(set(range(n)) - set(by_rank))
    if missing:
        raise InvalidSpec(f"GPU ranks must be 0..{n - 1}; rank {missing[0]} is missing")
    return [by_rank[r] for r in range(n)]


def node_kinds(G):
    """Every node's ``kind`` in node order, read without a Python loop over the nodes;
    ``InvalidSpec`` naming a node that has no ``kind`` (an explicit None is kept).

    Examples
    --------
    >>> import fabric
    >>> node_kinds(fabric.dgx_superpod(2)).count("gpu")
    16
    """
    kinds = list(map(methodcaller("get", "kind"), G._node.values()))
    if None in kinds:
        for node, kind in zip(G._node, kinds):
            if kind is None:
                node_attr(G, node, "kind")  # raises where the attribute is missing
    return kinds


def node_values(G, nodes, name):
    """Attribute ``name`` of each of ``nodes``, read without a Python loop; ``InvalidSpec``
    naming the first node without it.

    Examples
    --------
    >>> import fabric
    >>> node_values(fabric.dgx_superpod(2), ["gpu0", "gpu9"], "host")
    [0, 1]
    """
    try:
        return list(map(itemgetter(name), map(G._node.__getitem__, nodes)))
    except KeyError:
        return [node_attr(G, node, name) for node in nodes]


def _gpu_nodes_by_arrays(G):
    """:func:`gpu_nodes` without a Python loop over the nodes; None where a node needs the
    checks that name it (a kind of None, a rank not an int, ranks not exactly 0..n-1)."""
    datas = list(G._node.values())
    kinds = node_kinds(G)
    if None in kinds:
        return None
    is_gpu = np.fromiter(map(eq, kinds, repeat("gpu")), bool, len(kinds))
    where = np.flatnonzero(is_gpu)
    gpu_datas = [datas[i] for i in where.tolist()]
    try:
        if set(map(type, map(itemgetter("rank"), gpu_datas))) - {int}:
            return None
    except KeyError:
        return None
    ranks = np.fromiter(map(itemgetter("rank"), gpu_datas), np.int64, len(gpu_datas))
    if len(ranks) and (ranks.min() < 0 or ranks.max() >= len(ranks) or len(np.unique(ranks)) < len(ranks)):
        return None
    names = list(G._node)
    by_rank = np.empty(len(ranks), np.int64)
    by_rank[ranks] = where
    return [names[i] for i in by_rank.tolist()]


def ranks_array(field, ranks, n_gpus):
    """``ranks`` as an int64 array, each checked to lie in ``0..n_gpus-1``."""
    arr = np.asarray(ranks)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidSpec(f"{field} must be a 1-D sequence of integer GPU ranks, got {ranks!r}")
    arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= n_gpus)
    if bad.any():
        raise InvalidSpec(f"{field} contains rank {int(arr[bad][0])}, outside 0..{n_gpus - 1}")
    return arr
