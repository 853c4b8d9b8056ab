"""Ring, built the way NCCL builds its channels.

Within an NVLink domain the ring chains the group's GPUs over NVLink; between domains
it makes one rail-aligned network hop. With ``m`` members per domain there are ``m``
channels; channel ``c`` enters every domain at its ``c``-th member and leaves from the
one before it, so each NIC carries one channel each way and, on rail-optimized
fabrics, PXN (see :mod:`fabric.routing`) keeps the hop on one rail. The data is split
over the channels; each rank sends ``S / (n * channels)`` per channel per step.

Steps and latency follow NCCL (tuning.cc): all-reduce 2(n-1) steps with 2(domains-1) of
them crossing the network; all-gather and reduce-scatter n-1 steps with domains-1
network hops; broadcast a pipelined chain of n-1 hops.
"""

import numpy as np

from collectives.engine import Step, phase

NAME = "ring"
FAMILY = "ring"
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast")


def check(ctx):
    """Any group of two or more ranks can run a ring."""


def _channels(group):
    if len(group.domains) == 1:
        return [group.domains[0]]
    width = min(len(d) for d in group.domains)
    # each domain rotated by c (slices: np.roll costs more than the rest of a small group's steps)
    return [np.concatenate([part for d in group.domains for part in (d[c:], d[:c])]) for c in range(width)]


def _network_hops(ctx):
    domains = len(ctx.group.domains)
    n = ctx.group.size
    if ctx.collective == "all_reduce":
        return 2 * (n - 1), 2 * (domains - 1)
    return n - 1, domains - 1


def steps(ctx):
    rings = _channels(ctx.group)
    _, chunk, repeats = _shape(ctx)
    src = np.concatenate(rings)
    dst = np.concatenate([part for r in rings for part in (r[1:], r[:1])])
    if ctx.collective == "broadcast":
        keep = dst != ctx.root  # the chain ends at the root's predecessor
        src, dst = src[keep], dst[keep]
    return [Step(name="ring", bytes_per_flow=chunk, repeats=repeats, src=src, dst=dst)]


def _shape(ctx):
    """Channels, bytes per flow and repeats, shared by both levels."""
    group, S = ctx.group, ctx.nbytes
    n = group.size
    nch = 1 if len(group.domains) == 1 else min(len(d) for d in group.domains)
    if ctx.collective == "broadcast":
        return nch, S / nch, 1
    repeats = 2 * (n - 1) if ctx.collective == "all_reduce" else n - 1
    return nch, S / (n * nch), repeats


def analytic(ctx):
    """Each NIC carries one channel each way; each NVLink port the m-1 intra-domain hops
    of the other channels, plus PXN's hop to the destination rail where leaves have rails."""
    nch, chunk, repeats = _shape(ctx)
    group, prof = ctx.group, ctx.profile
    m = min(len(d) for d in group.domains)
    flows = group.size * nch
    if len(group.domains) == 1:
        return [phase("ring", flows, chunk, repeats, prof.nvlink)]
    rate = prof.nic
    if m > 1:
        rate = min(rate, prof.nvlink / (m - 1 + prof.rail_optimized))
    return [phase("ring", flows, chunk, repeats, rate)]


def latency(ctx, protocol):
    """NCCL's ring latency: base + intra-domain hops + network hops."""
    p = ctx.params
    steps_total, network = _network_hops(ctx)
    if ctx.collective == "broadcast":
        steps_total, network = ctx.group.size - 1, len(ctx.group.domains) - 1
    return (
        p.base(FAMILY, protocol)
        + (steps_total - network) * p.hop_latency(FAMILY, "nvlink", protocol)
        + network * p.hop_latency(FAMILY, "network", protocol)
    )
