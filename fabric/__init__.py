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

GpuSpec, NicSpec = GPUSpec, NICSpec  # the design card's spellings of the same classes
from fabric import units
from fabric.errors import FabricError, Infeasible, InvalidSpec, NoRoute, TooLarge
from fabric.io import from_json, load, save, to_json
from fabric.materials import BillOfMaterials, bill_of_materials
from fabric.metrics import Summary, bisection_bandwidth, hop_diameter, summary
from fabric.validate import check, validate
from fabric.flows import completion_times, flow_rates, link_utilization
from fabric.topologies import dgx_superpod, fat_tree, nvl72, rail_only, spectrum_x
from fabric.presets import PRESETS, preset
from fabric.placement import place
from fabric.facility import FacilityPower, cluster_for_power, facility_power
from fabric.sites import join_sites

# Imported on first use: plot needs plotly and strategies hypothesis (a test dependency), and
# `import fabric` must stay fast without either.
_LAZY = ("plot", "strategies")


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"fabric.{name}")
    raise AttributeError(f"module 'fabric' has no attribute {name!r}")

__all__ = [  # plot and strategies stay out: a star import must not pull in plotly or hypothesis
    "units",
    "PRESETS",
    "preset",
    "place",
    "FacilityPower",
    "cluster_for_power",
    "facility_power",
    "join_sites",
    "GpuSpec",
    "NicSpec",
    "BillOfMaterials",
    "Summary",
    "bill_of_materials",
    "bisection_bandwidth",
    "check",
    "from_json",
    "hop_diameter",
    "load",
    "save",
    "summary",
    "to_json",
    "validate",
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
    "TooLarge",
    "completion_times",
    "dgx_superpod",
    "fat_tree",
    "flow_rates",
    "link_utilization",
    "nvl72",
    "rail_only",
    "spectrum_x",
]
