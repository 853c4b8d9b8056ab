"""Fabric builders: each returns a new :class:`networkx.DiGraph` following :mod:`fabric.schema`.

All scale-out cables run at the NIC's speed; faster switch ports are split (breakout)
to it, so a 64 x 800G switch serves 128 x 400G NICs. Parallel cables between the same
two switches are one edge whose ``links`` attribute counts them.
"""

from fabric.checks import lookup, require_bool, require_int
from fabric.scale_out import build_scale_out
from fabric.units import Gbps

# DGX/HGX servers carry 8 GPUs on one NVSwitch baseboard (DGX H100/B200 datasheets).
HGX_GPUS = 8
# GB200 NVL72: 18 compute trays of 2 Grace CPUs + 4 Blackwell GPUs in one NVLink domain
# of 72 GPUs (GB200 NVL72 datasheet).
NVL72_TRAY_GPUS = 4
NVL72_TRAYS = 18

# DGX SuperPOD compute fabrics: DGX A100 with 8 x ConnectX-6 HDR on Quantum QM8700;
# DGX H100/H200/B200 with 8 x ConnectX-7 NDR on Quantum-2 QM9700 (SuperPOD reference
# architectures).
SUPERPOD_HARDWARE = {
    "A100": ("cx6", "qm8700"),
    "H100": ("cx7", "qm9700"),
    "H200": ("cx7", "qm9700"),
    "B200": ("cx7", "qm9700"),
}


def fat_tree(
    nodes,
    gpu="H100",
    nic_bandwidth=400 * Gbps,
    switch="tomahawk4",
    transport=None,
    routing="ecmp",
    qps=1,
    rail_optimized=True,
    pod_nodes=None,
    oversubscription=1.0,
    tiers=None,
    *,
    nic=None,
    gpus_per_node=HGX_GPUS,
    servers_per_leaf=None,
    planes=1,
    dual_tor=False,
):
    """A fat tree (folded Clos) of 8-GPU servers, one NIC per GPU.

    Parameters
    ----------
    nodes : int
        Servers.
    gpu : str
        A key of :data:`fabric.GPUS`.
    nic_bandwidth : float
        NIC line rate, bytes/s; picks the first NIC of :data:`fabric.NICS` with that rate
        and transport unless ``nic`` names one.
    switch : str, SwitchSpec or sequence of them
        A key of :data:`fabric.SWITCHES` (or a spec of your own) for every tier, or one
        per tier, leaf first (e.g. ``("tomahawk4", "jericho3-ai", "jericho3-ai")``: fixes
        the tiers to its length); ports are split to the NIC rate.
    transport : str or None
        ``"ethernet"`` or ``"infiniband"``; None takes the switch's.
    routing : str
        ``"ecmp"`` (one hashed path per queue pair) or ``"adaptive"``.
    qps : int
        Queue pairs per connection, hashed separately under ECMP.
    rail_optimized : bool
        GPU i of every server in a leaf group on that group's leaf i (NVIDIA's rail
        design); False cables all NICs of a server to one top-of-rack leaf.
    pod_nodes : int or None
        Servers per pod; pods need 3 tiers. The last pod may be partly filled.
    oversubscription : float
        A pod's GPU-facing bandwidth over its uplink bandwidth (above the leaf when there
        are no pods); >= 1 and realised exactly in whole ports.
    tiers : int or None
        Switch tiers; None picks the fewest that fit.
    nic : str or None
        A key of :data:`fabric.NICS`.
    gpus_per_node : int
        GPUs (and NICs) per server, one NVLink domain each.
    servers_per_leaf : int or None
        Servers under one top-of-rack leaf (one leaf group when rail-optimized); their NIC
        ports are the leaf's down ports in use and its uplinks match them (at
        ``oversubscription`` with 2 tiers). None fills every down port.
    planes : int
        Each NIC's bandwidth split over this many ports, one per plane; every plane is a
        whole Clos of its own (the tiers, pods and oversubscription above, at the port
        speed), so planes meet only at the NICs (Quantum-X800 / Spectrum-X multi-plane).
    dual_tor : bool
        Each NIC's bandwidth split over two ports on two top-of-rack switches: with
        ``planes=1`` both ToRs share the spines; with ``planes=2`` each is in its own plane
        (Alibaba HPN). Flows split their bytes evenly over the ports both ends have, port
        to port; a cut port leaves the other to carry the flow.

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> import fabric
    >>> G = fabric.fat_tree(64, gpu="H100", switch="tomahawk4")
    >>> G.graph["routing"], G.graph["transport"], G.graph["gpus_per_node"]
    ('ecmp', 'ethernet', 8)
    >>> sorted({d["tier"] for _, d in G.nodes(data=True) if d["kind"] == "switch"})
    [1, 2]
    >>> fabric.fat_tree(64, oversubscription=0.5)
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: oversubscription=0.5 must be >= 1
    """
    require_int("nodes", nodes, minimum=1)
    require_int("gpus_per_node", gpus_per_node, minimum=1)
    params = dict(
        nodes=nodes,
        gpu=gpu,
        nic_bandwidth=nic_bandwidth,
        switch=switch,
        transport=transport,
        routing=routing,
        qps=qps,
        rail_optimized=rail_optimized,
        pod_nodes=pod_nodes,
        oversubscription=oversubscription,
        tiers=tiers,
        nic=nic,
        gpus_per_node=gpus_per_node,
        servers_per_leaf=servers_per_leaf,
        planes=planes,
        dual_tor=dual_tor,
    )
    return build_scale_out(
        builder="fat_tree",
        params=params,
        hosts=nodes,
        gpus_per_node=gpus_per_node,
        gpus_per_domain=gpus_per_node,
        gpu=gpu,
        nic=nic,
        nic_bandwidth=nic_bandwidth,
        switch=switch,
        transport=transport,
        routing=routing,
        qps=qps,
        rail_optimized=require_bool("rail_optimized", rail_optimized),
        rail_only=False,
        tiers=tiers,
        pod_nodes=pod_nodes,
        oversubscription=oversubscription,
        servers_per_leaf=servers_per_leaf,
        planes=planes,
        dual_tor=dual_tor,
    )


def dgx_superpod(nodes, gpu="H100", *, routing="adaptive", tiers=None):
    """NVIDIA DGX SuperPOD compute fabric: rail-optimized, non-blocking InfiniBand fat tree.

    Scalable units (SU) of ``radix / 2`` servers share one leaf per rail (32 servers on
    QM9700, 20 on QM8700); a third tier of core switches is added when two no longer fit.
    NVIDIA's tables count 31 servers per SU (one slot holds the UFM appliance); 31 or 32
    servers give the same switches here.

    Parameters
    ----------
    nodes : int
        DGX servers.
    gpu : str
        ``"A100"`` (ConnectX-6 HDR, QM8700), ``"H100"``, ``"H200"`` or ``"B200"``
        (ConnectX-7 NDR, QM9700).
    routing : str
        ``"adaptive"`` (InfiniBand adaptive routing, the reference setting) or ``"ecmp"``.
    tiers : int or None
        None picks the fewest that fit.

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(127, gpu="H100")
    >>> from collections import Counter
    >>> sorted(Counter(d["tier"] for _, d in G.nodes(data=True) if d["kind"] == "switch").items())
    [(1, 32), (2, 16)]
    """
    require_int("nodes", nodes, minimum=1)
    nic, switch = lookup("gpu", gpu, SUPERPOD_HARDWARE)
    return build_scale_out(
        builder="dgx_superpod",
        params=dict(nodes=nodes, gpu=gpu, routing=routing, tiers=tiers),
        hosts=nodes,
        gpus_per_node=HGX_GPUS,
        gpus_per_domain=HGX_GPUS,
        gpu=gpu,
        nic=nic,
        nic_bandwidth=None,
        switch=switch,
        transport="infiniband",
        routing=routing,
        qps=1,
        rail_optimized=True,
        rail_only=False,
        tiers=tiers,
        pod_nodes=None,
        oversubscription=1.0,
    )


def spectrum_x(nodes, gpu="H100", *, switch="sn5600", nic="bluefield3", tiers=None, oversubscription=1.0):
    """NVIDIA Spectrum-X Ethernet: Spectrum-4 switches, BlueField-3 SuperNICs, adaptive routing.

    Rail-optimized like the SuperPOD; SN5600 ports are split to 128 x 400G, so a leaf
    group holds 64 servers and two tiers reach 1,024 servers (8,192 GPUs).

    Examples
    --------
    >>> import fabric
    >>> G = fabric.spectrum_x(16)
    >>> G.graph["transport"], G.graph["routing"]
    ('ethernet', 'adaptive')
    """
    require_int("nodes", nodes, minimum=1)
    return build_scale_out(
        builder="spectrum_x",
        params=dict(nodes=nodes, gpu=gpu, switch=switch, nic=nic, tiers=tiers, oversubscription=oversubscription),
        hosts=nodes,
        gpus_per_node=HGX_GPUS,
        gpus_per_domain=HGX_GPUS,
        gpu=gpu,
        nic=nic,
        nic_bandwidth=None,
        switch=switch,
        transport="ethernet",
        routing="adaptive",
        qps=1,
        rail_optimized=True,
        rail_only=False,
        tiers=tiers,
        pod_nodes=None,
        oversubscription=oversubscription,
    )


def rail_only(
    nodes,
    gpu="H100",
    nic_bandwidth=400 * Gbps,
    switch="qm9700",
    transport=None,
    routing="adaptive",
    qps=1,
    tiers=None,
    *,
    nic=None,
    gpus_per_node=HGX_GPUS,
):
    """Rail-only network (Wang et al. 2023, arXiv:2307.12169): no spine joins the rails.

    Each rail (GPU i of every server) has its own Clos: one switch while the servers fit
    its ports, more tiers beyond. Traffic between rails must cross NVLink inside a server.

    Examples
    --------
    >>> import fabric
    >>> G = fabric.rail_only(32, gpu="H100")
    >>> sum(1 for _, d in G.nodes(data=True) if d["kind"] == "switch")
    8
    """
    require_int("nodes", nodes, minimum=1)
    require_int("gpus_per_node", gpus_per_node, minimum=1)
    params = dict(
        nodes=nodes,
        gpu=gpu,
        nic_bandwidth=nic_bandwidth,
        switch=switch,
        transport=transport,
        routing=routing,
        qps=qps,
        tiers=tiers,
        nic=nic,
        gpus_per_node=gpus_per_node,
    )
    return build_scale_out(
        builder="rail_only",
        params=params,
        hosts=nodes,
        gpus_per_node=gpus_per_node,
        gpus_per_domain=gpus_per_node,
        gpu=gpu,
        nic=nic,
        nic_bandwidth=nic_bandwidth,
        switch=switch,
        transport=transport,
        routing=routing,
        qps=qps,
        rail_optimized=False,
        rail_only=True,
        tiers=tiers,
        pod_nodes=None,
        oversubscription=1.0,
    )


def nvl72(
    racks,
    gpu="GB200",
    *,
    nic="cx7",
    switch="qm9700",
    routing="adaptive",
    rail_optimized=True,
    tiers=None,
    oversubscription=1.0,
):
    """GB200 NVL72 racks: 72-GPU NVLink domains plus an InfiniBand scale-out fabric.

    Each rack is one NVLink domain (its NVSwitch trays are one ``nvswitch`` node); each
    compute tray is a host of 4 GPUs, each GPU with its own NIC (ConnectX-7 400G in the
    DGX GB200 reference; pass ``nic="cx8"``, ``switch="q3400"`` for XDR). Rails are the
    tray-local GPU index.

    Examples
    --------
    >>> import fabric
    >>> G = fabric.nvl72(2)
    >>> sum(1 for _, d in G.nodes(data=True) if d["kind"] == "gpu")
    144
    >>> sum(1 for _, d in G.nodes(data=True) if d["kind"] == "nvswitch")
    2
    """
    require_int("racks", racks, minimum=1)
    return build_scale_out(
        builder="nvl72",
        params=dict(
            racks=racks,
            gpu=gpu,
            nic=nic,
            switch=switch,
            routing=routing,
            rail_optimized=rail_optimized,
            tiers=tiers,
            oversubscription=oversubscription,
        ),
        hosts=racks * NVL72_TRAYS,
        gpus_per_node=NVL72_TRAY_GPUS,
        gpus_per_domain=NVL72_TRAY_GPUS * NVL72_TRAYS,
        gpu=gpu,
        nic=nic,
        nic_bandwidth=None,
        switch=switch,
        transport=None,
        routing=routing,
        qps=1,
        rail_optimized=require_bool("rail_optimized", rail_optimized),
        rail_only=False,
        tiers=tiers,
        pod_nodes=None,
        oversubscription=oversubscription,
    )
