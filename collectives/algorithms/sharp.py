"""SHARP: InfiniBand switches reduce in the network (NCCL's CollNet).

Ranks reduce-scatter inside their NVLink domain, then each rank's ``1/m`` slice goes up
to its leaf switch once and the reduced slice comes back once, so every NIC carries
``S/m`` each way, against ``2(D-1)/D x S/m`` for a ring between domains. Leaves that
hold group members each send one aggregated stream to a spine and get one back. The
domain phases and the network phase are pipelined.
"""

import numpy as np


from collectives.algorithms.layout import domain_rings, uniform_domains
from collectives.engine import Step, phase
from collectives.errors import Unsupported

NAME = "sharp"
FAMILY = "collnet"
COLLECTIVES = ("all_reduce",)
PIPELINED = True


def check(ctx):
    uniform_domains(ctx, NAME)
    if len(ctx.group.domains) < 2:
        raise Unsupported("algorithm='sharp' reduces between NVLink domains; the group has one")
    if not ctx.profile.in_network_reduction:
        raise Unsupported("algorithm='sharp' needs switches with in-network reduction (InfiniBand SHARP)")
    if ctx.profile.nic_ports > 1:
        raise Unsupported("algorithm='sharp' is modelled for NICs on one switch; this fabric's NICs have "
                          f"{ctx.profile.nic_ports} ports on separate switches (planes or dual top-of-rack)")


def _network_flows(ctx):
    C, ranks = ctx.compiled, ctx.group.ranks
    n = len(ranks)
    edges = [
        C.edge_ids(C.gpu[ranks], C.nic[ranks]),
        C.edge_ids(C.nic[ranks], C.leaf[ranks]),
        C.edge_ids(C.leaf[ranks], C.nic[ranks]),
        C.edge_ids(C.nic[ranks], C.gpu[ranks]),
    ]
    var = [np.tile(np.arange(n), 4)]
    edge = [np.concatenate(edges)]
    leaves = np.unique(C.leaf[ranks])
    count = n
    if len(leaves) > 1:  # one aggregated stream per leaf to its first spine and back
        g = C.switch_graph
        for leaf in leaves:
            pos = C.switch_pos[leaf]
            nbrs = g.indices[g.indptr[pos] : g.indptr[pos + 1]]
            ids = g.data[g.indptr[pos] : g.indptr[pos + 1]] - 1
            if len(nbrs):
                up = ids[0]
                back = C.edge_ids([C.edge_dst[up]], [leaf])
                var.append(np.array([count, count]))
                edge.append(np.array([up, back[0]]))
                count += 1
    edge = np.concatenate(edge)
    return np.concatenate(var), edge, np.ones(len(edge)), count


def steps(ctx):
    m = ctx.group.per_domain
    S = ctx.nbytes
    result = []
    if m > 1:
        src, dst = domain_rings(ctx.group)
        result.append(Step("intra reduce-scatter + all-gather", S / m, 2 * (m - 1), src, dst))
    result.append(Step("sharp reduce", S / m, 1, links=_network_flows(ctx)))
    return result


def analytic(ctx):
    """Domain rings at NVLink rate; each NIC carries its S/m slice once each way."""
    m = ctx.group.per_domain
    S, n, prof = ctx.nbytes, ctx.group.size, ctx.profile
    result = []
    if m > 1:
        result.append(phase("intra reduce-scatter + all-gather", n, S / m, 2 * (m - 1), prof.nvlink))
    result.append(phase("sharp reduce", n, S / m, 1, prof.nic))
    return result


def latency(ctx, protocol):
    p = ctx.params
    return p.base(FAMILY, protocol) + p.hop_latency(FAMILY, "nvlink", protocol) + p.hop_latency(FAMILY, "network", protocol)
