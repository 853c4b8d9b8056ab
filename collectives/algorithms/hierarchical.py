"""Hierarchical all-reduce: reduce-scatter in each NVLink domain, all-reduce across
domains between ranks of the same local index (one rail each), all-gather in each domain.

With ``m`` ranks per domain and ``D`` domains the network carries ``2(D-1)/D * S/m`` per
rank instead of a flat ring's ``2(n-1)/n * S / m`` per NIC share; the three phases run
one after another (not pipelined).
"""

from collectives.algorithms.layout import domain_rings, rail_rings, uniform_domains
from collectives.engine import Step, phase
from collectives.errors import Unsupported

NAME = "hierarchical"
FAMILY = "ring"
COLLECTIVES = ("all_reduce",)
PIPELINED = False


def check(ctx):
    m = uniform_domains(ctx, NAME)
    if len(ctx.group.domains) < 2 or m < 2:
        raise Unsupported(
            f"algorithm='hierarchical' needs >= 2 NVLink domains with >= 2 ranks each, got "
            f"{len(ctx.group.domains)} domain(s) of {m}"
        )


def steps(ctx):
    m = ctx.group.per_domain
    D = len(ctx.group.domains)
    S = ctx.nbytes
    isrc, idst = domain_rings(ctx.group)
    rsrc, rdst = rail_rings(ctx.group)
    return [
        Step("intra reduce-scatter", S / m, m - 1, isrc, idst),
        Step("inter all-reduce", S / (m * D), 2 * (D - 1), rsrc, rdst),
        Step("intra all-gather", S / m, m - 1, isrc, idst),
    ]


def analytic(ctx):
    """One flow per NVLink port inside domains; one per NIC (same rail) between them."""
    m = ctx.group.per_domain
    D = len(ctx.group.domains)
    S, n, prof = ctx.nbytes, ctx.group.size, ctx.profile
    return [
        phase("intra reduce-scatter", n, S / m, m - 1, prof.nvlink),
        phase("inter all-reduce", n, S / (m * D), 2 * (D - 1), prof.nic),
        phase("intra all-gather", n, S / m, m - 1, prof.nvlink),
    ]


def latency(ctx, protocol):
    p = ctx.params
    m = ctx.group.per_domain
    D = len(ctx.group.domains)
    return (
        p.base(FAMILY, protocol)
        + 2 * (m - 1) * p.hop_latency(FAMILY, "nvlink", protocol)
        + 2 * (D - 1) * p.hop_latency(FAMILY, "network", protocol)
    )
