"""Published clusters as they were built: :func:`preset` builds one by name, at its published
size or scaled by whole racks, with the builder arguments its sources give and, where they
are silent, named assumptions (:func:`describe` prints both).

Examples
--------
>>> import fabric
>>> sorted(fabric.PRESETS)[:3]
['alibaba-hpn', 'dgx-b200-superpod', 'dgx-gb200-superpod']
>>> G = fabric.preset("meta-llama3", gpus=2048)
>>> G.graph["preset"], sum(1 for _, kind in G.nodes(data="kind") if kind == "gpu")
('meta-llama3', 2048)
"""

import inspect
from dataclasses import dataclass
from types import MappingProxyType

from fabric.checks import require_choice, require_int
from fabric.errors import InvalidSpec
from fabric.topologies import HGX_GPUS, NVL72_TRAY_GPUS, NVL72_TRAYS, dgx_superpod, fat_tree, nvl72, spectrum_x
from fabric.units import Gbps

NVL72_GPUS = NVL72_TRAY_GPUS * NVL72_TRAYS


@dataclass(frozen=True)
class Preset:
    """One published cluster: how to build it and where its figures come from."""

    description: str  # one line
    builder: object  # a fabric builder: its first argument counts ``unit``-GPU blocks / per_block
    unit: int  # GPUs per whole block the cluster scales by (a rack, a server)
    per_block: int  # builder's first argument per block (servers per rack, or 1)
    gpus: int  # the published size
    arguments: dict
    sources: str
    assumed: str


# Meta's Llama 3 cluster (24,576 H100 on RoCE). Llama 3 paper (Llama Team, "The Llama 3 Herd of
# Models", 2024, section 3.3.1): 2 servers of 8 GPUs per rack under one top-of-rack switch; 192
# racks per 3,072-GPU pod joined by cluster switches at full bisection; 8 pods joined by
# aggregation switches at 1:7 oversubscription; 400 Gb/s RoCE per GPU; the collective library
# opens 16 flows between two GPUs for ECMP load balancing; the fabric is built of Arista 7800
# and Minipack2 (Tomahawk 4) switches. Meta's SIGCOMM'24 RoCE paper (Gangidi et al., "RDMA over
# Ethernet for Distributed AI Training at Meta Scale"): the same three tiers (rack, cluster and
# aggregator training switches), deep-buffer modular switches above the rack.
_META_RACK_SERVERS = 2
_META_POD_SERVERS = 384
# 1:7 cannot be cabled exactly: a pod's 192 racks send 16 uplinks each, and every plane's 192
# cables into its spine have no factor 7. 192/27 (7.11:1) is the nearest ratio whole cables give
# (192/28 = 6.86:1 the next).
META_OVERSUBSCRIPTION = 192 / 27

# Alibaba HPN (Qian et al., "Alibaba HPN: A Data Center Network for Large Language Model
# Training", SIGCOMM'24): 8 GPUs and 8 backend NICs of 2 x 200G per host; each NIC's two ports
# on two top-of-rack switches (non-stacked dual-ToR), the two ToRs in two separate planes
# (dual-plane aggregation); rail-optimized segments of 1,024 GPUs (128 hosts, 16 ToRs); 15
# segments (~15K GPUs) per pod under two tiers of 51.2 Tb/s single-chip switches; pods joined
# by a core tier at 1:15.
_HPN_SEGMENT_SERVERS = 128
_HPN_POD_SERVERS = 15 * _HPN_SEGMENT_SERVERS
HPN_CORE_OVERSUBSCRIPTION = 15

_SPECS = {
    "meta-llama3": Preset(
        description="Meta's Llama 3 RoCE cluster: 24,576 H100, 16 GPUs per rack switch, 8 pods of 3,072, "
                    "7:1 above the pods",
        builder=fat_tree,
        unit=_META_RACK_SERVERS * HGX_GPUS,
        per_block=_META_RACK_SERVERS,
        gpus=24_576,
        arguments=dict(gpu="H100", nic="cx7", nic_bandwidth=400 * Gbps,
                       switch=("tomahawk4", "arista-7808r3", "arista-7808r3"), routing="ecmp", qps=16,
                       rail_optimized=False, servers_per_leaf=_META_RACK_SERVERS, pod_nodes=_META_POD_SERVERS,
                       oversubscription=META_OVERSUBSCRIPTION),
        sources="Llama 3 paper, section 3.3.1 (racks, pods, 1:7, 16 flows per GPU pair, Arista 7800 and "
                "Minipack2 switches, 400 Gb/s per GPU); Meta SIGCOMM'24 RoCE paper (rack / cluster / aggregator "
                "training switches)",
        assumed="ConnectX-7 NICs; Minipack2 rack switches as Tomahawk 4 (64 x 400G); the Arista 7800 as the "
                "8-slot 7808R3 (288 x 400G) for cluster and aggregator switches, the fewest per pod that take "
                "every rack's uplinks; 192/27 "
                "(7.11:1) for 1:7, the nearest ratio whole cables give; 16 ECMP-hashed queue pairs per flow; "
                "gpus= fills pods in order, by whole racks",
    ),
    "dgx-h100-superpod": Preset(
        description="NVIDIA DGX SuperPOD with DGX H100: 4 scalable units, 127 servers, rail-optimized NDR "
                    "InfiniBand",
        builder=dgx_superpod,
        unit=HGX_GPUS,
        per_block=1,
        gpus=127 * HGX_GPUS,
        arguments=dict(gpu="H100"),
        sources="NVIDIA DGX SuperPOD reference architecture (DGX H100): compute fabric table, 32 servers per "
                "SU less one slot for the UFM appliance, 8 x ConnectX-7 per server, QM9700 leaves and spines",
        assumed="adaptive routing as the reference configures it; every SU full",
    ),
    "dgx-b200-superpod": Preset(
        description="NVIDIA DGX SuperPOD with DGX B200: 4 scalable units, 127 servers, rail-optimized NDR "
                    "InfiniBand",
        builder=dgx_superpod,
        unit=HGX_GPUS,
        per_block=1,
        gpus=127 * HGX_GPUS,
        arguments=dict(gpu="B200"),
        sources="NVIDIA DGX SuperPOD reference architecture (DGX B200): compute fabric table, QM9700 switches, "
                "8 x ConnectX-7 per server",
        assumed="adaptive routing; every SU full",
    ),
    "dgx-gb200-superpod": Preset(
        description="NVIDIA DGX SuperPOD with GB200 NVL72: 8 racks (576 GPUs) per scalable unit, one NDR NIC "
                    "per GPU",
        builder=nvl72,
        unit=NVL72_GPUS,
        per_block=1,
        gpus=8 * NVL72_GPUS,
        arguments=dict(gpu="GB200", nic="cx7", switch="qm9700"),
        sources="NVIDIA DGX SuperPOD reference architecture (DGX GB200): scalable units of 8 NVL72 racks, "
                "ConnectX-7 400G per GPU on a Quantum-2 compute fabric",
        assumed="rail-optimized by compute-tray GPU index; no published switch count was found to check",
    ),
    "gb300-nvl72-x800": Preset(
        description="GB300 NVL72 racks with ConnectX-8 800G per GPU on Quantum-X800 (XDR) InfiniBand, 8 racks",
        builder=nvl72,
        unit=NVL72_GPUS,
        per_block=1,
        gpus=8 * NVL72_GPUS,
        arguments=dict(gpu="GB300", nic="cx8", switch="q3400"),
        sources="GB300 NVL72 (72 ConnectX-8 per rack, GTC 2025 figures); Quantum-X800 Q3400 (144 x 800G)",
        assumed="rail-optimized non-blocking scale-out; 8 racks per unit as in the GB200 SuperPOD; Q3400's split "
                "and power are catalog estimates",
    ),
    "spectrum-x": Preset(
        description="NVIDIA Spectrum-X reference: 256 HGX H100 servers (2,048 GPUs), BlueField-3 SuperNICs, "
                    "SN5600",
        builder=spectrum_x,
        unit=HGX_GPUS,
        per_block=1,
        gpus=256 * HGX_GPUS,
        arguments=dict(gpu="H100"),
        sources="NVIDIA Spectrum-X (SN5600 switches, BlueField-3 400G SuperNICs, adaptive routing); NVIDIA's "
                "Israel-1 Spectrum-X system of 256 HGX H100 servers [3p]",
        assumed="rail-optimized like the SuperPOD, non-blocking",
    ),
    "alibaba-hpn": Preset(
        description="Alibaba HPN: dual-ToR, dual-plane RoCE, 2 x 200G per NIC, 15 segments of 1,024 GPUs per pod, "
                    "1:15 to the core",
        builder=fat_tree,
        unit=HGX_GPUS,
        per_block=1,
        gpus=_HPN_POD_SERVERS * HGX_GPUS,
        arguments=dict(gpu="H100", nic="cx7", switch="tomahawk5", routing="ecmp", qps=1, rail_optimized=True,
                       planes=2, dual_tor=True, tiers=3, pod_nodes=_HPN_POD_SERVERS,
                       oversubscription=HPN_CORE_OVERSUBSCRIPTION),
        sources="Qian et al., Alibaba HPN, SIGCOMM'24: 8 NICs of 2 x 200G per 8-GPU host, dual-ToR, dual-plane, "
                "rail-optimized 1,024-GPU segments, 15K GPUs per pod in two tiers, 51.2 Tb/s single-chip switches, "
                "1:15 above the pod",
        assumed="H100 GPUs and ConnectX-7 NICs (the paper names neither here); Tomahawk 5 for the 51.2 Tb/s "
                "switches at every tier; ToR uplinks equal to its downlinks (the paper's ToR keeps a few ports "
                "back, which was not checked); one pod at the published size, gpus= adds pods through the core; "
                "plain ECMP with one queue pair (HPN's own path selection does better; routing='adaptive' bounds "
                "it)",
    ),
    "xai-colossus": Preset(
        description="xAI Colossus as announced: 100,000 H100 on Spectrum-X Ethernet (design details assumed)",
        builder=spectrum_x,
        unit=HGX_GPUS,
        per_block=1,
        gpus=100_000,
        arguments=dict(gpu="H100"),
        sources="NVIDIA press release, Oct 2024: Colossus, 100,000 Hopper GPUs on Spectrum-X (SN5600, "
                "BlueField-3 SuperNICs at 400 Gb/s per GPU)",
        assumed="everything about the wiring: NVIDIA's rail-optimized reference design, non-blocking, three "
                "tiers of SN5600 as the builder sizes them; pods, oversubscription and tiers are not published",
    ),
}

PRESET_SPECS = MappingProxyType(_SPECS)  # name -> Preset
PRESETS = MappingProxyType({name: p.description for name, p in _SPECS.items()})

def preset(name, gpus=None, **overrides):
    """Build the published cluster ``name`` (a key of :data:`PRESETS`).

    Parameters
    ----------
    name : str
    gpus : int or None
        GPUs to build: None for the published size, else a multiple of the cluster's rack
        (16 for ``"meta-llama3"``, 8 for servers, 72 for NVL72 racks); pods and scalable
        units fill in order, so 8,192 GPUs of ``"meta-llama3"`` are two full pods and a
        third two thirds full.
    **overrides
        Builder arguments to change (``routing="adaptive"``, ``oversubscription=...``).

    Returns
    -------
    networkx.DiGraph
        With ``G.graph["preset"] = name``.

    Examples
    --------
    >>> G = preset("dgx-h100-superpod")
    >>> from collections import Counter
    >>> sorted(Counter(d["tier"] for _, d in G.nodes(data=True) if d["kind"] == "switch").items())
    [(1, 32), (2, 16)]
    >>> preset("dgx-h100-superpod", gpus=12)
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: gpus=12 must be a multiple of 8 (whole servers of dgx-h100-superpod)
    """
    require_choice("name", name, tuple(PRESET_SPECS))
    spec = PRESET_SPECS[name]
    if gpus is None:
        gpus = spec.gpus
    require_int("gpus", gpus, minimum=spec.unit)
    if gpus % spec.unit:
        block = "servers" if spec.unit == HGX_GPUS else "racks"
        raise InvalidSpec(f"gpus={gpus} must be a multiple of {spec.unit} (whole {block} of {name})")
    accepted = set(list(inspect.signature(spec.builder).parameters)[1:])  # the size is gpus=
    unknown = sorted(set(overrides) - accepted)
    if unknown:
        raise InvalidSpec(f"{name} is built by fabric.{spec.builder.__name__}, which takes no {', '.join(unknown)}; "
                          f"it takes {', '.join(sorted(accepted))}")
    G = spec.builder(gpus // spec.unit * spec.per_block, **{**spec.arguments, **overrides})
    G.graph["preset"] = name
    G.graph["name"] = f"{name}: {G.graph['name']}"
    return G


def describe(name):
    """What preset ``name`` is: its description, sources and assumptions, as text.

    Examples
    --------
    >>> print(describe("xai-colossus").splitlines()[0])
    xai-colossus: xAI Colossus as announced: 100,000 H100 on Spectrum-X Ethernet (design details assumed)
    """
    require_choice("name", name, tuple(PRESET_SPECS))
    spec = PRESET_SPECS[name]
    return (f"{name}: {spec.description}\n  built by fabric.{spec.builder.__name__} with {spec.arguments}\n"
            f"  sources: {spec.sources}\n  assumed: {spec.assumed}")
