"""Point-to-point send/recv between two GPUs (pipeline-parallel activations).

NVLink inside a domain; across domains one flow over the NIC path (PXN picks the NIC
nearest the receiver on rail-optimized fabrics). NCCL prices a send with the ring
latency table: base latency plus one hop.
"""

import numpy as np

from collectives.engine import Step, phase

NAME = "direct"
FAMILY = "ring"
COLLECTIVES = ("send_recv",)


def check(ctx):
    """Any two distinct ranks."""


def _same_domain(ctx):
    return len(ctx.group.domains) == 1


def steps(ctx):
    src, dst = ctx.extra["sender"], ctx.extra["receiver"]
    return [Step("send", ctx.nbytes, 1, np.array([src]), np.array([dst]))]


def analytic(ctx):
    prof = ctx.profile
    rate = prof.nvlink if _same_domain(ctx) else min(prof.nvlink, prof.nic)
    return [phase("send", 1, ctx.nbytes, 1, rate)]


def latency(ctx, protocol):
    p = ctx.params
    hop = "nvlink" if _same_domain(ctx) else "network"
    return p.base(FAMILY, protocol) + p.hop_latency(FAMILY, hop, protocol)
