"""Folded-Clos (fat-tree) design and wiring, shared by every scale-out builder.

The design is recursive. Tier 1 are leaves. A tier-t *block* groups ``children[t]``
blocks of tier t-1 (a pod is a tier-2 block of leaves). Inside a block, tier-(t-1)
switch number j of every child block connects to *plane* j: ``per_plane[t]`` tier-t
switches, each getting ``up[t-1] / per_plane[t]`` parallel cables from it. The top
tier has one block and spends all its ports downward.

``per_plane[t]`` is the smallest divisor of ``up[t-1]`` whose switches have enough
down ports; this reproduces NVIDIA's DGX SuperPOD tables (3 SU: 24 leaves with 32
uplinks each on 16 spines rather than 12, so every leaf spreads evenly).

Examples
--------
>>> d = design_clos(hosts=127, rails=8, radix=64, rail_optimized=True)
>>> d.tiers, d.switches
(2, (32, 16))
>>> d.down, d.up
((32, 64), (32, 0))
"""

import math
from dataclasses import dataclass

from fabric.bulk import add_edges, add_nodes
from fabric.checks import require_int, require_positive
from fabric.errors import Infeasible, InvalidSpec
from fabric.schema import switch_name
from fabric.units import ns

# Light in fibre travels at c / 1.47 (refractive index of silica): ~4.9 ns per metre.
PROPAGATION_PER_METRE = 4.9 * ns
# Typical cable runs by the tier a cable climbs to: in-row NIC-to-leaf, leaf-to-spine
# across a hall, spine-to-core between halls. [estimate: common data-hall layouts]
CABLE_METRES = {1: 10.0, 2: 50.0, 3: 150.0}
CABLE_METRES_ABOVE = 300.0

MAX_TIERS = 6


class _TooFewTiers(Infeasible):
    """The top tier cannot reach every block below it; more tiers would."""


@dataclass(frozen=True)
class ClosDesign:
    """A sized Clos: per tier (index 0 is tier 1) ports down and up, blocks and switches.

    ``children[i]`` is how many tier-i blocks a tier-(i+1) block groups (``children[0]``
    is unused); ``per_plane[i]`` how many tier-(i+1) switches serve one plane.
    """

    tiers: int
    radix: int
    rails: int
    rail_optimized: bool
    hosts: int
    hosts_per_leaf_group: int
    leaves_per_group: int
    down: tuple
    up: tuple
    children: tuple
    per_plane: tuple
    blocks: tuple
    switches: tuple

    def planes(self, tier):
        """Tier-``tier`` switches in one tier-``tier`` block (S_t = S_{t-1} x C_t)."""
        return math.prod(self.per_plane[1:tier])

    def leaf_of(self, host, rail):
        """Index of the leaf that endpoint (host, rail) is cabled to."""
        group = host // self.hosts_per_leaf_group
        return group * self.leaves_per_group + (rail if self.rail_optimized else 0)


def split_ports(radix, ratio, field):
    """Split ``radix`` ports into (down, up) with down/up exactly ``ratio``, most ports used.

    Examples
    --------
    >>> split_ports(64, 1.0, "oversubscription")
    (32, 32)
    >>> split_ports(64, 7, "oversubscription")
    (56, 8)
    >>> split_ports(64, 1.5, "oversubscription")
    (36, 24)
    """
    for up in range(radix // 2, 0, -1):
        down = ratio * up
        if abs(down - round(down)) < 1e-9 and round(down) + up <= radix:
            return int(round(down)), up
    raise Infeasible(f"{field}={ratio} cannot be realised exactly on {radix}-port switches")


def _smallest_divisor_at_least(n, minimum):
    for c in range(max(1, math.ceil(minimum - 1e-9)), n + 1):
        if n % c == 0:
            return c
    return None


def design_clos(*, hosts, rails, radix, rail_optimized, tiers=None, pod_nodes=None, oversubscription=1.0,
                servers_per_leaf=None):
    """Size a Clos for ``hosts`` servers with ``rails`` NICs each.

    Parameters
    ----------
    hosts, rails : int
        Servers and NICs per server (= GPUs per server).
    radix : int or tuple of int
        Switch ports at the link speed (after breakout): one for every tier, or one per
        tier (leaf, spine, core, ...), which fixes the tiers to its length.
    rail_optimized : bool
        NIC i of every server in a leaf group goes to that group's leaf i; otherwise all
        NICs of a server go to one top-of-rack leaf.
    tiers : int or None
        Switch tiers; None picks the fewest that hold every server.
    pod_nodes : int or None
        Servers per pod (tier-2 block); requires 3 or more tiers.
    oversubscription : float
        A pod's (or, with 2 tiers, a leaf's) down bandwidth over its up bandwidth.
    servers_per_leaf : int or None
        Servers under one leaf (or leaf group, rail-optimized); their NIC ports are the
        leaf's down ports in use, and its uplinks carry them at the leaf's ratio (1 above a
        pod). None fills the leaf's down ports.

    Returns
    -------
    ClosDesign

    Examples
    --------
    >>> d = design_clos(hosts=768, rails=8, radix=(64, 576, 576), rail_optimized=False,
    ...                 pod_nodes=384, oversubscription=192 / 27, servers_per_leaf=2)
    >>> d.switches, d.down, d.up   # 8 spines per pod take 2 cables from each of its 192 leaves
    ((384, 16, 8), (16, 384, 576), (16, 54, 0))
    """
    require_int("hosts", hosts, minimum=1)
    require_int("rails", rails, minimum=1)
    if isinstance(radix, tuple):
        if not 1 <= len(radix) <= MAX_TIERS:
            raise InvalidSpec(f"radix={radix} must give 1 to {MAX_TIERS} tiers")
        for r in radix:
            require_int("radix", r, minimum=2)
        if tiers is not None and tiers != len(radix):
            raise InvalidSpec(f"tiers={tiers} differs from the {len(radix)} tiers of radix={radix}")
        tiers = len(radix)
    else:
        require_int("radix", radix, minimum=2)
    if servers_per_leaf is not None:
        require_int("servers_per_leaf", servers_per_leaf, minimum=1)
    require_positive("oversubscription", oversubscription)
    if oversubscription < 1:
        raise InvalidSpec(f"oversubscription={oversubscription} must be >= 1")
    if pod_nodes is not None:
        require_int("pod_nodes", pod_nodes, minimum=1)
    if tiers is not None:
        require_int("tiers", tiers, minimum=1, maximum=MAX_TIERS)
        if pod_nodes is not None and tiers < 3:
            raise InvalidSpec(f"tiers={tiers} must be >= 3 when pod_nodes={pod_nodes} is given")
        if rail_optimized and rails > 1 and tiers < 2:
            raise InvalidSpec(
                f"tiers={tiers} must be >= 2 with rail_optimized=True: one tier leaves the "
                f"{rails} rails unconnected (use rail_only for that design)"
            )
        ports = radix if isinstance(radix, tuple) else (radix,) * tiers
        try:
            return _design(hosts, rails, ports, rail_optimized, tiers, pod_nodes, oversubscription, servers_per_leaf)
        except _TooFewTiers as error:
            raise Infeasible(f"hosts={hosts} need more than tiers={tiers} of {_ports(ports)} switches: {error}") from None
    lowest = 3 if pod_nodes is not None else (2 if rail_optimized and rails > 1 else 1)
    last_error = None
    for t in range(lowest, MAX_TIERS + 1):
        try:
            return _design(hosts, rails, (radix,) * t, rail_optimized, t, pod_nodes, oversubscription, servers_per_leaf)
        except _TooFewTiers as error:
            last_error = error
    raise Infeasible(f"hosts={hosts} do not fit in {MAX_TIERS} tiers of {radix}-port switches: {last_error}")


def _ports(radix):
    """``"64-port"`` for one radix, ``"64/576/576-port"`` per tier."""
    return f"{radix[0]}-port" if len(set(radix)) == 1 else "/".join(map(str, radix)) + "-port"


def _leaf_ports(radix, ratio, per_server, servers_per_leaf):
    """A leaf's (down, up) ports in use: filled by the ratio, or the NIC ports of
    ``servers_per_leaf`` servers (``per_server`` ports each) and their uplinks at the ratio;
    ``ratio`` None: a single tier, no uplinks."""
    if servers_per_leaf is None:
        return (radix, 0) if ratio is None else split_ports(radix, ratio, "oversubscription")
    down = servers_per_leaf * per_server
    if ratio is None:
        if down > radix:
            raise Infeasible(f"servers_per_leaf={servers_per_leaf} need {down} ports of a {radix}-port leaf")
        return down, 0
    up = down / ratio
    if abs(up - round(up)) > 1e-9 or down + round(up) > radix or round(up) < 1:
        fitting = [n for n in range(1, radix) if n * per_server * (1 + 1 / ratio) <= radix]
        raise Infeasible(
            f"servers_per_leaf={servers_per_leaf} ({down} NIC ports) and their uplinks at {ratio:g}:1 do not fit "
            f"{radix}-port leaves in whole cables" + (f"; at most {max(fitting)} servers fit" if fitting else ""))
    return down, int(round(up))


def _design(hosts, rails, radix, rail_optimized, tiers, pod_nodes, ratio, servers_per_leaf=None):
    # With 2 tiers the oversubscription sits above the leaf: its ports are split by the
    # ratio. With more, it sits above the pod: each spine's uplinks are its used downlinks
    # over the ratio, exactly. Other tiers are non-blocking; the top spends every port down.
    # radix: ports per tier.
    over_pod = tiers >= 3
    leaf_ratio = None if tiers == 1 else (1 if over_pod else ratio)
    down, up = map(list, zip(_leaf_ports(radix[0], leaf_ratio, 1 if rail_optimized else rails, servers_per_leaf)))
    if rail_optimized:
        hosts_per_group, leaves_per_group = down[0], rails
    else:
        hosts_per_group, leaves_per_group = down[0] // rails, 1
        if hosts_per_group < 1:
            raise Infeasible(f"a {radix[0]}-port leaf has {down[0]} down ports, fewer than rails={rails} NICs of "
                             "one server")
    leaves = -(-hosts // hosts_per_group) * leaves_per_group
    if tiers == 1 and leaves > leaves_per_group:
        raise _TooFewTiers(f"{leaves} leaves need switches above them")

    children, per_plane, blocks = [0], [1], [leaves]
    for t in range(2, tiers + 1):
        below, uplinks, ports = blocks[-1], up[t - 2], radix[t - 1]
        if t == tiers:
            n, d, u = below, ports, 0
        elif t == 2 and over_pod:
            most = ports * ratio / (ratio + 1)  # spine downlinks when uplinks = downlinks / ratio
            if pod_nodes is not None:
                if pod_nodes % hosts_per_group:
                    raise InvalidSpec(
                        f"pod_nodes={pod_nodes} must be a multiple of {hosts_per_group} servers per leaf group"
                    )
                n = pod_nodes // hosts_per_group * leaves_per_group
                if n > most:
                    largest = int(most) // leaves_per_group * hosts_per_group
                    raise Infeasible(
                        f"pod_nodes={pod_nodes} is larger than {ports}-port spines can connect "
                        f"at oversubscription={ratio} (at most {largest})"
                    )
            else:
                n = int(most + 1e-9)
                if rail_optimized:
                    n -= n % leaves_per_group  # a pod holds whole leaf groups
            c, d, u = _oversubscribed_spine(n, uplinks, ports, ratio)
        else:
            n, (d, u) = ports // 2, split_ports(ports, 1, "oversubscription")
        if not (t == 2 and over_pod):
            c = _smallest_divisor_at_least(uplinks, n * uplinks / d) if n >= 1 else None
            if c is None:
                raise _TooFewTiers(f"{n} tier-{t - 1} blocks exceed what {ports}-port tier-{t} switches can connect")
        children.append(n)
        per_plane.append(c)
        blocks.append(-(-below // n))
        down.append(d)
        up.append(u)
    planes = 1
    switches = [leaves]
    for t in range(2, tiers + 1):
        planes *= per_plane[t - 1]
        switches.append(blocks[t - 1] * planes)
    return ClosDesign(
        tiers=tiers,
        radix=radix,
        rails=rails,
        rail_optimized=rail_optimized,
        hosts=hosts,
        hosts_per_leaf_group=hosts_per_group,
        leaves_per_group=leaves_per_group,
        down=tuple(down),
        up=tuple(up),
        children=tuple(children),
        per_plane=tuple(per_plane),
        blocks=tuple(blocks),
        switches=tuple(switches),
    )


def _oversubscribed_spine(n, leaf_uplinks, radix, ratio):
    """Spines per plane and their ports (c, down, up) for a pod of ``n`` leaves.

    The spine uplinks are exactly the used downlinks over ``ratio``.

    Tries planes of 1, 2, ... spines (divisors of the leaf uplinks); each spine takes
    ``n * leaf_uplinks / c`` cables down and a ``1/ratio`` share of them up.
    """
    total = n * leaf_uplinks
    for c in range(1, leaf_uplinks + 1):
        if leaf_uplinks % c:
            continue
        d = total // c
        u = d / ratio
        if abs(u - round(u)) < 1e-9 and d + round(u) <= radix and round(u) >= 1:
            return c, d, int(round(u))
    # the ratios whole uplinks give around the one asked, each spine down / up cables
    exact = {(total // c) / u for c in range(1, leaf_uplinks + 1) if leaf_uplinks % c == 0
             for u in {math.floor(total // c / ratio), math.ceil(total // c / ratio)}
             if u >= 1 and total // c + u <= radix and total // c >= u}
    near = sorted(exact, key=lambda x: abs(x - ratio))[:3]
    raise Infeasible(
        f"oversubscription={ratio} cannot be realised in whole cables above a pod of {n} leaves with "
        f"{leaf_uplinks} uplinks each on {radix}-port spines; exact ratios nearby: "
        + ", ".join(f"{x:.6g}" for x in sorted(near))
    )


def cable_latency(tier):
    """Propagation delay of a cable reaching up to ``tier``."""
    return CABLE_METRES.get(tier, CABLE_METRES_ABOVE) * PROPAGATION_PER_METRE


def add_clos(G, design, nics, *, switch, link_bandwidth, medium, first_index=None, rail=None, plane=None):
    """Add the switches and cables of ``design`` to ``G`` and cable the NICs to the leaves.

    Parameters
    ----------
    G : networkx.DiGraph
    design : ClosDesign
    nics : sequence of str or None
        NIC node names, host-major: ``nics[host * design.rails + rail]``; None where a
        position stays empty.
    switch : fabric.catalog.SwitchSpec or tuple of them
        One spec for every tier, or one per tier of ``design`` (leaf first): each
        switch's ``model`` and the forwarding latency of the cables into it.
    link_bandwidth : float
        Bytes/s of one cable (= NIC speed; switch ports are split to it).
    medium : str
        ``"infiniband"`` or ``"ethernet"``.
    first_index : dict or None
        Per tier, the first switch index to use (updated in place), so several Clos
        networks (one per rail) can share a graph with unique switch names.
    rail : int or None
        Set as the ``rail`` attribute of every switch (rail-only fabrics).
    plane : int or None
        Set as the ``plane`` attribute of every switch (multi-plane fabrics).

    Returns
    -------
    list of list of str
        Switch node names per tier (index 0 is tier 1).
    """
    first_index = {} if first_index is None else first_index
    specs = switch if isinstance(switch, tuple) else (switch,) * design.tiers
    if len(specs) != design.tiers:
        raise InvalidSpec(f"{len(specs)} switch specs for a {design.tiers}-tier design: give one, or one per tier")
    names = []
    nodes = []
    for t in range(1, design.tiers + 1):
        start = first_index.get(t, 0)
        first_index[t] = start + design.switches[t - 1]
        tier_names = [switch_name(t, start + i) for i in range(design.switches[t - 1])]
        names.append(tier_names)
        for i, name in enumerate(tier_names):
            attrs = {"kind": "switch", "tier": t, "model": specs[t - 1].name}
            if design.tiers >= 3 and t <= 2:
                attrs["pod"] = i // (design.children[1] if t == 1 else design.planes(2))
            if t == 1 and design.rail_optimized:
                attrs["rail"] = i % design.leaves_per_group
            if rail is not None:
                attrs["rail"] = rail
            if plane is not None:
                attrs["plane"] = plane
            nodes.append((name, attrs))
    add_nodes(G, nodes)

    edges = []

    def cable(a, b, links, tier):
        # a cable's latency: the wire and the forwarding of the switch it enters
        wire = cable_latency(tier)
        bw = links * link_bandwidth
        edges.append((a, b, {"bandwidth": bw, "latency": wire + specs[tier - 1].latency, "medium": medium,
                             "links": links}))
        down_latency = wire + (specs[tier - 2].latency if tier >= 2 else 0.0)
        edges.append((b, a, {"bandwidth": bw, "latency": down_latency, "medium": medium, "links": links}))

    leaves = names[0]
    for index, nic in enumerate(nics):
        if nic is not None:
            host, r = divmod(index, design.rails)
            cable(nic, leaves[design.leaf_of(host, r)], 1, 1)

    for t in range(2, design.tiers + 1):
        below_planes = design.planes(t - 1)
        c = design.per_plane[t - 1]
        links = design.up[t - 2] // c
        planes = design.planes(t)
        n = design.children[t - 1]
        for x, child in enumerate(names[t - 2]):
            block_below, plane = divmod(x, below_planes)
            base = (block_below // n) * planes + plane * c
            for k in range(c):
                cable(child, names[t - 1][base + k], links, t)
    add_edges(G, edges)
    return names
