"""The bill of materials of a fabric: switches by tier and model, cables, optics and watts,
read from the graph as it is now (see :mod:`fabric.schema`).

Examples
--------
>>> import fabric
>>> bom = bill_of_materials(fabric.dgx_superpod(4))
>>> sorted(bom.switches), bom.network_watts > 0          # leaf and spine tiers
([1, 2], True)
"""

from collections import Counter
from dataclasses import asdict, dataclass
from itertools import compress, repeat
from operator import eq

import numpy as np

from fabric.catalog import OPTICS
from fabric.checks import require_int, require_positive
from fabric.errors import InvalidSpec
from fabric.graph_arrays import GraphArrays
from fabric.parts import model_spec
from fabric.schema import (MEDIA, TRANSPORTS, edge_attr, graph_attr, node_kinds, node_values, successor_items,
                           tier_label)
from fabric.tables import format_watts, html_table, text_table
from fabric.units import Gbps


@dataclass(frozen=True, kw_only=True)
class BillOfMaterials:
    """Switches, cables, optics and NICs of a fabric, and their power.

    Attributes
    ----------
    switches : dict
        ``{tier: {model: count}}``.
    cables : dict
        ``{tier: count}`` of physical scale-out cables, by the highest tier they reach
        (1: NIC to leaf, 2: leaf to spine, ...).
    optics : dict
        ``{optic name: count}``, one transceiver per cable end.
    nics : dict
        ``{model: count}``.
    switch_watts, optic_watts, nic_watts : float
        Power of the switches (without optics), transceivers and NICs, watts.
    network_watts : float
        Their sum.
    gpu_watts : float
        GPU board power, watts (not part of the network).
    """

    switches: dict
    cables: dict
    optics: dict
    nics: dict
    switch_watts: float
    optic_watts: float
    nic_watts: float
    network_watts: float
    gpu_watts: float

    def to_dict(self):
        """The fields as a plain dict."""
        return asdict(self)

    @property
    def switch_count(self):
        """Scale-out switches over every tier and model."""
        return sum(sum(models.values()) for models in self.switches.values())

    def _rows(self):
        rows = []
        for tier, models in self.switches.items():
            rows.append((f"{tier_label(tier)} switches", ", ".join(f"{n:,} {m}" for m, n in models.items())))
        rows += [(f"{tier_label(tier)} cables", f"{n:,}") for tier, n in self.cables.items()]
        rows += [(f"optics {name}", f"{n:,}") for name, n in self.optics.items()]
        rows.append(("NICs", ", ".join(f"{n:,} {m}" for m, n in self.nics.items())))
        rows += [
            ("switch power", format_watts(self.switch_watts)),
            ("optics power", format_watts(self.optic_watts)),
            ("NIC power", format_watts(self.nic_watts)),
            ("network power", format_watts(self.network_watts)),
            ("GPU power", format_watts(self.gpu_watts)),
        ]
        return rows

    def __str__(self):
        return text_table("Bill of materials", self._rows())

    def _repr_html_(self):
        return html_table("Bill of materials", self._rows())


def _edge_value(G, u, v, data, name):
    value = data.get(name)
    return edge_attr(G, u, v, name) if value is None else value


def _cable_links_and_speed(G, u, v, data):
    try:
        links, bandwidth = data["links"], data["bandwidth"]
    except KeyError:
        links, bandwidth = _edge_value(G, u, v, data, "links"), _edge_value(G, u, v, data, "bandwidth")
    if type(links) is not int or links < 1:  # the common case skips the full check
        links = require_int(f"links of edge ({u!r}, {v!r})", links, minimum=1)
    if type(bandwidth) is not float or not bandwidth > 0:
        bandwidth = require_positive(f"bandwidth of edge ({u!r}, {v!r})", bandwidth)
    return links, bandwidth / links


def _cables(G, tiers, arrays):
    """Physical scale-out cables: ``{(tier, speed per cable): count}``.

    A cable's tier is the highest tier it reaches (``tiers`` maps switches to their tier;
    NICs count as 0). The two directed edges of a full-duplex cable count once, at the
    node that comes first in the graph; if they disagree, the larger number of links and
    the faster speed are taken.
    """
    cables = _cables_by_arrays(tiers, arrays)
    return _cables_by_edges(G, tiers) if cables is None else cables


def _cables_by_arrays(tiers, arrays):
    """:func:`_cables` on a :class:`GraphArrays`; None where a value needs the
    edge-by-edge checks (a missing attribute, links not an int >= 1, a bandwidth not > 0)."""
    try:
        # the columns as compile_fabric reads them, so that a step reads each once
        medium = arrays.column("medium", np.int8, codes={name: i for i, name in enumerate(MEDIA)})
        if arrays.types("links") != {int}:  # 2.0 is named, not rounded
            return None
        links = arrays.column("links").astype(np.int64)
        bandwidth = arrays.column("bandwidth")
    except (KeyError, TypeError, ValueError):
        return None
    if not ((links >= 1).all() and (bandwidth > 0).all()):
        return None
    src, dst = arrays.endpoints
    reverse = arrays.reverse
    transport = np.isin(medium, [MEDIA.index(name) for name in TRANSPORTS])
    counted = transport & ((reverse < 0) | (dst >= src))  # once, at the node that comes first
    speed = bandwidth / links
    paired = reverse >= 0
    links[paired] = np.maximum(links[paired], links[reverse[paired]])
    speed[paired] = np.maximum(speed[paired], speed[reverse[paired]])
    tier = np.zeros(len(arrays.index), np.int64)
    for node, t in tiers.items():
        tier[arrays.index[node]] = t
    cable_tier, speed, links = np.maximum(tier[src], tier[dst])[counted], speed[counted], links[counted]
    cables = {}
    while len(speed):  # a few kinds of cable: one pass over the rest per kind beats a sort
        kind = (cable_tier == cable_tier[0]) & (speed == speed[0])
        cables[int(cable_tier[0]), float(speed[0])] = int(links[kind].sum())
        cable_tier, speed, links = cable_tier[~kind], speed[~kind], links[~kind]
    return cables


def _cables_by_edges(G, tiers):
    """:func:`_cables` edge by edge, raising ``InvalidSpec`` naming a bad edge."""
    order = {node: i for i, node in enumerate(G)}
    adjacency = dict(successor_items(G))
    cables = {}
    for u, successors in adjacency.items():
        first, tier_u = order[u], tiers.get(u, 0)
        for v, data in successors.items():
            medium = data.get("medium")
            if medium not in TRANSPORTS:
                if medium is None:
                    edge_attr(G, u, v, "medium")  # raises: the attribute is missing
                continue  # NVLink and PCIe stay inside the server or rack
            reverse = adjacency[v].get(u)
            if reverse is not None and order[v] < first:
                continue  # counted from v
            links, speed = _cable_links_and_speed(G, u, v, data)
            if reverse is not None and (reverse.get("links"), reverse.get("bandwidth")) != (
                data.get("links"), data.get("bandwidth")
            ):
                back_links, back_speed = _cable_links_and_speed(G, v, u, reverse)
                links, speed = max(links, back_links), max(speed, back_speed)
            key = (max(tier_u, tiers.get(v, 0)), speed)
            cables[key] = cables.get(key, 0) + links
    return cables


def _optic_for(speed):
    """The slowest optic in OPTICS at least as fast as ``speed`` (bytes/s)."""
    fitting = [optic for optic in OPTICS.values() if optic.bandwidth >= speed * (1 - 1e-9)]
    if not fitting:
        fastest = max(optic.bandwidth for optic in OPTICS.values())
        raise InvalidSpec(
            f"cable speed={speed / Gbps:g} Gb/s must be <= {fastest / Gbps:g} Gb/s, the fastest optic in fabric.OPTICS"
        )
    return min(fitting, key=lambda optic: optic.bandwidth)


def bill_of_materials(G, *, arrays=None):
    """Count the switches, cables, optics and NICs of a fabric and add up their power.

    Assumptions (the conservative reference design):

    - every scale-out cable (medium ``"infiniband"`` or ``"ethernet"``: NIC to switch and
      switch to switch) is optical, with one transceiver per cable end, the slowest one in
      :data:`fabric.OPTICS` that carries the cable's speed. Real switches often hold two
      cables in one twin-port transceiver (an 800G OSFP for two 400G links) at about the
      same watts per Gb/s; copper (DAC) cables would save the optics' power;
    - NVLink is copper inside the NVLink domain and PCIe is on the board: no cables, optics
      or watts are counted for them, and NVSwitch power is part of the server;
    - a full-duplex cable is two directed edges; an edge with ``links=k`` is ``k`` cables.

    Switch power is :attr:`SwitchSpec.power` (without optics), NIC power
    :attr:`NICSpec.power`; GPU power (:attr:`GPUSpec.power` times the GPUs) is reported
    apart from the network.

    Parameters
    ----------
    G : networkx.DiGraph
    arrays : fabric.graph_arrays.GraphArrays, optional
        ``G`` already read by a caller that reads it for more (:func:`fabric.summary`).

    Returns
    -------
    BillOfMaterials

    Examples
    --------
    >>> import fabric
    >>> bom = bill_of_materials(fabric.dgx_superpod(31, gpu="H100"))
    >>> bom.switches
    {1: {'qm9700': 8}, 2: {'qm9700': 4}}
    >>> bom.cables                  # 248 NIC cables; 8 leaves x 32 uplinks
    {1: 248, 2: 256}
    >>> bom.optics
    {'osfp-400g': 1008}
    >>> print(bom)                  # doctest: +ELLIPSIS
    Bill of materials
    -----------------
    tier 1 (leaf) switches   8 qm9700
    tier 2 (spine) switches  4 qm9700
    tier 1 (leaf) cables     248
    tier 2 (spine) cables    256
    optics osfp-400g         1,008
    NICs                     248 cx7
    switch power             ... kW
    optics power             ... kW
    NIC power                ... kW
    network power            ... kW
    GPU power                ... kW
    """
    kinds = node_kinds(G)
    gpus = kinds.count("gpu")
    # the switches and NICs, a few per GPU at most, read without a loop over them
    switch_nodes = list(compress(G._node, map(eq, kinds, repeat("switch"))))
    nic_nodes = list(compress(G._node, map(eq, kinds, repeat("nic"))))
    tiers = dict(zip(switch_nodes, node_values(G, switch_nodes, "tier")))
    switches = Counter(zip(tiers.values(), node_values(G, switch_nodes, "model")))
    nics = Counter(node_values(G, nic_nodes, "model"))
    cables, optics = Counter(), Counter()
    for (tier, speed), n in _cables(G, tiers, arrays or GraphArrays(G)).items():
        cables[tier] += n
        optics[_optic_for(speed).name] += 2 * n
    switch_watts = sum(model_spec(G, "switch", model).power * n for (_, model), n in switches.items())
    optic_watts = sum(OPTICS[name].power * n for name, n in optics.items())
    nic_watts = sum(model_spec(G, "nic", model).power * n for model, n in nics.items())
    by_tier = {}
    for (tier, model), n in sorted(switches.items()):
        by_tier.setdefault(tier, {})[model] = n
    return BillOfMaterials(
        switches=by_tier,
        cables=dict(sorted(cables.items())),
        optics=dict(sorted(optics.items())),
        nics=dict(sorted(nics.items())),
        switch_watts=float(switch_watts),
        optic_watts=float(optic_watts),
        nic_watts=float(nic_watts),
        network_watts=float(switch_watts + optic_watts + nic_watts),
        gpu_watts=float(graph_attr(G, "gpu").power * gpus),
    )
