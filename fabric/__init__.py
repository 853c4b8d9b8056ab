"""Graph models of GPU-cluster network fabrics.

A fabric is a :class:`networkx.DiGraph` (schema in :mod:`fabric.schema`) built by the
builders below and changed with the plain networkx API.

Examples
--------
>>> import fabric
>>> G = fabric.dgx_superpod(31, gpu="H100")
>>> sum(1 for _, d in G.nodes(data=True) if d["kind"] == "gpu")
248
"""

from fabric.catalog import GPUS, NICS, OPTICS, SWITCHES, GPUSpec, NICSpec, OpticSpec, SwitchSpec
from fabric.errors import FabricError, Infeasible, InvalidSpec, NoRoute
from fabric.topologies import dgx_superpod, fat_tree, nvl72, rail_only, spectrum_x

__all__ = [
    "GPUS",
    "NICS",
    "OPTICS",
    "SWITCHES",
    "GPUSpec",
    "NICSpec",
    "OpticSpec",
    "SwitchSpec",
    "FabricError",
    "Infeasible",
    "InvalidSpec",
    "NoRoute",
    "dgx_superpod",
    "fat_tree",
    "nvl72",
    "rail_only",
    "spectrum_x",
]
