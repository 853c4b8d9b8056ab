"""Recursive halving-doubling (Rabenseifner; Thakur, Rabenseifner and Gropp 2005).

Reduce-scatter by recursive halving: in step k every rank swaps half of what it still
holds, ``S / 2^(k+1)``, with the rank whose position differs in bit k; the all-gather
retraces the steps. Partners start close (inside an NVLink domain, where the biggest
halves move) and end far. ``2 log2(n)`` steps; needs a power-of-two group.
"""

import math

import numpy as np

from collectives.engine import Step, endpoint_rate
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
        result.append(Step(f"distance {1 << k}", chunk, _rounds(ctx), endpoint_rate(ctx, src, dst), src, dst))
    return result


def latency(ctx, protocol):
    p = ctx.params
    r = ctx.group.ranks
    dom = ctx.compiled.domain
    n = len(r)
    total = p.base(FAMILY, protocol)
    for k in range(int(math.log2(n))):
        partner = r[np.arange(n) ^ (1 << k)]
        crosses = ((dom[r] != dom[partner]) | (dom[r] < 0)).any()
        total += _rounds(ctx) * p.hop_latency(FAMILY, "network" if crosses else "nvlink", protocol)
    return total
