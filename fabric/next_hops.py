"""Where a flow may go next on its way to a target switch: hop distances to target switches
and next-hop tables (the edges that bring a walk one hop closer), built a block of targets at
a time, kept on the compiled fabric for later calls, and checked against the memory budget
(:mod:`fabric.limits`) before they are built. :mod:`fabric.routing` walks them.
"""

import hashlib

import numpy as np
import scipy.sparse as sp

from fabric.limits import check_memory

UNREACHABLE = np.iinfo(np.int8).max  # switch hops never come near it
# A (target, switch link) cell of a next-hop table: 8 bytes kept (next switch and edge of the
# downhill half of the links) and a peak of 18 while it is built (gathers, masks, indices);
# measured with tracemalloc on the 21M cells of a 16k-GPU top-of-rack fat tree: 8.3 and 17.6.
_BYTES_PER_NEXT_HOP_CELL = 18
_BYTES_PER_KEPT_CELL = 8


def distances_to(C, targets):
    """Switch hops from every switch to each target switch position (rows), int8."""
    key = ("distances", targets.tobytes())
    if key not in C.cache:
        C.cache[key] = _compute_distances(C, targets)
    return C.cache[key]


def _compute_distances(C, targets):
    """Breadth-first search from a block of targets at once: one sparse product per hop
    (``frontier @ adjacency``) reaches every switch one hop further from each target;
    about 2.5x faster than a search per target."""
    n = len(C.switch)
    check_memory(f"a table of switch hops from {n:,} switches to {len(targets):,} leaves", len(targets) * n,
                 "route between fewer leaves at once, or model a smaller fabric of the same structure")
    rows = np.full((len(targets), n), UNREACHABLE, dtype=np.int8)
    g = C.switch_graph
    adjacency = sp.csr_matrix((np.ones(g.nnz, np.float32), g.indices, g.indptr), shape=g.shape)
    step = max(1, 8_000_000 // max(1, n))  # (switches x targets) float32 blocks of ~32 MB
    for lo in range(0, len(targets), step):
        block = targets[lo : lo + step]
        dist = rows[lo : lo + step].T  # a view: switches x targets
        frontier = np.zeros((n, len(block)), np.float32)
        frontier[block, np.arange(len(block))] = 1.0
        dist[block, np.arange(len(block))] = 0
        hops = 0
        while frontier.any():
            hops += 1
            reached = ((adjacency @ frontier) > 0) & (dist == UNREACHABLE)
            dist[reached] = hops
            frontier = reached.astype(np.float32)
    return rows


class _Expanding:
    """ECMP's hashed choice among the next hops :meth:`expand` lists (``self.links``: the
    parallel cables of each edge)."""

    def hashed(self, row, node, u01):
        """For entries (row, node) and a number in [0, 1) each: (entry index, next switch,
        edge id, cable) of the one cable that number picks, every cable of every next hop
        equally likely."""
        entry, nbr, eid = self.expand(row, node)
        w = self.links[eid]
        counts = np.bincount(entry, minlength=len(row))
        total = np.bincount(entry, w, minlength=len(row))
        before = np.cumsum(w) - w - np.repeat(np.cumsum(total) - total, counts)
        u = (u01 * total)[entry]
        chosen = (u >= before) & (u < before + w)
        lane = np.minimum((u[chosen] - before[chosen]).astype(np.int64), w[chosen] - 1)
        return entry[chosen], nbr[chosen], eid[chosen], lane


class DownhillGraph(_Expanding):
    """Next hops toward a set of target switches: edges that lower the distance by one.

    One CSR over (target row, switch) pairs, so a frontier entry expands to exactly its
    equal-cost next hops. Costs (targets x switch edges) to build; pays off when many
    walks share the targets.
    """

    def __init__(self, C, dist_rows):
        cells = len(dist_rows) * C.switch_graph.nnz
        check_memory(f"next-hop tables toward {len(dist_rows):,} leaves over {C.switch_graph.nnz:,} switch links",
                     cells * _BYTES_PER_NEXT_HOP_CELL + len(dist_rows) * len(C.switch) * 16,
                     "route fewer flows at once, or model a smaller fabric of the same structure")
        g = C.switch_graph.tocoo()
        u, v, eid = g.row.astype(np.int64), g.col.astype(np.int64), g.data.astype(np.int64) - 1
        order = np.lexsort((v, u))
        u, v, eid = u[order], v[order], eid[order]
        # Gathering whole rows of the transposed distances, and a flat nonzero, are several
        # times faster than gathering columns and a 2-D nonzero.
        by_switch = np.ascontiguousarray(dist_rows.T)
        keep = np.ascontiguousarray((by_switch[v] == by_switch[u] - 1).T)
        n = len(C.switch)
        self.n, self.links = n, C.links
        # Row-major order and edges sorted by source: the kept edges come out ordered by
        # (row, source), a CSR over row * n + source.
        row, e = np.divmod(np.flatnonzero(keep), len(u))
        counts = np.bincount(row * n + u[e], minlength=len(dist_rows) * n)
        self.indptr = np.concatenate(([0], np.cumsum(counts)))
        self.next = v[e]
        self.edge = eid[e]

    def has_next(self, row, node):
        """Whether (row, node) has next hops, i.e. is not the target itself."""
        key = row * self.n + node
        return self.indptr[key + 1] > self.indptr[key]

    def expand(self, row, node):
        """For entries (row, node): (entry index, next switch, edge id) of every next hop."""
        key = row * self.n + node
        entry, pos = ranges(self.indptr[key], self.indptr[key + 1] - self.indptr[key])
        return entry, self.next[pos], self.edge[pos]


class LazyDownhill(_Expanding):
    """The same next hops as :class:`DownhillGraph`, found on demand from the switch
    adjacency and the distance rows: work follows the frontiers walked, for few walks."""

    def __init__(self, C, dist_rows):
        self.indptr, self.next, self.edge = switch_adjacency(C)
        self.dist, self.links = dist_rows, C.links

    def has_next(self, row, node):
        """Whether (row, node) has next hops, i.e. is not the target itself."""
        return self.dist[row, node] > 0

    def expand(self, row, node):
        """For entries (row, node): (entry index, next switch, edge id) of every next hop."""
        entry, pos = ranges(self.indptr[node], self.indptr[node + 1] - self.indptr[node])
        nbr, r = self.next[pos], row[entry]
        down = self.dist[r, nbr] == self.dist[r, node[entry]] - 1
        return entry[down], nbr[down], self.edge[pos[down]]


def switch_adjacency(C):
    """(indptr, neighbour, edge id) of the switch graph of ``C`` as int64 CSR arrays, each
    switch's neighbours by position: kept on ``C`` for the walks that expand next hops."""
    key = "switch_adjacency"
    if key not in C.cache:
        g = C.switch_graph
        C.cache[key] = (g.indptr.astype(np.int64), g.indices.astype(np.int64), g.data.astype(np.int64) - 1)
    return C.cache[key]


def all_leaves_table_bytes(C):
    """Bytes of the routing tables toward every leaf of ``C`` (hop distances and next hops,
    kept for reuse): what routing traffic that reaches every leaf, such as a data-parallel
    ring over all GPUs, builds.

    Examples
    --------
    >>> import fabric
    >>> from fabric.compiled import compile_fabric
    >>> all_leaves_table_bytes(compile_fabric(fabric.dgx_superpod(4))) < 2**20
    True
    """
    leaves = len(leaf_positions(C))
    return leaves * (C.switch_graph.nnz * _BYTES_PER_KEPT_CELL + len(C.switch) * 18)


def leaf_positions(C):
    """Switch positions of every leaf of ``C`` (every switch a NIC port is cabled to), sorted:
    the targets of the shared tables.

    Examples
    --------
    >>> import fabric
    >>> from fabric.compiled import compile_fabric
    >>> len(leaf_positions(compile_fabric(fabric.dgx_superpod(4))))   # one leaf per rail
    8
    """
    key = "leaf positions"
    if key not in C.cache:
        leaves = np.unique(C.switch_pos[C.port_leaf[C.port_leaf >= 0]])
        leaves.setflags(write=False)  # kept on C: every routing call reads it
        C.cache[key] = leaves
    return C.cache[key]


def prepare_tables(C):
    """Build now the hop distances and next hops toward every leaf of ``C``, for a caller
    that will route many small flow sets on it (the probes of a search): a walk then reads
    the table instead of expanding lazily, and :func:`fabric.routing.route` routes every
    later call toward these targets. Does nothing where the leaves need more than one
    table (:func:`rows_per_chunk`). Returns whether the tables are ready.

    Examples
    --------
    >>> import fabric
    >>> from fabric.compiled import compile_fabric
    >>> C = compile_fabric(fabric.dgx_superpod(4))
    >>> prepare_tables(C), tables_ready(C)
    (True, True)
    """
    targets = leaf_positions(C)
    if len(targets) > rows_per_chunk(C):
        return False
    whole_table(C, distances_to(C, targets))
    C.cache["tables_ready"] = True
    return True


def tables_ready(C):
    """Whether :func:`prepare_tables` built the tables toward every leaf of ``C``.

    Examples
    --------
    >>> import fabric
    >>> from fabric.compiled import compile_fabric
    >>> tables_ready(compile_fabric(fabric.dgx_superpod(2)))
    False
    """
    return C.cache.get("tables_ready", False)


def _whole_key(dist):
    return "downhill", id(dist)  # dist is a table kept in C.cache: its id is not reused


def whole_table(C, dist):
    """The next-hop table toward every target row of ``dist`` (rows of
    :func:`distances_to`), built once per compiled fabric and kept for later calls.

    Examples
    --------
    >>> import fabric
    >>> from fabric.compiled import compile_fabric
    >>> C = compile_fabric(fabric.dgx_superpod(2))
    >>> dist = distances_to(C, leaf_positions(C))
    >>> whole_table(C, dist) is whole_table(C, dist)
    True
    """
    key = _whole_key(dist)
    if key not in C.cache:
        C.cache[key] = DownhillGraph(C, dist)
    return C.cache[key]


def rows_per_chunk(C):
    """Target rows of next-hop tables built at once (~32M cells of (row, edge), a few
    hundred MB of temporaries; every leaf of a 16k-GPU SuperPOD fits)."""
    return max(1, 32_000_000 // max(1, C.switch_graph.nnz))


def by_target_chunks(C, dist, row):
    """Yield (downhill graph, item indices, local rows) for items grouped by target row.

    Only rows some item needs are built, a chunk at a time to bound memory. Fewer walks
    than twice the target rows (e.g. one per leaf pair of a pipeline's sends) expand
    lazily instead: a walk touches a small part of the (targets x edges) a table covers;
    unless an earlier call on the same compiled fabric already built the table.
    """
    per_chunk = rows_per_chunk(C)
    if len(row) <= 2 * len(dist) and _whole_key(dist) not in C.cache:  # a table built earlier beats lazy walks
        yield LazyDownhill(C, dist), np.arange(len(row)), row
        return
    if len(dist) <= per_chunk:  # every target fits one table: build it once, reuse it in later calls
        yield whole_table(C, dist), np.arange(len(row)), row
        return
    needed, local = np.unique(row, return_inverse=True)
    order = np.argsort(local, kind="stable")
    bounds = np.searchsorted(local[order], np.arange(0, len(needed) + per_chunk, per_chunk))
    for i in range(len(bounds) - 1):
        items = order[bounds[i] : bounds[i + 1]]
        if len(items):
            lo = i * per_chunk
            rows = dist[needed[lo : lo + per_chunk]]
            key = ("downhill", hashlib.blake2b(rows.tobytes(), digest_size=16).digest())  # not the rows themselves
            if key not in C.cache:
                C.cache[key] = DownhillGraph(C, rows)
            yield C.cache[key], items, local[items] - lo


def ranges(begin, count):
    """(range index, position) of every element of the ranges ``begin[i] : begin[i] + count[i]``."""
    entry = np.repeat(np.arange(len(begin)), count)
    return entry, begin[entry] + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
