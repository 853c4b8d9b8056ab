"""Routing flows between GPUs on a compiled fabric.

A flow from GPU ``s`` to GPU ``d``:

* inside one NVLink domain crosses the NVSwitch: ``s -> nvswitch -> d``;
* otherwise leaves through one NIC of its domain and enters through ``d``'s own NIC.
  As NCCL's PXN does on rail-optimized fabrics, it first crosses NVLink to the peer GPU
  whose NIC is fewest switch hops from ``d``'s leaf; among equally near NICs it prefers
  one on ``d``'s rail, then ``s``'s own (on a rail-only fabric, the only way between rails);
* between leaves follows shortest switch paths (up/down in a Clos). ``"adaptive"``
  (InfiniBand adaptive routing, Spectrum-X packet spraying) splits traffic evenly over the
  cables of all equal-cost next hops; ``"ecmp"`` splits the flow into ``qps`` queue pairs
  and hashes each, at every switch, onto one cable of one equal-cost next hop. The hash
  is a fixed function of (seed, source, destination, queue pair, switch), so a flow's path
  does not depend on which other flows exist.

Resources are edges under adaptive routing and single cables ("lanes") under ECMP.
On a healthy Clos, adaptive paths are segments shared over blocks of switches and ECMP's
next hops follow from the same blocks (:mod:`fabric.clos_blocks`); elsewhere both are
walked from hop-distance tables (:mod:`fabric.next_hops`, :mod:`fabric.adaptive_paths`).
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fabric.checks import require_choice, require_int, require_seed
from fabric.errors import InvalidSpec, NoRoute
from fabric.limits import check_memory
from fabric.next_hops import (UNREACHABLE, by_target_chunks, distances_to, leaf_positions, rows_per_chunk,
                              tables_ready)
from fabric.adaptive_paths import ClassPart, split_parts, spread_adaptive
from fabric.clos_blocks import BlockNextHops, clos_blocks, segment_parts
from fabric.schema import ROUTINGS, ranks_array

# Adaptive paths are stored as shared up and down halves (exact on a healthy Clos) once
# there are more leaf pairs than this many per target leaf; below it, per pair. (A Clos that
# fabric.clos_blocks certifies uses its block segments instead, at any number of pairs.)
SPLIT_PAIRS_PER_TARGET = 2

# Bytes the routing of one flow variable (a flow, or a queue pair under ECMP) takes per
# edge it crosses (coordinates, coefficients and the transposed copy of the routing
# matrix, with temporaries; ECMP's hashed walk keeps more), and per candidate PXN sender of
# a flow (cost, hops and masks), for the size checks of fabric.limits. Peaks measured with
# tracemalloc on 4,096-GPU SuperPOD, NVL72 and top-of-rack fabrics are 0.7-1.0x of the estimate.
_BYTES_PER_ENTRY = {"adaptive": 96, "ecmp": 160}
_BYTES_PER_CANDIDATE = 48
_BYTES_PER_CABLE = 40  # ECMP: capacity, owning edge, lane offset and latency of each cable


@dataclass(frozen=True, eq=False)
class Routes:
    """Flows mapped onto resources: ``load = host @ x + sum over parts of
    part.matrix @ (totals of x per part column)``.

    Attributes
    ----------
    n_flows : int
    owner : ndarray
        Flow index of each variable (a flow, or one queue pair of a flow under ECMP).
    host : scipy.sparse.csr_matrix
        Resources x variables, coefficients of each variable's own edges.
    cls : tuple of ClassPart
        Switch-path fractions shared by all flows of a leaf pair (a class); a class's path
        is the sum of its columns in every part (one part per leaf pair, or an up part per
        source leaf and a down part per destination leaf). Empty without classes.
    class_of : ndarray
        Class of each variable, -1 for none.
    capacity : ndarray
        Bytes/s of each resource.
    resource_edge : ndarray
        Compiled edge id of each resource.
    latency : ndarray
        Per flow, seconds of wire and switch latency on its path(s).
    far_latency : ndarray or None
        Per flow, the part of ``latency`` on long-haul links between sites (None on a
        fabric of one site).
    """

    n_flows: int
    owner: np.ndarray
    host: sp.csr_matrix
    cls: tuple
    class_of: np.ndarray
    capacity: np.ndarray
    resource_edge: np.ndarray
    latency: np.ndarray
    far_latency: np.ndarray = None


def class_load(parts, totals):
    """Per resource, the load of classes carrying ``totals`` (bytes/s per class)."""
    load = 0.0
    for part in parts:
        load = load + part.matrix @ np.bincount(part.column, totals, minlength=part.matrix.shape[1])
    return load


def class_matrix(parts, n_resources):
    """Resources x classes fractions of ``parts`` summed (for checks and small cases)."""
    total = sp.csc_matrix((n_resources, len(parts[0].column) if parts else 0))
    for part in parts:
        total = total + part.matrix.tocsc()[:, part.column]
    return total.tocsc()


def _mix(x):
    """splitmix64 finaliser: a well-spread 64-bit hash of each element."""
    x = (x + np.uint64(0x9E3779B97F4A7C15)).astype(np.uint64)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(*keys):
    """A deterministic number in [0, 1) per element from integer key arrays."""
    h = np.zeros(np.broadcast(*keys).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in keys:
            h = _mix(h ^ np.asarray(k).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def relay_members(C):
    """The GPUs each GPU may relay through under PXN, padded with -1: (groups, size), and
    each rank's group, read-only and kept on ``C`` (every routing call needs them). NCCL's
    PXN moves data over NVLink to a GPU of the same node: the GPUs sharing both the NVLink
    domain and the host (a DGX node; an NVL72 compute tray, not the whole rack)."""
    key = "relay members"
    if key not in C.cache:
        table, inverse = _relay_members(C)
        for a in (table, inverse):
            a.setflags(write=False)
        C.cache[key] = table, inverse
    return C.cache[key]


def _relay_members(C):
    """:func:`relay_members`, computed."""
    has = C.domain >= 0
    span = int(C.host.max(initial=0)) + 1
    keys = np.where(has, C.domain * span + C.host, -1 - np.arange(C.n_gpus))
    uniq, inverse = np.unique(keys, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(uniq))
    width = counts.max()
    table = np.full((len(uniq), width), -1, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    col = np.arange(C.n_gpus) - starts[inverse[order]]
    table[inverse[order], col] = order
    return table, inverse


def _walk_ecmp(C, chunks, start, keys, lane_base):
    """One hashed cable per switch for each queue pair, over ``chunks`` of (next hops, walks,
    their target rows); returns (variable, lane) pairs."""
    out_v, out_l = [], []
    for dag, items, rows in chunks:
        item, r, node = items, rows, start[items]
        while len(item):
            entry, nbr, eid, lane = dag.hashed(r, node, _uniform(*(k[item] for k in keys), C.switch[node]))
            out_v.append(item[entry])
            out_l.append(lane_base[eid] + lane)
            rr = r[entry]
            moving = dag.has_next(rr, nbr)
            item, r, node = item[entry[moving]], rr[moving], nbr[moving]
    if not out_v:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_v), np.concatenate(out_l)


def _host_edges(C):
    """Per-rank edge ids: NVLink up/down, PCIe up/down; per rank and NIC port, NIC up/down
    (-1 where there is none). Kept on ``C``: every routing call needs them."""
    key = "host edges"
    if key not in C.cache:
        nics = np.repeat(C.nic[:, None], C.port_leaf.shape[1], axis=1)
        edges = (C.edge_ids(C.gpu, C.domain), C.edge_ids(C.domain, C.gpu), C.edge_ids(C.gpu, C.nic),
                 C.edge_ids(C.nic, C.gpu), C.edge_ids(nics, C.port_leaf), C.edge_ids(C.port_leaf, nics))
        for a in edges:
            a.setflags(write=False)  # shared by later calls
        C.cache[key] = edges
    return C.cache[key]


def route(C, src, dst, *, routing, qps=1, seed=0, pxn=True):
    """Route flows ``src[i] -> dst[i]`` (GPU ranks) on compiled fabric ``C``.

    Parameters
    ----------
    C : fabric.compiled.CompiledFabric
    src, dst : array_like of int
        GPU ranks, one flow per pair.
    routing : {"adaptive", "ecmp"}
    qps : int
        Queue pairs per flow, each hashed separately under ECMP.
    seed : int
        Seeds the ECMP hash.
    pxn : bool
        NCCL's PXN (its default): a flow may first cross NVLink to the GPU whose NIC is
        nearest the destination. False (``NCCL_PXN_DISABLE=1``) sends every flow through
        the source GPU's own NIC; on a rail-only fabric, traffic between rails then has
        no route.

    Returns
    -------
    Routes

    Examples
    --------
    >>> import fabric
    >>> from fabric.compiled import compile_fabric
    >>> C = compile_fabric(fabric.dgx_superpod(4))
    >>> r = route(C, [0, 0], [1, 8], routing="adaptive")
    >>> r.n_flows, float(r.latency[0] < r.latency[1])
    (2, 1.0)
    """
    require_choice("routing", routing, ROUTINGS)
    require_int("qps", qps, minimum=1)
    require_seed(seed)
    if not isinstance(pxn, (bool, np.bool_)):
        raise InvalidSpec(f"pxn={pxn!r} must be True or False")
    src = ranks_array("src", src, C.n_gpus)
    dst = ranks_array("dst", dst, C.n_gpus)
    if src.shape != dst.shape:
        raise InvalidSpec(f"src and dst must have the same length, got {len(src)} and {len(dst)}")
    same = np.flatnonzero(src == dst)
    if same.size:
        raise InvalidSpec(f"flow {same[0]} has src == dst == {src[same[0]]}; a GPU does not send to itself")
    n = len(src)
    ecmp = routing == "ecmp"
    q = qps if ecmp else 1
    hops = 8 + 2 * int(C.switch_tier.max(initial=1))  # host edges and the switch hops up and down
    cables = int(C.links.sum()) if ecmp else 0
    members, group = relay_members(C)
    senders = members.shape[1] if pxn else 1
    check_memory(f"routing {n:,} flows" + (f" x {q:,} queue pairs over {cables:,} hashed cables" if ecmp else ""),
                 n * q * hops * _BYTES_PER_ENTRY[routing] + cables * _BYTES_PER_CABLE
                 + n * senders * _BYTES_PER_CANDIDATE,
                 "route fewer flows at once, fewer queue pairs (qps) or fewer parallel cables per edge (links)")

    nv_up, nv_down, pcie_up, pcie_down, nic_up, nic_down = _host_edges(C)
    can_send = (pcie_up[:, None] >= 0) & (nic_up >= 0)
    can_receive = (pcie_down[:, None] >= 0) & (nic_down >= 0)

    nvlink = (C.domain[src] >= 0) & (C.domain[src] == C.domain[dst]) & (nv_up[src] >= 0) & (nv_down[dst] >= 0)
    net = np.flatnonzero(~nvlink)
    s, d = src[net], dst[net]
    receiving = can_receive[d]  # (flows, ports)
    blocked = ~receiving.any(axis=1)
    if blocked.any():
        i = np.flatnonzero(blocked)[0]
        raise NoRoute(f"no route from gpu{s[i]} to gpu{d[i]}: the destination's NIC is not cabled")

    wanted = np.where(receiving, C.switch_pos[np.maximum(C.port_leaf[d], 0)], -1)
    every_leaf = leaf_positions(C)
    # Route towards every leaf when one table holds them all and the flows need a good share
    # of them (or the tables were prepared for many calls), so later calls on the same
    # compiled fabric reuse the distances and next hops; otherwise only towards the leaves needed.
    needed = np.unique(wanted[receiving])
    # A healthy Clos needs no distance table: its adaptive paths are shared segments over
    # blocks of switches, and its ECMP next hops follow from the blocks (fabric.clos_blocks).
    blocks = clos_blocks(C)
    shared = blocks is None and len(every_leaf) <= rows_per_chunk(C) and (
        4 * len(needed) >= len(every_leaf) or tables_ready(C))
    targets = every_leaf if shared else needed
    target_row = np.searchsorted(targets, np.maximum(wanted, 0))
    dist = None if blocks is not None else distances_to(C, targets)

    # PXN: choose the sending GPU of the source's node whose NIC is nearest the target (over
    # the NIC ports both ends have, on several ports the mean).
    cand = members[group[s]] if pxn else s[:, None]
    ok = cand >= 0
    safe = np.where(ok, cand, 0)
    cand_leaf = np.maximum(C.switch_pos[np.maximum(C.port_leaf[safe], 0)], 0)
    if blocks is None:
        port_hops = dist[target_row[:, None, :], cand_leaf]
    else:
        port_hops = blocks.hops(cand_leaf, targets[target_row][:, None, :])
    usable = receiving[:, None, :] & can_send[safe] & (port_hops < UNREACHABLE)  # (flows, candidates, ports)
    n_usable = usable.sum(axis=2)
    hops = np.where(usable, port_hops, 0).sum(axis=2, dtype=np.float64) / np.maximum(n_usable, 1)
    ok &= n_usable > 0
    peer = safe != s[:, None]
    ok &= ~peer | ((nv_up[s][:, None] >= 0) & (nv_down[safe] >= 0))
    # Ties (fractions < 1 hop): prefer a NIC on the destination's rail, as NCCL's PXN keeps
    # traffic rail-local on rail-optimized fabrics; then the GPU's own NIC; then a NIC with
    # no port cut (a cut port leaves fewer usable).
    off_rail = (C.leaf_rail[safe] != C.leaf_rail[d][:, None]) | (C.leaf_rail[d][:, None] < 0)
    cost = np.where(ok, hops + 0.5 * off_rail + 0.25 * peer, np.inf)
    if C.port_leaf.shape[1] > 1:
        cost += 0.125 * (1 - n_usable / C.port_leaf.shape[1])
    best = np.argmin(cost, axis=1)
    if not np.isfinite(cost[np.arange(len(net)), best]).all():
        i = np.flatnonzero(~np.isfinite(cost[np.arange(len(net)), best]))[0]
        raise NoRoute(f"no route from gpu{s[i]} to gpu{d[i]}" + ("" if pxn else " with PXN disabled"))
    p = safe[np.arange(len(net)), best]

    # Variables: one per NVLink flow, one per network flow and NIC port both ends use (a
    # NIC's bytes are split evenly over its ports), in flow order.
    ports = usable[np.arange(len(net)), best]
    per_flow = np.ones(n, dtype=np.int64)
    per_flow[net] = ports.sum(axis=1)
    var_flow = np.repeat(np.arange(n), per_flow)
    first_var = np.cumsum(per_flow) - per_flow
    net_flow, port = np.nonzero(ports)  # flow-major: the variables of each network flow in port order
    var = first_var[net[net_flow]] + (np.cumsum(ports, axis=1) - 1)[net_flow, port]
    vs, vd, vp = s[net_flow], d[net_flow], p[net_flow]
    var_port = np.zeros(len(var_flow), dtype=np.int64)
    var_port[var] = port

    # Host edges, one coefficient each: (variable, edge id).
    nvl = first_var[np.flatnonzero(nvlink)]
    via = np.flatnonzero(vp != vs)
    host_var = np.concatenate([nvl] * 2 + [var[via]] * 2 + [var] * 4)
    host_edge = np.concatenate(
        [
            nv_up[src[nvlink]],
            nv_down[dst[nvlink]],
            nv_up[vs[via]],
            nv_down[vp[via]],
            pcie_up[vp],
            nic_up[vp, port],
            nic_down[vd, port],
            pcie_down[vd],
        ]
    )
    start = C.switch_pos[C.port_leaf[vp, port]]
    var_row = target_row[net_flow, port]
    crossing = np.flatnonzero(start != targets[var_row])
    n_var = len(var_flow)

    m = len(C.bandwidth)
    if ecmp:
        lane_base = np.concatenate(([0], np.cumsum(C.links)[:-1]))
        n_res = int(C.links.sum())
        capacity = np.repeat(C.bandwidth / C.links, C.links)
        resource_edge = np.repeat(np.arange(m), C.links)
        qp = np.arange(q)
        var_of = np.repeat(np.arange(n_var), q)  # each variable splits into q queue pairs
        flow_of_qp = var_flow[var_of]
        # a NIC port's queue pairs are numbered after the ports before it (port 0: 0..q-1)
        var_qp = var_port[var_of] * q + np.tile(qp, n_var)
        # Host edges: every queue pair crosses them, on a hashed cable when several.
        hv = (host_var[:, None] * q + qp).ravel()
        he = np.repeat(host_edge, q)
        lane = (_uniform(seed, src[flow_of_qp[hv]], dst[flow_of_qp[hv]], var_qp[hv], he) * C.links[he]).astype(np.int64)
        rows_, cols_ = lane_base[he] + lane, hv
        if crossing.size:
            cv = (var[crossing][:, None] * q + qp).ravel()
            flow_of = flow_of_qp[cv]
            walk_row = np.repeat(var_row[crossing], q)
            if blocks is None:
                chunks = by_target_chunks(C, dist, walk_row)
            else:
                chunks = [(BlockNextHops(C, blocks, targets), np.arange(len(walk_row)), walk_row)]
            v, lanes = _walk_ecmp(
                C,
                chunks,
                np.repeat(start[crossing], q),
                (np.full(len(cv), seed), src[flow_of], dst[flow_of], var_qp[cv]),
                lane_base,
            )
            rows_, cols_ = np.concatenate([rows_, lanes]), np.concatenate([cols_, cv[v]])
        host = sp.csr_matrix((np.ones(len(rows_)), (rows_, cols_)), shape=(n_res, n_var * q))
        by_variable = sp.csr_matrix(host.T)
        lat = np.asarray(by_variable @ C.latency[resource_edge]).ravel()
        latency = np.zeros(n)
        np.maximum.at(latency, flow_of_qp, lat)
        far = None
        if C.far_latency is not None:
            far = np.zeros(n)
            np.maximum.at(far, flow_of_qp, np.asarray(by_variable @ C.far_latency[resource_edge]).ravel())
        return Routes(
            n_flows=n,
            owner=flow_of_qp,
            host=host,
            cls=(),
            class_of=np.full(n_var * q, -1),
            capacity=capacity,
            resource_edge=resource_edge,
            latency=latency,
            far_latency=far,
        )

    host = sp.csr_matrix((np.ones(len(host_edge)), (host_edge, host_var)), shape=(m, n_var))
    class_of = np.full(n_var, -1)
    cls = ()
    latency = np.asarray(host.T @ C.latency).ravel()
    far = None if C.far_latency is None else np.asarray(host.T @ C.far_latency).ravel()
    if crossing.size:
        pair = start[crossing] * len(C.switch) + targets[var_row[crossing]]
        pairs, inverse = np.unique(pair, return_inverse=True)
        class_of[var[crossing]] = inverse
        class_row = np.searchsorted(targets, pairs % len(C.switch))
        class_start = pairs // len(C.switch)
        cls, per_pair = (), np.arange(len(pairs))
        if blocks is not None:
            cls, per_pair = segment_parts(blocks, class_start, targets[class_row]), per_pair[:0]
        elif len(pairs) > SPLIT_PAIRS_PER_TARGET * len(targets):  # leaf pairs share their ends: split paths
            cls, per_pair = split_parts(C, dist, class_start, class_row, m)
        if len(per_pair):
            c, e, f = spread_adaptive(C, dist, class_start[per_pair], class_row[per_pair])
            column = np.full(len(pairs), len(per_pair))
            column[per_pair] = np.arange(len(per_pair))
            matrix = sp.csr_matrix((f, (e, c)), shape=(m, len(per_pair) + 1))  # last column: split classes
            cls = cls + (ClassPart(matrix, column),)
        per_class = sum(np.asarray(p.matrix.T @ C.latency).ravel()[p.column] for p in cls)
        latency[var[crossing]] += per_class[inverse]
        if far is not None:
            far[var[crossing]] += sum(np.asarray(p.matrix.T @ C.far_latency).ravel()[p.column] for p in cls)[inverse]
    if n_var > n:  # flows on several NIC ports: a flow's latency is its slowest port's
        latency = np.maximum.reduceat(latency, first_var)
        far = None if far is None else np.maximum.reduceat(far, first_var)
    return Routes(
        n_flows=n,
        owner=var_flow,
        host=host,
        cls=cls,
        class_of=class_of,
        capacity=C.bandwidth.copy(),
        resource_edge=np.arange(m),
        latency=latency,
        far_latency=far,
    )
