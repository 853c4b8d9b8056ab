"""A fabric graph compiled to numpy arrays for routing and flow solving.

Compiled inside each call from the graph as it is now, so users' networkx edits
(``G.remove_node("spine3")``) are always seen; nothing is cached on the graph.
"""

from dataclasses import dataclass, field
from itertools import repeat
from operator import eq

import numpy as np
import scipy.sparse as sp

from fabric.checks import require_int, require_non_negative
from fabric.errors import InvalidSpec
from fabric.graph_arrays import GraphArrays
from fabric.schema import (
    EDGE_ATTRS, MEDIA, MIN_BANDWIDTH, edge_attr, edge_bandwidth, gpu_nodes, node_attr, node_kinds, node_values,
    successor_items,
)

_NONE = -1


@dataclass(frozen=True, eq=False)
class CompiledFabric:
    """Arrays describing a fabric; indices are positions in ``nodes`` and edge ids.

    Attributes
    ----------
    nodes : list
        Node names; a node's index is its position.
    edge_src, edge_dst : ndarray of int64
        Endpoints of each directed edge, sorted by (src, dst).
    bandwidth, latency : ndarray of float64
        Per edge, bytes/s and seconds.
    links : ndarray of int64
        Parallel cables per edge.
    medium : ndarray of int8
        Per edge, the position of its medium in :data:`fabric.schema.MEDIA`.
    gpu : ndarray of int64
        Node index of each GPU rank.
    domain : ndarray of int64
        NVSwitch node index of each GPU rank's NVLink domain (-1 if none).
    host : ndarray of int64
        The ``host`` of each GPU rank (a DGX node, an NVL72 compute tray).
    nic : ndarray of int64
        NIC node index of each GPU rank (-1 if none).
    leaf : ndarray of int64
        Switch node index of the rank's NIC's first port (-1 if none).
    port_leaf : ndarray of int64, shape (n_gpus, ports)
        Switch node index of each port of the rank's NIC (-1 where none). A NIC cabled
        to several switches (dual top-of-rack, or one port per plane) has several ports:
        slot ``j`` is the leaf of ``plane=j`` where leaves carry a ``plane``, else the
        NIC's j-th leaf in node order. One port: a single column equal to ``leaf``.
    leaf_rail : ndarray of int64
        The ``rail`` of that leaf on rail-optimized fabrics (-1 where leaves have none).
    switch : ndarray of int64
        Node indices of all switches; ``switch_pos[node]`` is a node's position in it.
    switch_graph : scipy.sparse.csr_matrix
        Switch-to-switch adjacency (positions in ``switch``), data = edge id + 1.
    switch_tier : ndarray of int64
        The ``tier`` of each switch (positions in ``switch``; leaves are 1).
    far_latency : ndarray or None
        Per edge, its latency where it is a long-haul link between sites (an edge with
        ``distance_km``, :func:`fabric.join_sites`), else 0; None on a fabric of one site.
    cache : dict
        Routing tables already derived from these arrays (distances, next hops), reused
        by later calls on the same compiled fabric; never stored on the graph.
    """

    nodes: list
    edge_src: np.ndarray
    edge_dst: np.ndarray
    bandwidth: np.ndarray
    latency: np.ndarray
    links: np.ndarray
    medium: np.ndarray
    gpu: np.ndarray
    domain: np.ndarray
    host: np.ndarray
    nic: np.ndarray
    leaf: np.ndarray
    leaf_rail: np.ndarray
    port_leaf: np.ndarray
    switch: np.ndarray
    switch_pos: np.ndarray
    switch_graph: sp.csr_matrix
    switch_tier: np.ndarray
    far_latency: np.ndarray = None
    cache: dict = field(default_factory=dict)

    @property
    def n_gpus(self):
        return len(self.gpu)

    def edge_ids(self, u, v):
        """Edge ids of (u[i], v[i]) node-index pairs; -1 where there is no edge."""
        u = np.asarray(u, dtype=np.int64)
        v = np.asarray(v, dtype=np.int64)
        n = len(self.nodes)
        if "edge keys" not in self.cache:  # sorted, as the edges are sorted by (src, dst)
            self.cache["edge keys"] = self.edge_src * n + self.edge_dst
        keys = self.cache["edge keys"]
        want = u * n + v
        pos = np.searchsorted(keys, want)
        pos = np.minimum(pos, len(keys) - 1)
        found = (keys[pos] == want) & (u >= 0) & (v >= 0)
        return np.where(found, pos, _NONE)


def compile_fabric(G, *, arrays=None):
    """Compile ``G`` into a :class:`CompiledFabric`; ``arrays``: ``G`` already read
    (:class:`fabric.graph_arrays.GraphArrays`) by a caller that reads it for more.

    Raises ``InvalidSpec`` naming the node or edge when a required attribute is missing,
    a bandwidth is not positive, a GPU has more than one NIC or NVSwitch, or the leaves of a
    NIC's ports mix planes and no planes (or share one).

    Examples
    --------
    >>> import fabric
    >>> C = compile_fabric(fabric.dgx_superpod(4))
    >>> C.n_gpus, len(C.switch)
    (32, 12)
    """
    nodes = list(G.nodes)
    arrays = arrays or GraphArrays(G)
    index = arrays.index
    kinds = node_kinds(G)
    media = {name: i for i, name in enumerate(MEDIA)}
    try:
        src, dst, bandwidth, latency, links, medium = _edge_arrays(arrays, media)
        valid = _values_valid(bandwidth, latency, links)
    except Exception:  # noqa: BLE001 - the edge-by-edge loop below names the offending edge
        valid = False
    if not valid:
        src, dst, bandwidth, latency, links, medium = _edge_arrays_checked(G, index, media)
    links = links.astype(np.int64)
    order = _by_source_then_target(src, dst, len(nodes))
    src, dst, bandwidth, latency, links = src[order], dst[order], bandwidth[order], latency[order], links[order]
    medium = medium[order]

    gpus = gpu_nodes(G)
    gpu = arrays.positions(gpus)
    attached = _attachments_by_arrays(G, gpus, gpu, nodes, kinds, src, dst)
    domain, nic, port_leaf = attached if attached is not None else _attachments(G, gpus, index, nodes, kinds)
    first = np.argmax(port_leaf >= 0, axis=1)
    leaf = port_leaf[np.arange(len(gpus)), first]
    leaves, which = np.unique(leaf, return_inverse=True)  # each leaf read once, not once per GPU
    rails = np.full(len(leaves), _NONE, dtype=np.int64)
    for i, v in enumerate(leaves.tolist()):
        rail = G.nodes[nodes[v]].get("rail") if v >= 0 else None
        if rail is not None:
            rails[i] = require_int(f"node {nodes[v]!r} rail", rail, minimum=0)
    leaf_rail = rails[which.ravel()]

    # the switches' node positions (index numbers the nodes in order)
    switch = np.flatnonzero(np.fromiter(map(eq, kinds, repeat("switch")), bool, len(kinds)))
    switch_tier = np.array([require_int(f"node {nodes[i]!r} tier", node_attr(G, nodes[i], "tier"), minimum=1)
                            for i in switch], dtype=np.int64)
    switch_pos = np.full(len(nodes), _NONE, dtype=np.int64)
    switch_pos[switch] = np.arange(len(switch))
    between = (switch_pos[src] >= 0) & (switch_pos[dst] >= 0)
    ids = np.flatnonzero(between)
    switch_graph = sp.csr_matrix(
        (ids + 1, (switch_pos[src[ids]], switch_pos[dst[ids]])), shape=(len(switch), len(switch))
    )
    return CompiledFabric(
        nodes=nodes,
        edge_src=src,
        edge_dst=dst,
        bandwidth=bandwidth,
        latency=latency,
        links=links,
        medium=medium,
        gpu=gpu,
        domain=domain,
        host=_hosts(G, gpus),
        nic=nic,
        leaf=leaf,
        leaf_rail=leaf_rail,
        port_leaf=port_leaf,
        switch=switch,
        switch_pos=switch_pos,
        switch_graph=switch_graph,
        switch_tier=switch_tier,
        far_latency=_far_latency(G, index, src, dst, latency),
    )


def _hosts(G, gpus):
    """The ``host`` of each GPU; checked one by one (naming the node) unless every one is a
    plain int >= 0."""
    try:
        hosts = node_values(G, gpus, "host")
        if set(map(type, hosts)) <= {int} and min(hosts, default=0) >= 0:
            return np.array(hosts, dtype=np.int64)
    except InvalidSpec:  # a GPU without a host: the loop below names the first bad one in rank order
        pass
    return np.array([require_int(f"node {g!r} host", node_attr(G, g, "host"), minimum=0) for g in gpus],
                    dtype=np.int64)


def _by_source_then_target(src, dst, n):
    """The order sorting edges by (src, dst) where ``src`` is already non-decreasing (edges
    in ``G.edges`` order): each node's targets sorted in place in a CSR, short rows, instead
    of a sort of all the edges."""
    if len(src) and (np.diff(src) < 0).any():
        return np.lexsort((dst, src))
    indptr = np.concatenate(([0], np.cumsum(np.bincount(src, minlength=n))))
    rows = sp.csr_matrix((np.arange(len(src)), dst, indptr), shape=(n, n))
    rows.has_sorted_indices = False
    rows.sort_indices()
    return rows.data


def _far_latency(G, index, src, dst, latency):
    """Per edge (in compiled order) its latency if it is a long-haul link, else 0; None when the
    graph joins no sites (the edges are not read again then)."""
    if "sites" not in G.graph:
        return None
    n = len(index)
    far = [index[u] * n + index[v] for u, v, d in G.edges(data=True) if d.get("distance_km") is not None]
    if not far:
        return None
    return np.where(np.isin(src * n + dst, far), latency, 0.0)


def _attachments(G, gpus, index, nodes, kinds):
    """Per GPU rank: its NVSwitch node, its NIC node and its NIC's leaves by port slot,
    node by node, raising ``InvalidSpec`` on a GPU with two NVSwitches or NICs."""
    kind = dict(zip(nodes, kinds))
    successors = dict(successor_items(G))
    domain = np.full(len(gpus), _NONE, dtype=np.int64)
    nic = np.full(len(gpus), _NONE, dtype=np.int64)
    ports = {}
    for rank, g in enumerate(gpus):
        nvswitches = [v for v in successors[g] if kind[v] == "nvswitch"]
        nics = [v for v in successors[g] if kind[v] == "nic"]
        if len(nvswitches) > 1 or len(nics) > 1:
            raise InvalidSpec(f"node {g!r} connects to {len(nvswitches)} NVSwitch and {len(nics)} NIC nodes; at most 1 each")
        if nvswitches:
            domain[rank] = index[nvswitches[0]]
        if nics:
            nic[rank] = index[nics[0]]
            leaves = [v for v in successors[nics[0]] if kind[v] == "switch"]
            if leaves:
                ports[rank] = _port_slots(G, nics[0], leaves, index)
    width = max(map(len, ports.values()), default=1)
    port_leaf = np.full((len(gpus), width), _NONE, dtype=np.int64)
    for rank, slots in ports.items():
        port_leaf[rank, :len(slots)] = slots
    return domain, nic, port_leaf


def _attachments_by_arrays(G, gpus, gpu, nodes, kinds, src, dst):
    """:func:`_attachments` on the sorted edge arrays; None where the node-by-node reading
    is needed (a GPU with two NVSwitches or NICs, a NIC shared by GPUs, leaves with planes)."""
    codes = {"gpu": 0, "nvswitch": 1, "nic": 2, "switch": 3}
    kinds = np.fromiter(map(codes.get, kinds, repeat(-1)), np.int64, len(nodes))
    rank_of = np.full(len(nodes), _NONE, dtype=np.int64)
    rank_of[gpu] = np.arange(len(gpus))
    found = []
    for target in (1, 2):  # the GPU's NVSwitch, its NIC
        e = np.flatnonzero((rank_of[src] >= 0) & (kinds[dst] == target))
        if np.bincount(rank_of[src[e]], minlength=len(gpus)).max(initial=0) > 1:
            return None
        node = np.full(len(gpus), _NONE, dtype=np.int64)
        node[rank_of[src[e]]] = dst[e]
        found.append(node)
    domain, nic = found
    owner = np.full(len(nodes), _NONE, dtype=np.int64)  # the GPU rank of each NIC
    has_nic = np.flatnonzero(nic >= 0)
    if len(np.unique(nic[has_nic])) < len(has_nic):
        return None
    owner[nic[has_nic]] = has_nic
    e = np.flatnonzero((owner[src] >= 0) & (kinds[dst] == 3))  # NIC to leaf, by NIC then leaf
    leaves = np.unique(dst[e])
    if any(G.nodes[nodes[v]].get("plane") is not None for v in leaves.tolist()):
        return None
    rank = owner[src[e]]
    begins = np.flatnonzero(np.r_[True, rank[1:] != rank[:-1]]) if len(e) else np.zeros(0, np.int64)
    slot = np.arange(len(e)) - np.repeat(begins, np.diff(np.r_[begins, len(e)]))
    port_leaf = np.full((len(gpus), int(slot.max(initial=0)) + 1), _NONE, dtype=np.int64)
    port_leaf[rank, slot] = dst[e]
    return domain, nic, port_leaf


def _port_slots(G, nic, leaves, index):
    """Node indices of the leaves of ``nic``'s ports by slot (-1 for a slot without one):
    by ``plane`` where the leaves carry one (so that slot j is plane j on every NIC, even
    with a cable of another plane cut), else in node order."""
    planes = [G.nodes[v].get("plane") for v in leaves]
    if all(p is None for p in planes):
        return sorted(index[v] for v in leaves)
    if any(p is None for p in planes):
        raise InvalidSpec(f"node {nic!r} is cabled to switches with and without a plane: "
                          f"{', '.join(f'{v!r} (plane={p})' for v, p in zip(leaves, planes))}")
    planes = [require_int(f"node {v!r} plane", p, minimum=0) for v, p in zip(leaves, planes)]
    if len(set(planes)) < len(planes):
        raise InvalidSpec(f"node {nic!r} has two ports on plane {max(planes, key=planes.count)}: one port per "
                          "plane (switches {})".format(", ".join(repr(v) for v in leaves)))
    slots = [_NONE] * (max(planes) + 1)
    for v, p in zip(leaves, planes):
        slots[p] = index[v]
    return slots


def _edge_arrays(arrays, media):
    """Edge endpoints and attributes as arrays, in ``G.edges`` order; raises on any bad edge."""
    src, dst = arrays.endpoints
    # links read as floats, so that 1.5 is caught (an int64 read would truncate it)
    bandwidth, latency, links = (arrays.column(name) for name in ("bandwidth", "latency", "links"))
    medium = arrays.column("medium", np.int8, codes=media)
    if (medium < 0).any():
        raise KeyError("medium")  # an unknown medium: the edge-by-edge read names the edge
    return src, dst, bandwidth, latency, links, medium


def _values_valid(bandwidth, latency, links):
    """Whether every edge's bandwidth is finite and >= MIN_BANDWIDTH, latency finite and >= 0,
    and links a whole number >= 1 (vectorised; the edge-by-edge check names a bad one)."""
    return bool(np.isfinite(bandwidth).all() and (bandwidth >= MIN_BANDWIDTH).all()
                and np.isfinite(latency).all() and (latency >= 0).all()
                and (links >= 1).all() and (links == np.floor(links)).all())


def _edge_arrays_checked(G, index, media):
    """As :func:`_edge_arrays`, edge by edge, raising ``InvalidSpec`` naming a bad edge."""
    m = G.number_of_edges()
    src = np.empty(m, dtype=np.int64)
    dst = np.empty(m, dtype=np.int64)
    bandwidth = np.empty(m)
    latency = np.empty(m)
    links = np.empty(m, dtype=np.int64)
    medium = np.empty(m, dtype=np.int8)
    for i, (u, v, d) in enumerate(G.edges(data=True)):
        for name in EDGE_ATTRS:
            edge_attr(G, u, v, name)
        if not isinstance(d["medium"], str) or d["medium"] not in media:
            raise InvalidSpec(f"edge ({u!r}, {v!r}) has medium={d['medium']!r}; known: {', '.join(MEDIA)}")
        where = f"edge ({u!r}, {v!r})"
        bandwidth[i] = edge_bandwidth(G, u, v)
        latency[i] = require_non_negative(f"{where} latency", d["latency"])
        links[i] = require_int(f"{where} links", d["links"], minimum=1)
        medium[i] = media[d["medium"]]
        src[i], dst[i] = index[u], index[v]
    return src, dst, bandwidth, latency, links, medium
