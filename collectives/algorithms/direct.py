"""Direct all-to-all: every rank sends its ``S/n`` block to every other rank at once.

NCCL posts all the sends and receives of an all-to-all together (grouped point-to-point),
so the flows share the fabric concurrently until each is done (fluid mode). Groups
whose n(n-1) flows exceed :data:`MAX_FLOWS` are solved as ``n-1`` shifted permutations
(rank i to i+k), a sample of :data:`SAMPLED_SHIFTS` shifts evenly spread, scaled to all.
"""

import numpy as np

from collectives.engine import FLUID, LOCKSTEP, Step, phase

NAME = "direct"
FAMILY = "ring"  # NCCL prices point-to-point with the ring latency table
COLLECTIVES = ("all_to_all",)

MAX_FLOWS = 50_000  # all pairs up to ~224 ranks; beyond, the fluid re-solves grow too costly
SAMPLED_SHIFTS = 16


def check(ctx):
    """Any group of two or more ranks."""


def _shifts(n):
    return np.unique(np.linspace(1, n - 1, SAMPLED_SHIFTS).round().astype(int))


def steps(ctx):
    group, S = ctx.group, ctx.nbytes
    n = group.size
    r = group.ranks
    block = S / n
    if n * (n - 1) <= MAX_FLOWS:
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        return [Step("all-pairs", block, 1, r[i], r[j], mode=FLUID)]
    shifts = _shifts(n)
    return [Step(f"shift {k}", block, (n - 1) / len(shifts), r, np.roll(r, -k), mode=LOCKSTEP) for k in shifts]


def analytic(ctx):
    """All pairs: NVLink ports carry the m-1 intra-domain blocks, NICs the n-m others;
    the later to finish sets the time. Sampled shifts: one flow per rank per shift."""
    group, prof = ctx.group, ctx.profile
    n = group.size
    block = ctx.nbytes / n
    m_max = max(len(d) for d in group.domains)
    m_min = min(len(d) for d in group.domains)
    if n * (n - 1) <= MAX_FLOWS:
        pxn = prof.rail_optimized * (n - m_min) * (m_max - 1) / m_max  # blocks relayed to other rails
        seconds_per_byte = (m_max - 1 + pxn) / prof.nvlink  # of one block, so any size (zero too) works
        if len(group.domains) > 1:
            seconds_per_byte = max(seconds_per_byte, (n - m_min) / prof.nic)
        return [phase("all-pairs", n * (n - 1), block, 1, 1 / seconds_per_byte)]
    shifts = _shifts(n)
    rate = min(prof.nvlink, prof.nic)
    return [phase(f"shift {k}", n, block, (n - 1) / len(shifts), rate) for k in shifts]


def latency(ctx, protocol):
    """One base latency plus the slowest hop: the sends are concurrent."""
    p = ctx.params
    hop = "network" if len(ctx.group.domains) > 1 else "nvlink"
    return p.base(FAMILY, protocol) + p.hop_latency(FAMILY, hop, protocol)
