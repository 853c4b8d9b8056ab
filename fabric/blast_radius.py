"""What a failed part does to a job: which parts of a fabric stop it and which only slow it.

A synchronous training job stops when any of its GPUs loses the network: a GPU, its host or
its NIC failing, or the only leaf switch or cable its NIC has. A NIC with ports on several
switches (dual top-of-rack, one port per plane) loses half its bandwidth instead, and a
failed spine or core switch, or a cable between switches, leaves the Clos other paths: those
slow the job without stopping it.

Examples
--------
>>> import fabric
>>> parts = failure_domains(fabric.dgx_superpod(4))
>>> parts.hosts, parts.stopping_leaves, parts.stopping_cables, parts.slowing_switches
(4, 8, 32, 4)
>>> failure_domains(fabric.fat_tree(4, dual_tor=True, rail_optimized=False)).stopping_leaves
0
"""

from dataclasses import asdict, dataclass

import numpy as np

from fabric.compiled import compile_fabric
from fabric.schema import ranks_array


@dataclass(frozen=True)
class FailureDomains:
    """Counts of the parts whose failure stops or slows a job.

    Attributes
    ----------
    gpus, hosts, nics : int
        The job's; each one failing stops it.
    stopping_leaves, stopping_cables : int
        Leaf switches and NIC-to-leaf cables that are some job NIC's only path.
    slowing_leaves, slowing_cables : int
        Leaves and NIC cables of NICs with other ports left.
    slowing_switches, slowing_switch_cables : int
        Switches above the leaves, and cables between switches, of the whole fabric
        (routing goes around them; each cable of a bundle counted).
    """

    gpus: int
    hosts: int
    nics: int
    stopping_leaves: int
    stopping_cables: int
    slowing_leaves: int
    slowing_cables: int
    slowing_switches: int
    slowing_switch_cables: int

    def to_dict(self):
        return asdict(self)


def failure_domains(G, ranks=None, *, compiled=None):
    """The :class:`FailureDomains` of the job on ``ranks`` (default every GPU) of ``G``.

    Parameters
    ----------
    G : networkx.DiGraph
    ranks : sequence of int, optional
    compiled : fabric.compiled.CompiledFabric, optional
        ``G`` compiled already.
    """
    C = compile_fabric(G) if compiled is None else compiled
    ranks = np.arange(C.n_gpus) if ranks is None else ranks_array("ranks", ranks, C.n_gpus)
    ports = C.port_leaf[ranks]
    cabled = ports >= 0
    single = cabled.sum(axis=1) == 1
    lone = ports[single][cabled[single]]
    shared = ports[~single][cabled[~single]]
    upper = C.switch_tier > 1
    between = (C.switch_pos[C.edge_src] >= 0) & (C.switch_pos[C.edge_dst] >= 0)
    return FailureDomains(
        gpus=len(ranks),
        hosts=len(np.unique(C.host[ranks])),
        nics=int((C.nic[ranks] >= 0).sum()),
        stopping_leaves=len(np.unique(lone)),
        stopping_cables=len(lone),
        slowing_leaves=len(np.setdiff1d(np.unique(shared), lone)),
        slowing_cables=len(shared),
        slowing_switches=int(upper.sum()),
        slowing_switch_cables=int(C.links[between].sum()) // 2,  # a cable is two directed edges
    )
