"""The blocks of a healthy Clos: adaptive paths without a distance table.

On a layered Clos whose parent sets are equal or disjoint at every tier, a leaf's
ancestors at tier ``j`` form one set ``A_j`` shared by every leaf under it, and traffic
spread evenly over equal-cost cables (adaptive routing) is spread evenly over ``A_j`` at
every tier on its way up, and over the target's ``A_j`` on its way down. A leaf pair's
path is then a sum of *segments*: up from ``A_j`` of the source to ``A_{j+1}`` for each
tier below the lowest tier where the two leaves' ancestor sets meet, and down through the
target's sets. A segment is shared by every pair whose source (or target) lies under the
same set, so the stored paths take as many entries as the fabric has cables, however many
pairs there are, and the hops between two leaves follow from the tier where they meet:
no (leaves x switches) table, which at 1M GPUs would not fit in memory.

The same blocks give ECMP its next hops (:class:`BlockNextHops`): toward a leaf, a switch
that is one of its ancestors goes down into the leaf's ancestors one tier lower, and any
other switch goes up over all its cables, exactly the hops that shorten the way.

:func:`clos_blocks` checks the conditions on the compiled fabric (linear in its cables)
and returns None where any fails (a failed cable or switch, an irregular graph); the
routing then falls back to its distance tables.

Examples
--------
>>> import fabric
>>> from fabric.compiled import compile_fabric
>>> C = compile_fabric(fabric.dgx_superpod(64))
>>> blocks = clos_blocks(C)
>>> leaves = C.switch_pos[C.leaf[[0, 8, 1]]]          # gpu0 and gpu8 share a rail, gpu1 does not
>>> blocks.hops(leaves[[0, 0]], leaves[[1, 2]]).tolist()   # one leaf; a spine between
[0, 2]
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fabric.adaptive_paths import ClassPart
from fabric.next_hops import UNREACHABLE, switch_adjacency


@dataclass(frozen=True, eq=False)
class ClosBlocks:
    """Ancestor sets (blocks) of every leaf, per tier, and the even spread over them.

    Attributes
    ----------
    key : ndarray, shape (tiers, switches)
        ``key[j - 1, a]``: the block of leaf ``a``'s ancestors at tier ``j`` (at tier 1
        the leaf's own block), -1 where it reaches no switch of that tier.
    up, down : list of scipy.sparse.csc_matrix
        Per tier ``j`` (index ``j - 1``), edges x blocks of tier ``j``: unit mass spread
        evenly over a block, carried over its cables up to the block above (``up``), or
        from the block above down into it (``down``).
    switch_block : ndarray, shape (switches,)
        The block of each switch at its own tier (numbered as ``key`` numbers that tier's
        blocks), -1 where no leaf reaches it.
    meet_key : ndarray, shape (tiers, switches)
        ``key`` as int32 with each -1 made a number of its own (``-2 - a``), so that two
        leaves share ancestors at a tier exactly where their ``meet_key`` are equal: one
        gather and one comparison per tier over millions of leaf pairs.
    """

    key: np.ndarray
    up: list
    down: list
    switch_block: np.ndarray
    meet_key: np.ndarray

    def meet(self, a, b):
        """The lowest tier at which leaves ``a`` and ``b`` share ancestors (0 where none)."""
        a, b = np.asarray(a), np.asarray(b)
        tier = np.zeros(np.broadcast_shapes(a.shape, b.shape), np.int8)  # each side gathered at its own shape
        for j in range(len(self.meet_key) - 1, -1, -1):
            row = self.meet_key[j]
            np.copyto(tier, j + 1, where=row[a] == row[b])
        return tier

    def hops(self, a, b):
        """Switch hops from leaf ``a`` to leaf ``b``: up to the tier where they meet and down
        (:data:`fabric.next_hops.UNREACHABLE` where they never meet)."""
        meet = self.meet(np.asarray(a), np.asarray(b))
        return np.where(meet > 0, 2 * (meet - 1), UNREACHABLE)


def clos_blocks(C):
    """The :class:`ClosBlocks` of compiled fabric ``C``, or None unless it is a healthy
    layered Clos: every cable joins adjacent tiers and has its reverse; the NICs' switches
    are tier-1 switches; the switches a block's cables reach one tier up form blocks (two
    blocks reach the same switches or none in common), starting from single leaves; and
    mass spread evenly over a block and split over its cables in proportion to their links
    arrives evenly over the block above, and back down evenly over the block. Kept on ``C``.
    """
    key = "clos blocks"
    if key not in C.cache:
        C.cache[key] = _blocks(C)
    return C.cache[key]


def _even(mass, group, size):
    """Whether ``mass`` equals ``1 / size[group]`` everywhere (to rounding)."""
    return bool(np.all(np.abs(mass * size[group] - 1.0) <= 1e-9))


def _blocks(C):
    """:func:`clos_blocks`, computed."""
    n = len(C.switch)
    g = C.switch_graph.tocoo()
    u, v, edge = g.row.astype(np.int64), g.col.astype(np.int64), g.data.astype(np.int64) - 1
    tier = C.switch_tier
    if not n or not len(u):
        return None
    pattern = (C.switch_graph != 0).astype(np.int8)
    if (pattern != pattern.T).nnz or (np.abs(tier[u] - tier[v]) != 1).any():
        return None
    leaves = np.unique(C.switch_pos[C.port_leaf[C.port_leaf >= 0]])
    if not len(leaves) or (tier[leaves] != 1).any():
        return None
    links = C.links[edge].astype(np.float64)
    up = tier[v] > tier[u]
    out_up = np.bincount(u[up], links[up], minlength=n)  # each switch's links up
    code = np.random.default_rng(0).integers(1, 2**63, size=n, dtype=np.uint64)
    tiers = int(tier.max())
    block = np.full(n, -1, np.int64)
    block[leaves] = np.arange(len(leaves))
    count = np.ones(len(leaves))  # switches per block of the current tier
    key = np.full((tiers, n), -1, np.int64)
    key[0, leaves] = np.arange(len(leaves))
    switch_block = block.copy()
    ups, downs = [], []
    for j in range(1, tiers):
        # cables up from blocked switches of tier j
        e = np.flatnonzero(up & (tier[u] == j) & (block[u] >= 0))
        b, p = block[u[e]], v[e]
        frac = links[e] / out_up[u[e]] / count[b]  # even over the block, split by links
        pair, which = np.unique(b * n + p, return_inverse=True)
        which = which.ravel()
        pb, pp = pair // n, pair % n
        mass = np.bincount(which, frac)
        # the switches each block reaches: a set code per block; every switch reached must be
        # reached by blocks of one set
        set_code = np.zeros(len(count), np.uint64)
        np.add.at(set_code, pb, code[pp])
        first = np.zeros(n, np.uint64)
        first[pp[::-1]] = set_code[pb[::-1]]
        if (set_code[pb] != first[pp]).any():
            return None
        ids, above_of = np.unique(set_code[pb], return_inverse=True)  # blocks one tier up
        above_of = above_of.ravel()
        parent_block = np.full(len(count), -1, np.int64)
        parent_block[pb] = above_of
        new_block = np.full(n, -1, np.int64)
        new_block[pp] = above_of
        new_count = np.bincount(new_block[new_block >= 0], minlength=len(ids)).astype(np.float64)
        if not _even(mass, above_of, new_count):
            return None
        ups.append(sp.csc_matrix((frac, (edge[e], b)), shape=(len(C.bandwidth), len(count))))
        # down: from the block above, evenly, over each switch's cables into the block
        d = C.edge_ids(C.switch[v[e]], C.switch[u[e]])
        per_parent = np.bincount(which, C.links[d].astype(np.float64))  # per (block, switch above)
        down_frac = C.links[d] / per_parent[which] / new_count[parent_block[b]]
        arrived = np.bincount(u[e], down_frac, minlength=n)[u[e]]
        if not _even(arrived, b, count):
            return None
        downs.append(sp.csc_matrix((down_frac, (d, b)), shape=(len(C.bandwidth), len(count))))
        lower = key[j - 1, leaves]
        key[j, leaves] = np.where(lower >= 0, parent_block[np.maximum(lower, 0)], -1)
        switch_block[pp] = above_of
        block, count = new_block, new_count
    meet_key = np.where(key >= 0, key, -2 - np.arange(n)).astype(np.int32)
    return ClosBlocks(key=key, up=ups, down=downs, switch_block=switch_block, meet_key=meet_key)


def segment_parts(blocks, start, target):
    """Class paths from leaf ``start[c]`` to leaf ``target[c]`` (switch positions) as
    :class:`~fabric.adaptive_paths.ClassPart` segments, one part per tier and direction:
    the traffic's even spread over each block's cables, for the blocks the classes use."""
    meet = blocks.meet(start, target)
    parts = []
    for j in range(1, int(meet.max(initial=1))):  # segments between tier j and j + 1
        uses = meet > j
        for ends, full in ((start, blocks.up[j - 1]), (target, blocks.down[j - 1])):
            used, column = np.unique(np.where(uses, blocks.key[j - 1, ends], -1), return_inverse=True)
            column = column.ravel()
            if used[0] == -1:  # classes that turn below this tier take the empty last column
                used = used[1:]
                column = np.where(uses, column - 1, len(used))
            matrix = sp.hstack([full[:, used], sp.csc_matrix((full.shape[0], 1))]).tocsr()
            parts.append(ClassPart(matrix, column))
    return tuple(parts)


class BlockNextHops:
    """ECMP's next hops toward target leaves from the blocks, with the walking interface of
    :class:`fabric.next_hops.DownhillGraph` (rows index ``targets``, switch positions): the
    same hops, in the same order, so the same hashed choices as the distance tables give,
    with no table.

    A switch of tier ``t`` among the target's ancestors (its block is the target's block of
    tier ``t``) is ``t - 1`` hops from it, and its next hops are its cables down into the
    target's ancestors of tier ``t - 1``; any other switch on the way reaches the target
    only over a tier where their blocks meet, so every cable up shortens the way equally
    (a block's cables reach one block above). Each switch's cables up form one group, its
    cables down one group per block below, so a hashed choice is a binary search in the
    cumulative cable counts instead of a pass over every next hop.

    Examples
    --------
    >>> import fabric
    >>> from fabric.compiled import compile_fabric
    >>> from fabric.next_hops import leaf_positions
    >>> C = compile_fabric(fabric.fat_tree(32, routing="ecmp", rail_optimized=False))
    >>> leaves = leaf_positions(C)
    >>> hops = BlockNextHops(C, clos_blocks(C), leaves)
    >>> _, spine, _, _ = hops.hashed(np.array([1]), leaves[:1], np.array([0.5]))  # leaf 0 toward leaf 1
    >>> int(C.switch_tier[spine[0]]), bool(hops.has_next(np.array([1]), spine)[0])
    (2, True)
    """

    def __init__(self, C, blocks, targets):
        key = "ecmp cable groups"
        if key not in C.cache:  # the grouped cables do not depend on the targets: kept on C
            C.cache[key] = _cable_groups(C, blocks)
        (self.up_group, self.group, self.next, self.edge, self.links, self.cum, self.up_begin,
         self.up_end) = C.cache[key]
        self.tier, self.blocks, self.targets = C.switch_tier.astype(np.int64), blocks, targets

    def has_next(self, row, node):
        """Whether (row, node) has next hops, i.e. is not the target itself."""
        return node != self.targets[row]

    def hashed(self, row, node, u01):
        """For entries (row, node) and a number in [0, 1) each: (entry index, next switch,
        edge id, cable) of the one cable that number picks, every cable of every next hop
        equally likely (:meth:`fabric.next_hops.DownhillGraph.hashed`)."""
        key, target, t = self.blocks.key, self.targets[row], self.tier[node]
        ancestor = np.flatnonzero(self.blocks.switch_block[node] == key[t - 1, target])
        begin, end = self.up_begin[node], self.up_end[node]
        below = key[np.maximum(t[ancestor] - 2, 0), target[ancestor]]  # the way down: the target's block below
        group = node[ancestor] * (self.up_group + 1) + below
        begin[ancestor] = np.searchsorted(self.group, group, "left")
        end[ancestor] = np.searchsorted(self.group, group, "right")
        entry = np.flatnonzero(end > begin)
        begin, total = begin[entry], self.cum[end[entry]] - self.cum[begin[entry]]
        # cable counts are integers, so the cable u01 * total falls on is its floor's
        whole = np.minimum(np.floor(u01[entry] * total).astype(np.int64), total - 1)
        pos = np.searchsorted(self.cum, self.cum[begin] + whole, "right") - 1
        lane = np.minimum(whole - (self.cum[pos] - self.cum[begin]), self.links[pos] - 1)
        return entry, self.next[pos], self.edge[pos], lane


def _cable_groups(C, blocks):
    """:class:`BlockNextHops`' cables grouped by switch and way (up, or down into one block):
    (the up group's number, each cable's group, next switch, edge, links and cumulative
    links, and each switch's range of cables up)."""
    indptr, nxt, edge = switch_adjacency(C)
    u = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    tier, block = C.switch_tier.astype(np.int64), blocks.switch_block
    up_group = int(block.max(initial=0)) + 1
    down = tier[nxt] == tier[u] - 1
    keep = down | (tier[nxt] == tier[u] + 1)
    group = u * (up_group + 1) + np.where(down, block[nxt], up_group)
    order = np.argsort(group[keep], kind="stable")  # neighbours by position within a group, as expand lists them
    group, nxt, edge = group[keep][order], nxt[keep][order], edge[keep][order]
    links = C.links[edge].astype(np.int64)
    cum = np.concatenate(([0], np.cumsum(links)))
    up = np.arange(len(indptr) - 1) * (up_group + 1) + up_group
    arrays = (group, nxt, edge, links, cum, np.searchsorted(group, up, "left"), np.searchsorted(group, up, "right"))
    for a in arrays:
        a.setflags(write=False)  # shared by every later routing call on C
    return (up_group, *arrays)
