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

from collectives.engine import Step, endpoint_rate

NAME = "ring"
FAMILY = "ring"
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast")


def check(ctx):
    """Any group of two or more ranks can run a ring."""


def _channels(group):
    if len(group.domains) == 1:
        return [group.domains[0]]
    width = min(len(d) for d in group.domains)
    return [np.concatenate([np.roll(d, -c) for d in group.domains]) for c in range(width)]


def _network_hops(ctx):
    domains = len(ctx.group.domains)
    n = ctx.group.size
    if ctx.collective == "all_reduce":
        return 2 * (n - 1), 2 * (domains - 1)
    return n - 1, domains - 1


def steps(ctx):
    group, S = ctx.group, ctx.nbytes
    n = group.size
    rings = _channels(group)
    nch = len(rings)
    src = np.concatenate(rings)
    dst = np.concatenate([np.roll(r, -1) for r in rings])
    if ctx.collective == "broadcast":
        root = ctx.root
        keep = dst != root  # the chain ends at the root's predecessor
        src, dst = src[keep], dst[keep]
        chunk, repeats = S / nch, 1
    else:
        chunk = S / (n * nch)
        repeats = 2 * (n - 1) if ctx.collective == "all_reduce" else n - 1
    rate = endpoint_rate(ctx, src, dst)
    return [Step(name="ring", bytes_per_flow=chunk, repeats=repeats, analytic_rate=rate, src=src, dst=dst)]


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
