"""Direct all-to-all: every rank sends its ``S/n`` block to every other rank at once.

NCCL posts all the sends and receives of an all-to-all together (grouped point-to-point),
so the flows share the fabric concurrently until each is done (fluid mode). Groups
whose n(n-1) flows exceed :data:`MAX_FLOWS` are solved as ``n-1`` shifted permutations
(rank i to i+k), a sample of :data:`SAMPLED_SHIFTS` shifts evenly spread, scaled to all.
"""

import numpy as np

from collectives.engine import FLUID, LOCKSTEP, Step

NAME = "direct"
FAMILY = "ring"  # NCCL prices point-to-point with the ring latency table
COLLECTIVES = ("all_to_all",)

MAX_FLOWS = 300_000
SAMPLED_SHIFTS = 16


def check(ctx):
    """Any group of two or more ranks."""


def steps(ctx):
    group, S = ctx.group, ctx.nbytes
    n = group.size
    r = group.ranks
    block = S / n
    if n * (n - 1) <= MAX_FLOWS:
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        # Fluid: intra-domain blocks finish early, network blocks set the pace.
        t_intra = block / (ctx.nvlink_rate() / max(1, max(len(d) for d in group.domains) - 1))
        t_net = 0.0
        if len(group.domains) > 1:
            t_net = block * (n - min(len(d) for d in group.domains)) / ctx.nic_rate(r)
        rate = block / max(t_intra, t_net)
        return [Step(name="all-pairs", bytes_per_flow=block, repeats=1, analytic_rate=rate, src=r[i], dst=r[j], mode=FLUID)]
    shifts = np.unique(np.linspace(1, n - 1, SAMPLED_SHIFTS).round().astype(int))
    rate = min(ctx.nvlink_rate(), ctx.nic_rate(r))  # one flow per rank and shift
    return [
        Step(
            name=f"shift {k}",
            bytes_per_flow=block,
            repeats=(n - 1) / len(shifts),
            analytic_rate=rate,
            src=r,
            dst=np.roll(r, -k),
            mode=LOCKSTEP,
        )
        for k in shifts
    ]


def latency(ctx, protocol):
    """One base latency plus the slowest hop: the sends are concurrent."""
    p = ctx.params
    hop = "network" if len(ctx.group.domains) > 1 else "nvlink"
    return p.base(FAMILY, protocol) + p.hop_latency(FAMILY, hop, protocol)
