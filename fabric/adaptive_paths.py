"""Adaptive routing's paths: traffic spread evenly over the cables of every equal-cost next
hop (InfiniBand adaptive routing, Spectrum-X packet spraying), walked from the next-hop
tables of :mod:`fabric.next_hops`. On a healthy Clos a leaf pair's path splits into an up
half that depends only on the source leaf and a down half that depends only on the target,
so many leaf pairs share a few stored halves (:class:`ClassPart`); elsewhere paths are
spread per pair. :func:`fabric.routing.route` uses both.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fabric.next_hops import UNREACHABLE, by_target_chunks, ranges


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



def spread_adaptive(C, dist, class_start, class_row):
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


def split_parts(C, dist, class_start, class_row, m):
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
