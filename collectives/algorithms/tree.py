"""NCCL's double binary tree all-reduce.

Domains form two binary trees, the second the mirror of the first, so a domain that is
inner in one tree is a leaf in the other; each channel sends half its data down each.
Channel ``c`` uses the ``c``-th rank of every domain as that domain's tree node (so
its NIC), and inside a domain a chain starting at that rank reduces and broadcasts.
Reduce and broadcast are pipelined: every tree and chain edge carries its data both ways
at once. Latency (tuning.cc): base + 2 x ((m-1) NVLink hops + log2(D) network hops).
"""

import math

import numpy as np

from collectives.engine import Step, phase

NAME = "tree"
FAMILY = "tree"
COLLECTIVES = ("all_reduce",)


def check(ctx):
    """Any group of two or more ranks."""


def _tree_edges(D):
    """(parent, child) domain index pairs of both trees."""
    child = np.arange(1, D)
    parent = (child - 1) // 2
    mirror = D - 1
    return np.concatenate([parent, mirror - parent]), np.concatenate([child, mirror - child])


def _flows(group):
    domains = group.domains
    nch = min(len(d) for d in domains)
    members = np.stack([d[:nch] for d in domains])  # D x nch: each channel's tree nodes
    src, dst = [], []
    parent, child = _tree_edges(len(domains))
    for c in range(nch):
        for d in domains:  # chain from rank c of the domain, both ways, twice (two trees)
            chain = np.roll(d, -c)
            for _ in range(2):
                src += [chain[1:], chain[:-1]]
                dst += [chain[:-1], chain[1:]]
        src += [members[child, c], members[parent, c]]
        dst += [members[parent, c], members[child, c]]
    return np.concatenate(src), np.concatenate(dst), nch


def steps(ctx):
    src, dst, nch = _flows(ctx.group)
    return [Step("tree reduce+broadcast", ctx.nbytes / (2 * nch), 1, src, dst)]


def analytic(ctx):
    """A rank's NVLink carries 4(m-1) chain flows (both ways, both trees, m channels);
    a NIC one flow per tree edge at its domain, at most 4 (inner in one tree, leaf in
    the other)."""
    group, prof = ctx.group, ctx.profile
    D = len(group.domains)
    nch = min(len(d) for d in group.domains)
    m = max(len(d) for d in group.domains)
    rate = float("inf")
    if m > 1:
        rate = prof.nvlink / (4 * (m - 1))
    if D > 1:
        parent, child = _tree_edges(D)
        rate = min(rate, prof.nic / np.bincount(np.concatenate([parent, child]), minlength=D).max())
    flows = nch * (4 * (group.size - D) + 4 * (D - 1))
    return [phase("tree reduce+broadcast", flows, ctx.nbytes / (2 * nch), 1, rate)]


def latency(ctx, protocol):
    p = ctx.params
    D = len(ctx.group.domains)
    m = max(len(d) for d in ctx.group.domains)
    return p.base(FAMILY, protocol) + 2 * (
        (m - 1) * p.hop_latency(FAMILY, "nvlink", protocol)
        + math.ceil(math.log2(D)) * p.hop_latency(FAMILY, "network", protocol)
    )
