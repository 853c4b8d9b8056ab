"""NVLink SHARP (NVLS): the NVSwitch reduces and multicasts in hardware.

Each GPU pushes its whole buffer into the switch once and, as owner of ``1/m`` of it,
stores the reduced slice back for multicast: its NVLink carries ``S (1 + 1/m)`` each
way, so ``algbw = B x nvls_efficiency / (1 + 1/m)`` (the three NVLS rows of nccl.csv, 4,
6 and 8 GPUs, fit one efficiency; domains spanning hosts, NVL72's, fit their own). Across
domains, NCCL pipelines the in-switch reduction with an all-reduce of each ``1/m`` slice
between same-rail GPUs of the domains; the slower of the two sets the pace.
"""

import math

import numpy as np


from collectives.algorithms.layout import rail_rings, uniform_domains
from collectives.engine import Step, phase
from collectives.errors import Unsupported

NAME = "nvls"
FAMILY = "nvls"
COLLECTIVES = ("all_reduce",)
PIPELINED = True
# NVLink SHARP arrived with third-generation NVSwitch in Hopper systems (NVLink 4).
MIN_NVLINK_GENERATION = 4


def check(ctx):
    generation = ctx.profile.nvlink_generation
    if generation < MIN_NVLINK_GENERATION:
        raise Unsupported(
            f"algorithm='nvls' needs NVLink generation >= {MIN_NVLINK_GENERATION} (NVSwitch with SHARP), "
            f"this GPU has {generation}"
        )
    m = uniform_domains(ctx, NAME)
    if m < 2:
        raise Unsupported(f"algorithm='nvls' needs >= 2 ranks per NVLink domain, got {m}")


def _switch_flows(ctx):
    """One variable per GPU loading its NVLink both ways; NVLS traffic is costed at its
    own efficiency by a coefficient relative to the NVLink capacity scale."""
    C, ranks = ctx.compiled, ctx.group.ranks
    up = C.edge_ids(C.gpu[ranks], C.domain[ranks])
    down = C.edge_ids(C.domain[ranks], C.gpu[ranks])
    n = len(ranks)
    coef = ctx.params.nvlink_efficiency / ctx.params.nvls(ctx.profile.multinode_nvlink)
    var = np.concatenate([np.arange(n), np.arange(n)])
    return var, np.concatenate([up, down]), np.full(2 * n, coef), n


def steps(ctx):
    m = ctx.group.per_domain
    D = len(ctx.group.domains)
    S = ctx.nbytes
    result = [Step("nvls reduce+multicast", S * (1 + 1 / m), 1, links=_switch_flows(ctx))]
    if D > 1:
        src, dst = rail_rings(ctx.group)
        result.append(Step("inter all-reduce", S / (m * D), 2 * (D - 1), src, dst))
    return result


def analytic(ctx):
    """Each NVLink port carries S(1 + 1/m) at NVLS efficiency; each NIC one ring flow."""
    m = ctx.group.per_domain
    D = len(ctx.group.domains)
    S, n, prof = ctx.nbytes, ctx.group.size, ctx.profile
    rate = prof.nvlink_line * ctx.params.nvls(prof.multinode_nvlink)
    result = [phase("nvls reduce+multicast", 2 * n, S * (1 + 1 / m), 1, rate)]
    if D > 1:
        result.append(phase("inter all-reduce", n, S / (m * D), 2 * (D - 1), prof.nic))
    return result


def latency(ctx, protocol):
    """NCCL's NVLS latency: one NVLink SHARP operation, plus a tree of network hops up and
    down (NVLSTree) when several domains take part."""
    p = ctx.params
    D = len(ctx.group.domains)
    network = 2 * math.ceil(math.log2(D)) * p.hop_latency(FAMILY, "network", protocol) if D > 1 else 0.0
    trays = p.multinode_nvls_latency if ctx.profile.multinode_nvlink else 0.0
    return p.base(FAMILY, protocol) + p.hop_latency(FAMILY, "nvlink", protocol) + network + trays
