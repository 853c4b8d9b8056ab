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
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fabric.checks import require_choice, require_int, require_seed
from fabric.errors import InvalidSpec, NoRoute
from fabric.limits import check_memory
from fabric.next_hops import (UNREACHABLE, by_target_chunks, distances_to, leaf_positions, ranges, rows_per_chunk,
                              tables_ready)
from fabric.schema import ROUTINGS, ranks_array

# Adaptive paths are stored as shared up and down halves (exact on a healthy Clos) once
# there are more leaf pairs than this many per target leaf; below it, per pair.
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
class ClassPart:
    """Switch-path fractions shared by classes: class ``c`` crosses ``matrix[:, column[c]]``.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix
        Resources x columns.
    column : ndarray
        Column of each class.
    """

    matrix: sp.csr_matrix
    column: np.ndarray


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
    """

    n_flows: int
    owner: np.ndarray
    host: sp.csr_matrix
    cls: tuple
    class_of: np.ndarray
    capacity: np.ndarray
    resource_edge: np.ndarray
    latency: np.ndarray


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
    each rank's group. NCCL's PXN moves data over NVLink to a GPU of the same node: the
    GPUs sharing both the NVLink domain and the host (a DGX node; an NVL72 compute tray,
    not the whole rack)."""
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


def _spread_adaptive(C, dist, class_start, class_row):
    """Even split over equal-cost cables; returns (class, edge id, fraction) triplets."""
    out = []
    for dag, items, rows in by_target_chunks(C, dist, class_row):
        c, e, f = _spread(C, dag, rows, np.arange(len(items)), class_start[items], np.ones(len(items)))
        out.append((items[c], e, f))
    return _concatenated(out)


def _spread(C, dag, row_of, item, node, mass):
    """Move each item's ``mass`` (at switches ``node``) downhill toward its target row
    ``row_of[item]``, split evenly over equal-cost cables; (item, edge id, fraction)."""
    out = []
    n = len(C.switch)
    row = row_of[item]
    while len(item):
        entry, nbr, eid = dag.expand(row, node)
        frac = _even_split(C, mass, entry, eid)
        out.append((item[entry], eid, frac))
        moving = dag.has_next(row[entry], nbr)
        item, node, mass = _gather(item[entry[moving]], nbr[moving], frac[moving], n)
        row = row_of[item]
    return _concatenated(out)


def _even_split(C, mass, entry, eid):
    """Each frontier entry's ``mass`` split over its cables ``eid`` in proportion to their links."""
    w = C.links[eid].astype(np.float64)
    return mass[entry] * w / np.bincount(entry, w, minlength=len(mass))[entry]


def _gather(item, node, mass, n):
    """The next frontier: mass arriving at each (item, switch), summed."""
    key, inverse = np.unique(item * n + node, return_inverse=True)
    return key // n, key % n, np.bincount(inverse, mass, minlength=len(key))


def _concatenated(out):
    """(item, edge id, fraction) arrays from a walk's per-step triplets."""
    if not out:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    return tuple(np.concatenate(column) for column in zip(*out))


def _split_rows(C, dist):
    """Per target row, whether every leaf-pair path toward it splits into an up half that
    depends only on the source leaf and a down half that depends only on the target.

    True when every switch reaching the target either climbs over all its up-cables and
    no down-cable (it is not above the target) or only descends (it is, at a distance
    equal to the tiers between them): a healthy Clos. A failed or missing cable under a
    switch breaks it for the targets it affects, and their paths are spread per pair.
    """
    key = ("split rows", id(dist))
    if key in C.cache:
        return C.cache[key]
    g = C.switch_graph
    pattern = (g != 0).astype(np.int8)
    if (pattern != pattern.T).nnz:  # a one-way cable: the down halves climb cables backwards
        C.cache[key] = np.zeros(len(dist), dtype=bool)
        return C.cache[key]
    n = len(C.switch)
    u, v, up = _switch_edges(C)
    tier = C.switch_tier

    def by_source(edges):  # switches x chosen edges, 1 where the switch is the edge's source
        return sp.csr_matrix((np.ones(int(edges.sum()), np.float32), (u[edges], np.arange(int(edges.sum())))),
                             shape=(n, int(edges.sum())))

    by_up, by_down = by_source(up), by_source(~up)
    n_up = np.diff(_up_cables(C)[0])[:, None]
    ok = np.ones(len(dist), dtype=bool)
    step = max(1, 48_000_000 // max(1, len(u)))  # (edges x rows) temporaries of ~50-250 MB
    target_tier = tier[np.argmin(dist, axis=1)]  # each row's target is its distance-0 switch
    for lo in range(0, len(dist), step):
        d = np.ascontiguousarray(dist[lo : lo + step].T)  # switches x rows
        downhill = d[v] == d[u] - 1
        climbs = by_up @ downhill[up].astype(np.float32)
        descends = by_down @ downhill[~up].astype(np.float32)
        above = d == (tier[:, None] - target_tier[None, lo : lo + step])
        fine = (
            (d >= UNREACHABLE)
            | (d == 0)
            | (above & (climbs == 0))
            | (~above & (n_up > 0) & (climbs == n_up) & (descends == 0))
        )
        ok[lo : lo + step] = fine.all(axis=0)
    C.cache[key] = ok
    return ok


def _switch_edges(C):
    """Switch-to-switch edges in ``switch_graph`` order: source and target positions, and
    whether each climbs to a higher tier."""
    key = "switch edges"
    if key not in C.cache:
        g = C.switch_graph
        u = np.repeat(np.arange(len(C.switch)), np.diff(g.indptr))
        v = g.indices.astype(np.int64)
        C.cache[key] = (u, v, C.switch_tier[v] > C.switch_tier[u])
    return C.cache[key]


def _up_cables(C):
    """CSR of each switch's cables to higher tiers: (indptr, next switch, edge id)."""
    key = "up cables"
    if key not in C.cache:
        u, v, up = _switch_edges(C)
        indptr = np.concatenate(([0], np.cumsum(np.bincount(u[up], minlength=len(C.switch)))))
        C.cache[key] = (indptr, v[up], C.switch_graph.data[up].astype(np.int64) - 1)
    return C.cache[key]


def _climb(C, start, steps):
    """Unit mass from switch ``start[i]`` split evenly over all up-cables for ``steps[i]``
    tiers: (item, edge id, fraction) of the climb and (item, switch, mass) at its top."""
    indptr, nxt, edge = _up_cables(C)
    n = len(C.switch)
    out = []
    item, node, mass = np.arange(len(start)), start, np.ones(len(start))
    done = 0
    top = []
    while len(item):
        at_top = steps[item] == done
        top.append((item[at_top], node[at_top], mass[at_top]))
        item, node, mass = item[~at_top], node[~at_top], mass[~at_top]
        if not len(item):
            break
        entry, pos = ranges(indptr[node], indptr[node + 1] - indptr[node])
        eid, nbr = edge[pos], nxt[pos]
        frac = _even_split(C, mass, entry, eid)
        out.append((item[entry], eid, frac))
        item, node, mass = _gather(item[entry], nbr, frac, n)
        done += 1
    return _concatenated(out), _concatenated(top)


def _descend(C, target, steps, item, node, mass):
    """Mass of item ``item[i]`` at switch ``node[i]`` carried down to switch
    ``target[item]``, ``steps[item]`` tiers below, split evenly over the cables to children
    above the target: (item, edge id, fraction).

    The switches above a target are found by climbing from it over every up-cable (on the
    rows :func:`_split_rows` accepts, exactly the switches whose shortest paths to it only
    descend), so only their cables are visited, not every down-cable of every switch.
    """
    n = len(C.switch)
    (cone_item, up_edge, _), _ = _climb(C, target, steps)
    down_edge = C.edge_ids(C.edge_dst[up_edge], C.edge_src[up_edge])
    parent = C.switch_pos[C.edge_src[down_edge]]
    child = C.switch_pos[C.edge_dst[down_edge]]
    key = cone_item * n + parent
    order = np.argsort(key, kind="stable")
    key, down_edge, child = key[order], down_edge[order], child[order]
    out = []
    while len(item):
        want = item * n + node
        begin = np.searchsorted(key, want)
        entry, pos = ranges(begin, np.searchsorted(key, want, side="right") - begin)
        eid, nbr = down_edge[pos], child[pos]
        frac = _even_split(C, mass, entry, eid)
        out.append((item[entry], eid, frac))
        moving = nbr != target[item[entry]]
        item, node, mass = _gather(item[entry[moving]], nbr[moving], frac[moving], n)
    return _concatenated(out)


def _split_parts(C, dist, class_start, class_row, m):
    """Class paths as an up part per (source leaf, tiers climbed) and a down part per
    (target, mass at the top): exact on the rows :func:`_split_rows` accepts.

    Returns the parts and the classes left to spread per pair.
    """
    tier = C.switch_tier
    target = np.argmin(dist, axis=1)
    rise = dist[class_row, class_start].astype(np.int64) + tier[target[class_row]] - tier[class_start]
    split = _split_rows(C, dist)[class_row] & (rise % 2 == 0)
    classes = np.flatnonzero(split)
    if not len(classes):
        return (), np.arange(len(class_row))
    steps = rise[classes] // 2  # tiers climbed before the path turns down
    climbs, up_col = np.unique(np.stack([class_start[classes], steps], axis=1), axis=0, return_inverse=True)
    up_col = up_col.ravel()
    (c, e, f), (top_item, top_node, top_mass) = _climb(C, climbs[:, 0], climbs[:, 1])
    up = sp.csr_matrix((f, (e, c)), shape=(m, len(climbs) + 1))  # last column: classes not split
    # Climbs ending with the same mass on the same switches share their down halves.
    order = np.lexsort((top_node, top_item))
    top_item, top_node, top_mass = top_item[order], top_node[order], top_mass[order]
    bounds = np.searchsorted(top_item, np.arange(len(climbs) + 1))
    signature = {}
    top_of = np.empty(len(climbs), np.int64)
    for i in range(len(climbs)):
        lo, hi = bounds[i], bounds[i + 1]
        key = (top_node[lo:hi].tobytes(), np.round(top_mass[lo:hi], 12).tobytes())
        top_of[i] = signature.setdefault(key, len(signature))
    first_of_top = np.zeros(len(signature), np.int64)
    first_of_top[top_of[::-1]] = np.arange(len(climbs))[::-1]
    halves, down_col = np.unique(
        np.stack([class_row[classes], top_of[up_col]], axis=1), axis=0, return_inverse=True
    )
    down_col = down_col.ravel()
    # Initial frontier of each down half: the top of a climb with its signature.
    climb_of = first_of_top[halves[:, 1]]
    lo = bounds[climb_of]
    half, pos = ranges(lo, bounds[climb_of + 1] - lo)
    half_target = target[halves[:, 0]]
    c, e, f = _descend(C, half_target, tier[top_node[lo]] - tier[half_target], half, top_node[pos], top_mass[pos])
    down = sp.csr_matrix((f, (e, c)), shape=(m, len(halves) + 1))
    n_classes = len(class_row)
    up_column = np.full(n_classes, len(climbs))
    up_column[classes] = up_col
    down_column = np.full(n_classes, len(halves))
    down_column[classes] = down_col
    return (ClassPart(up, up_column), ClassPart(down, down_column)), np.flatnonzero(~split)


def _walk_ecmp(C, dist, start, row, keys, lane_base):
    """One hashed cable per switch for each queue pair; returns (variable, lane) pairs."""
    out_v, out_l = [], []
    for dag, items, rows in by_target_chunks(C, dist, row):
        item, r, node = items, rows, start[items]
        while len(item):
            entry, nbr, eid = dag.expand(r, node)
            w = C.links[eid]
            counts = np.bincount(entry, minlength=len(item))
            total = np.bincount(entry, w, minlength=len(item))
            before = np.cumsum(w) - w - np.repeat(np.cumsum(total) - total, counts)
            u = (_uniform(*(k[item] for k in keys), C.switch[node]) * total)[entry]
            chosen = (u >= before) & (u < before + w)
            entry, nbr, eid = entry[chosen], nbr[chosen], eid[chosen]
            lane = np.minimum((u[chosen] - before[chosen]).astype(np.int64), C.links[eid] - 1)
            out_v.append(item[entry])
            out_l.append(lane_base[eid] + lane)
            rr = r[entry]
            moving = dag.has_next(rr, nbr)
            item, r, node = item[entry[moving]], rr[moving], nbr[moving]
    if not out_v:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_v), np.concatenate(out_l)


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

    # Per-rank edge ids: NVLink up/down, PCIe up/down, NIC up/down.
    nv_up = C.edge_ids(C.gpu, C.domain)
    nv_down = C.edge_ids(C.domain, C.gpu)
    pcie_up, pcie_down = C.edge_ids(C.gpu, C.nic), C.edge_ids(C.nic, C.gpu)
    nic_up, nic_down = C.edge_ids(C.nic, C.leaf), C.edge_ids(C.leaf, C.nic)
    can_send = (pcie_up >= 0) & (nic_up >= 0)
    can_receive = (pcie_down >= 0) & (nic_down >= 0)

    nvlink = (C.domain[src] >= 0) & (C.domain[src] == C.domain[dst]) & (nv_up[src] >= 0) & (nv_down[dst] >= 0)
    net = np.flatnonzero(~nvlink)
    s, d = src[net], dst[net]
    blocked = ~can_receive[d]
    if blocked.any():
        i = np.flatnonzero(blocked)[0]
        raise NoRoute(f"no route from gpu{s[i]} to gpu{d[i]}: the destination's NIC is not cabled")

    wanted = C.switch_pos[C.leaf[d]]
    every_leaf = leaf_positions(C)
    # Route towards every leaf when one table holds them all and the flows need a good share
    # of them (or the tables were prepared for many calls), so later calls on the same
    # compiled fabric reuse the distances and next hops; otherwise only towards the leaves needed.
    needed = np.unique(wanted)
    shared = len(every_leaf) <= rows_per_chunk(C) and (4 * len(needed) >= len(every_leaf) or tables_ready(C))
    targets = every_leaf if shared else needed
    target_row = np.searchsorted(targets, wanted)
    dist = distances_to(C, targets)

    # PXN: choose the sending GPU of the source's node whose NIC is nearest the target.
    cand = members[group[s]] if pxn else s[:, None]
    ok = cand >= 0
    safe = np.where(ok, cand, 0)
    hops = dist[target_row[:, None], np.maximum(C.switch_pos[C.leaf[safe]], 0)].astype(np.float64)
    ok &= can_send[safe] & (hops < UNREACHABLE)
    peer = safe != s[:, None]
    ok &= ~peer | ((nv_up[s][:, None] >= 0) & (nv_down[safe] >= 0))
    # Ties (fractions < 1 hop): prefer a NIC on the destination's rail, as NCCL's PXN keeps
    # traffic rail-local on rail-optimized fabrics; then the GPU's own NIC.
    off_rail = (C.leaf_rail[safe] != C.leaf_rail[d][:, None]) | (C.leaf_rail[d][:, None] < 0)
    cost = np.where(ok, hops + 0.5 * off_rail + 0.25 * peer, np.inf)
    best = np.argmin(cost, axis=1)
    if not np.isfinite(cost[np.arange(len(net)), best]).all():
        i = np.flatnonzero(~np.isfinite(cost[np.arange(len(net)), best]))[0]
        raise NoRoute(f"no route from gpu{s[i]} to gpu{d[i]}" + ("" if pxn else " with PXN disabled"))
    p = safe[np.arange(len(net)), best]

    # Host edges, one coefficient each: (flow, edge id).
    via = np.flatnonzero(p != s)
    host_flow = np.concatenate(
        [np.flatnonzero(nvlink)] * 2 + [net[via]] * 2 + [net] * 4
    )
    host_edge = np.concatenate(
        [
            nv_up[src[nvlink]],
            nv_down[dst[nvlink]],
            nv_up[s[via]],
            nv_down[p[via]],
            pcie_up[p],
            nic_up[p],
            nic_down[d],
            pcie_down[d],
        ]
    )
    start = C.switch_pos[C.leaf[p]]
    crossing = np.flatnonzero(start != targets[target_row])

    m = len(C.bandwidth)
    if ecmp:
        lane_base = np.concatenate(([0], np.cumsum(C.links)[:-1]))
        n_res = int(C.links.sum())
        capacity = np.repeat(C.bandwidth / C.links, C.links)
        resource_edge = np.repeat(np.arange(m), C.links)
        qp = np.arange(q)
        var_flow = np.repeat(np.arange(n), q)
        var_qp = np.tile(qp, n)
        # Host edges: every queue pair crosses them, on a hashed cable when several.
        hv = (host_flow[:, None] * q + qp).ravel()
        he = np.repeat(host_edge, q)
        lane = (_uniform(seed, src[var_flow[hv]], dst[var_flow[hv]], var_qp[hv], he) * C.links[he]).astype(np.int64)
        rows_, cols_ = lane_base[he] + lane, hv
        if crossing.size:
            cv = (net[crossing][:, None] * q + qp).ravel()
            flow_of = var_flow[cv]
            v, lanes = _walk_ecmp(
                C,
                dist,
                np.repeat(start[crossing], q),
                np.repeat(target_row[crossing], q),
                (np.full(len(cv), seed), src[flow_of], dst[flow_of], var_qp[cv]),
                lane_base,
            )
            rows_, cols_ = np.concatenate([rows_, lanes]), np.concatenate([cols_, cv[v]])
        host = sp.csr_matrix((np.ones(len(rows_)), (rows_, cols_)), shape=(n_res, n * q))
        lat = np.asarray(sp.csr_matrix(host.T) @ C.latency[resource_edge]).ravel()
        latency = np.zeros(n)
        np.maximum.at(latency, var_flow, lat)
        return Routes(
            n_flows=n,
            owner=var_flow,
            host=host,
            cls=(),
            class_of=np.full(n * q, -1),
            capacity=capacity,
            resource_edge=resource_edge,
            latency=latency,
        )

    host = sp.csr_matrix((np.ones(len(host_edge)), (host_edge, host_flow)), shape=(m, n))
    class_of = np.full(n, -1)
    cls = ()
    latency = np.asarray(host.T @ C.latency).ravel()
    if crossing.size:
        pair = start[crossing] * len(C.switch) + targets[target_row[crossing]]
        pairs, inverse = np.unique(pair, return_inverse=True)
        class_of[net[crossing]] = inverse
        class_row = np.searchsorted(targets, pairs % len(C.switch))
        class_start = pairs // len(C.switch)
        cls, per_pair = (), np.arange(len(pairs))
        if len(pairs) > SPLIT_PAIRS_PER_TARGET * len(targets):  # leaf pairs share their ends: split paths
            cls, per_pair = _split_parts(C, dist, class_start, class_row, m)
        if len(per_pair):
            c, e, f = _spread_adaptive(C, dist, class_start[per_pair], class_row[per_pair])
            column = np.full(len(pairs), len(per_pair))
            column[per_pair] = np.arange(len(per_pair))
            matrix = sp.csr_matrix((f, (e, c)), shape=(m, len(per_pair) + 1))  # last column: split classes
            cls = cls + (ClassPart(matrix, column),)
        per_class = sum(np.asarray(p.matrix.T @ C.latency).ravel()[p.column] for p in cls)
        latency[net[crossing]] += per_class[inverse]
    return Routes(
        n_flows=n,
        owner=np.arange(n),
        host=host,
        cls=cls,
        class_of=class_of,
        capacity=C.bandwidth.copy(),
        resource_edge=np.arange(m),
        latency=latency,
    )
