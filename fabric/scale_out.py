"""Scale-out assembly shared by the fabric builders: the NIC and switches picked from the
catalog (or given as specs), a Clos sized for them (:mod:`fabric.clos`), the servers and
the cables, and the graph attributes of :mod:`fabric.schema`.
"""

from dataclasses import replace

import networkx as nx

from fabric.catalog import GPUS, NICS, SWITCHES, GPUSpec, NICSpec, SwitchSpec
from fabric.parts import own_specs
from fabric.checks import lookup, require_bool, require_choice, require_int, require_positive
from fabric.bulk import paused_gc
from fabric.clos import MAX_TIERS, add_clos, design_clos
from fabric.errors import Infeasible, InvalidSpec
from fabric.schema import ROUTINGS, TRANSPORTS
from fabric.server import add_servers
from fabric.units import Gbps

def generic_nic(bandwidth, transport):
    """A NIC of ``bandwidth`` bytes/s that no catalog part has (older or slower cards, e.g. the
    100 Gb/s links of 2021-2022 clusters, or a share of a NIC per GPU): the slowest catalog
    NIC of ``transport`` at least that fast, with its line rate set to ``bandwidth``; its
    host link and power are that part's (an upper bound for a slower card).

    Examples
    --------
    >>> nic = generic_nic(50 * Gbps, "infiniband")
    >>> nic.name, nic.bandwidth / Gbps, nic.power
    ('cx6 at 50 Gb/s', 50.0, 23)
    """
    speaking = sorted((s for s in NICS.values() if transport in s.transports), key=lambda s: s.bandwidth)
    if not speaking:
        raise InvalidSpec(f"transport={transport!r}: no NIC in fabric.NICS speaks it")
    faster = [s for s in speaking if s.bandwidth >= bandwidth]
    if not faster:
        raise InvalidSpec(f"nic_bandwidth={bandwidth / Gbps:g} Gb/s is faster than every {transport} NIC in "
                          f"fabric.NICS (at most {speaking[-1].bandwidth / Gbps:g} Gb/s)")
    base = faster[0]
    return replace(base, name=f"{base.name} at {bandwidth / Gbps:g} Gb/s", bandwidth=bandwidth)


def pick_nic(nic, nic_bandwidth, transport):
    if nic is not None:
        spec = lookup("nic", nic, NICS, NICSpec)
        if nic_bandwidth is not None:
            require_positive("nic_bandwidth", nic_bandwidth)
            if abs(spec.bandwidth - nic_bandwidth) > 1e-9 * spec.bandwidth:
                raise InvalidSpec(
                    f"nic_bandwidth={nic_bandwidth / Gbps:g} Gb/s differs from nic={spec.name!r} "
                    f"({spec.bandwidth / Gbps:g} Gb/s)"
                )
    else:
        require_positive("nic_bandwidth", nic_bandwidth)
        speaking = [s for s in NICS.values() if transport in s.transports]
        matches = [s for s in speaking if abs(s.bandwidth - nic_bandwidth) <= 1e-9 * s.bandwidth]
        spec = matches[0] if matches else generic_nic(nic_bandwidth, transport)
    if transport not in spec.transports:
        raise InvalidSpec(f"nic={spec.name!r} does not speak transport={transport!r}")
    return spec


# A Clos for n GPUs needs a fraction of a switch per GPU (a SuperPOD ~0.2, an 8-GPU rail-only
# fabric 1); far more means the tiers asked for dwarf the GPUs: fat_tree(1, tiers=6) would
# build 2.1 million switches (~5 GiB, 40 s) for 8 GPUs.
MAX_SWITCHES_PER_GPU = 64
# The graph of one switch and its cables takes about this much memory in networkx
# (measured on dgx_superpod builds) [estimate].
BYTES_PER_SWITCH = 2.5e3


def check_size(designs, gpus):
    """``Infeasible`` before building, when the tiers asked for dwarf the GPUs."""
    switches = sum(sum(design.switches) for design in designs)
    if switches > max(MAX_SWITCHES_PER_GPU * gpus, 4096):
        tiers = designs[0].tiers
        raise Infeasible(
            f"tiers={tiers} would build {switches:,} switches for {gpus:,} GPUs (about "
            f"{switches * BYTES_PER_SWITCH / 2**30:.1f} GiB of graph); ask for fewer tiers (tiers=None picks the fewest)"
        )


def nic_ports(planes, dual_tor, rail_only=False):
    """Ports of each NIC, each on its own switch, sharing the NIC's bandwidth evenly.

    ``planes`` > 1: one port per plane, each plane its own Clos (its own leaves and
    spines), so the planes meet only at the NICs (Quantum-X800 and Spectrum-X multi-plane,
    Alibaba HPN's dual plane). ``dual_tor``: two ports on two top-of-rack switches of the
    same server group; with one plane the two share the spines above them, with two
    planes each is in its own plane (Alibaba HPN). Traffic is split evenly over the ports.

    Examples
    --------
    >>> nic_ports(1, False), nic_ports(4, False), nic_ports(1, True), nic_ports(2, True)
    (1, 4, 2, 2)
    >>> nic_ports(4, True)
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: dual_tor=True with planes=4: a NIC on 4 planes is already on 4 top-of-rack switches; give planes=2 for a dual-ToR, dual-plane design, or dual_tor=False
    """
    require_int("planes", planes, minimum=1)
    require_bool("dual_tor", dual_tor)
    if rail_only and (planes > 1 or dual_tor):
        raise InvalidSpec(f"planes={planes} and dual_tor={dual_tor} are not modelled on rail-only fabrics")
    if dual_tor and planes > 2:
        raise InvalidSpec(f"dual_tor=True with planes={planes}: a NIC on {planes} planes is already on {planes} "
                          "top-of-rack switches; give planes=2 for a dual-ToR, dual-plane design, or dual_tor=False")
    return 2 if dual_tor else planes


def _dual_tor_design(hosts, pod_nodes, servers_per_leaf, arguments):
    """The design of one plane with two top-of-rack switches per server group, and a
    function laying the NICs out for :func:`fabric.clos.add_clos`.

    Each NIC is entered twice, as two servers of the design: its first port in the group's
    first leaf group, its second in the next, so every server group of ``H`` servers gets
    two leaf groups (two ToRs) of ``H`` NIC ports each, sharing the spines above."""
    if servers_per_leaf is None:  # as many servers as a leaf takes, but at least two leaves
        full = design_clos(hosts=2 * hosts, pod_nodes=None if pod_nodes is None else 2 * pod_nodes, **arguments)
        servers_per_leaf = min(full.hosts_per_leaf_group, hosts)
    require_int("servers_per_leaf", servers_per_leaf, minimum=1)
    if pod_nodes is not None and pod_nodes % servers_per_leaf:
        raise InvalidSpec(f"pod_nodes={pod_nodes} must be a multiple of {servers_per_leaf} servers per "
                          "top-of-rack pair with dual_tor=True")
    H = servers_per_leaf
    groups = -(-hosts // H)
    design = design_clos(hosts=2 * groups * H, pod_nodes=None if pod_nodes is None else 2 * pod_nodes,
                         servers_per_leaf=H, **arguments)
    rails = arguments["rails"]

    def wired(nics):
        slots = [None] * (2 * groups * H * rails)
        for h in range(hosts):
            for port in (0, 1):
                v = (h // H) * 2 * H + port * H + h % H
                slots[v * rails:(v + 1) * rails] = nics[h * rails:(h + 1) * rails]
        return slots

    return design, wired


def pick_switches(switch):
    """The switch specs of ``switch``: one name or spec, or a non-empty sequence of them
    (one per tier)."""
    many = isinstance(switch, (list, tuple))
    if many and not switch:
        raise InvalidSpec("switch=() must name at least one switch (one for every tier, or one per tier)")
    if many and len(switch) > MAX_TIERS:
        raise InvalidSpec(f"switch= names {len(switch)} tiers; a Clos has at most {MAX_TIERS}")
    return tuple(lookup("switch", s, SWITCHES, SwitchSpec) for s in (switch if many else [switch]))


def build_scale_out(
    *,
    builder,
    params,
    hosts,
    gpus_per_node,
    gpus_per_domain,
    gpu,
    nic,
    nic_bandwidth,
    switch,
    transport,
    routing,
    qps,
    rail_optimized,
    rail_only,
    tiers,
    pod_nodes,
    oversubscription,
    servers_per_leaf=None,
    planes=1,
    dual_tor=False,
):
    """The graph of a scale-out fabric; ``switch`` is one catalog name or spec for every
    tier, or a sequence of them, one per tier (leaf, spine, core, ...), which fixes the
    tiers to its length. ``planes`` and ``dual_tor``: see :func:`nic_ports`."""
    gpu_spec = lookup("gpu", gpu, GPUS, GPUSpec)
    switch_specs = pick_switches(switch)
    transport = switch_specs[0].transport if transport is None else transport
    require_choice("transport", transport, TRANSPORTS)
    for spec in switch_specs:
        if transport != spec.transport:
            raise InvalidSpec(f"transport={transport!r} does not match switch={spec.name!r} ({spec.transport})")
    require_choice("routing", routing, ROUTINGS)
    require_int("qps", qps, minimum=1)
    nic_spec = pick_nic(nic, nic_bandwidth, transport)
    ports_per_nic = nic_ports(planes, dual_tor, rail_only)
    link = nic_spec.bandwidth / ports_per_nic
    ports = tuple(spec.radix(link) for spec in switch_specs)
    for spec, radix in zip(switch_specs, ports):
        if radix == 0:
            raise InvalidSpec(
                f"switch={spec.name!r} ports ({spec.port_bandwidth / Gbps:g} Gb/s, split up to "
                f"{spec.max_breakout}) cannot run {link / Gbps:g} Gb/s NIC links"
            )
    radix = ports[0] if len(ports) == 1 else ports
    if rail_only:
        designs = [
            design_clos(hosts=hosts, rails=1, radix=radix, rail_optimized=False, tiers=tiers, oversubscription=1.0,
                        servers_per_leaf=servers_per_leaf)
        ] * gpus_per_node
    else:
        arguments = dict(rails=gpus_per_node, radix=radix, rail_optimized=rail_optimized, tiers=tiers,
                         oversubscription=oversubscription)
        if dual_tor and planes == 1:
            design, wired = _dual_tor_design(hosts, pod_nodes, servers_per_leaf, arguments)
        else:
            design = design_clos(hosts=hosts, pod_nodes=pod_nodes, servers_per_leaf=servers_per_leaf, **arguments)
            wired = None
        designs = [design] * planes
    # one spec per tier of the design
    tier_specs = switch_specs * designs[0].tiers if len(switch_specs) == 1 else switch_specs
    check_size(designs, hosts * gpus_per_node)
    G = nx.DiGraph()
    with paused_gc():  # millions of dicts, no cycles: collections would walk them all, again and again
        nics = add_servers(
            G, hosts=hosts, gpus_per_node=gpus_per_node, gpus_per_domain=gpus_per_domain, gpu=gpu_spec, nic=nic_spec
        )
        if rail_only:
            first_index = {}
            for r, design in enumerate(designs):
                add_clos(
                    G,
                    design,
                    nics[r::gpus_per_node],
                    switch=tier_specs,
                    link_bandwidth=link,
                    medium=transport,
                    first_index=first_index,
                    rail=r,
                )
        elif planes > 1:  # one Clos per plane, every NIC on a leaf of each
            first_index = {}
            for p in range(planes):
                add_clos(G, designs[0], nics, switch=tier_specs, link_bandwidth=link, medium=transport,
                         first_index=first_index, plane=p)
        else:
            add_clos(G, designs[0], nics if wired is None else wired(nics), switch=tier_specs, link_bandwidth=link,
                     medium=transport)
    G.graph.update(
        gpu=gpu_spec,
        gpus_per_node=gpus_per_node,
        transport=transport,
        routing=routing,
        qps=qps,
        name=(
            f"{builder}: {hosts * gpus_per_node} x {gpu_spec.name}, {nic_spec.name}, "
            f"{designs[0].tiers}-tier {'/'.join(dict.fromkeys(spec.name for spec in tier_specs))}"
            + (f" x {planes} planes" if planes > 1 else "") + (", dual ToR" if dual_tor else "") + f", {routing}"
        ),
        builder=builder,
        params=params,
    )
    specs = own_specs(*switch_specs, nic_spec)
    if specs:
        G.graph["specs"] = specs
    return G


