"""Point-to-point send/recv between two GPUs (pipeline-parallel activations).

NVLink inside a domain; across domains one flow over the NIC path (PXN picks the NIC
nearest the receiver on rail-optimized fabrics). NCCL prices a send with the ring
latency table: base latency plus one hop.
"""

import numpy as np

from collectives.engine import Step

NAME = "direct"
FAMILY = "ring"
COLLECTIVES = ("send_recv",)


def check(ctx):
    """Any two distinct ranks."""


def _same_domain(ctx):
    return len(ctx.group.domains) == 1


def steps(ctx):
    src, dst = ctx.extra["sender"], ctx.extra["receiver"]
    rate = ctx.nvlink_rate() if _same_domain(ctx) else min(ctx.nvlink_rate(), ctx.nic_rate([src, dst]))
    return [
        Step(name="send", bytes_per_flow=ctx.nbytes, repeats=1, analytic_rate=rate, src=np.array([src]), dst=np.array([dst]))
    ]


def latency(ctx, protocol):
    p = ctx.params
    hop = "nvlink" if _same_domain(ctx) else "network"
    return p.base(FAMILY, protocol) + p.hop_latency(FAMILY, hop, protocol)
