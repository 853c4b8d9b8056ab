"""Recursive halving-doubling (Rabenseifner; Thakur, Rabenseifner and Gropp 2005).

Reduce-scatter by recursive halving: in step k every rank swaps half of what it still
holds, ``S / 2^(k+1)``, with the rank whose position differs in bit k; the all-gather
retraces the steps. Partners start close (inside an NVLink domain, where the biggest
halves move) and end far. ``2 log2(n)`` steps; needs a power-of-two group.
"""

import math

import numpy as np

from collectives.engine import Step, phase
from collectives.errors import Unsupported

NAME = "halving_doubling"
FAMILY = "ring"  # point-to-point steps, priced with NCCL's ring latency table
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter")


def check(ctx):
    n = ctx.group.size
    if n & (n - 1):
        raise Unsupported(f"algorithm='halving_doubling' needs a power-of-two group, got {n} ranks")


def _rounds(ctx):
    return 2 if ctx.collective == "all_reduce" else 1


def steps(ctx):
    r = ctx.group.ranks
    n = len(r)
    pos = np.arange(n)
    result = []
    for k in range(int(math.log2(n))):
        src, dst = r, r[pos ^ (1 << k)]
        chunk = ctx.nbytes / 2 ** (k + 1)
        result.append(Step(f"distance {1 << k}", chunk, _rounds(ctx), src, dst))
    return result


def _crosses(ctx, k):
    """Whether any rank's partner at distance 2^k sits in another NVLink domain.

    When domains are equal consecutive blocks of ``m`` (a power of two) of the sorted ranks,
    partners stay inside exactly when 2^k < m."""
    m = ctx.group.per_domain
    if m is not None and m & (m - 1) == 0 and ctx.group.contiguous_domains:
        return (1 << k) >= m
    index = ctx.group.domain_index
    return bool((index != index[np.arange(len(index)) ^ (1 << k)]).any())


def analytic(ctx):
    """One flow per rank each way per step: NVLink inside a domain, its NIC (and PXN's
    NVLink hop when the partner is on another rail) outside."""
    n, prof = ctx.group.size, ctx.profile
    result = []
    for k in range(int(math.log2(n))):
        rate = min(prof.nic, prof.nvlink) if _crosses(ctx, k) else prof.nvlink
        result.append(phase(f"distance {1 << k}", n, ctx.nbytes / 2 ** (k + 1), _rounds(ctx), rate))
    return result


def latency(ctx, protocol):
    p = ctx.params
    total = p.base(FAMILY, protocol)
    for k in range(int(math.log2(ctx.group.size))):
        hop = "network" if _crosses(ctx, k) else "nvlink"
        total += _rounds(ctx) * p.hop_latency(FAMILY, hop, protocol)
    return total
