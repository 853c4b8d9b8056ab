"""Sites joined by long-haul links: several fabrics as one graph, each keeping its own.

:func:`join_sites` renumbers each site's GPUs, NICs, servers, NVLink domains and pods after
the sites before it (so ranks stay global and host-major), prefixes its switch names with
``s{site}-``, marks every node with its ``site``, and adds one border node per site (a
switch one tier above the site's top tier, standing for its data-center interconnect
routers) cabled to every top-tier switch, with a long-haul link between every two
borders. A long-haul link's latency is the fibre's propagation over ``distance_km`` and
its bandwidth is what the operator leases or lights between the two sites.

Examples
--------
>>> import fabric
>>> G = join_sites([fabric.dgx_superpod(2), fabric.dgx_superpod(2)], distance_km=100, bandwidth=100e9)
>>> sorted({d["site"] for _, d in G.nodes(data=True)}), G.nodes["gpu16"]["host"]
([0, 1], 2)
>>> round(G.edges["s0-border", "s1-border"]["latency"] * 1e6)      # 100 km of fibre one way and the border's forwarding, in us
492
"""

import math

import networkx as nx

from fabric.catalog import SWITCHES, SwitchSpec
from fabric.checks import lookup, require_positive
from fabric.clos import PROPAGATION_PER_METRE, cable_latency
from fabric.errors import InvalidSpec
from fabric.parts import own_specs
from fabric.schema import graph_attr, gpu_nodes, node_items
from fabric.units import Gbps

# OIF 800ZR: 800 Gb/s per coherent wavelength over data-center interconnect distances; a
# long-haul link of B bytes/s counts as ceil(B / 800G) parallel channels, which ECMP hashes over.
WAN_CHANNEL = 800 * Gbps
# [estimate: a deep-buffer modular router at each site's border, as data-center
# interconnects use; one per site is counted, standing for however many the links need]
BORDER_SWITCH = "arista-7816r4"
# Attributes every site must share, since the joined graph has one of each.
_SHARED = ("gpu", "gpus_per_node", "transport", "routing", "qps")


def _pairwise(name, value, sites):
    """A sites x sites matrix from one number or a nested sequence (symmetric, diagonal unused)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        require_positive(name, value)
        return [[float(value)] * sites for _ in range(sites)]
    try:
        rows = [list(row) for row in value]
    except TypeError:
        raise InvalidSpec(f"{name}={value!r:.80} must be a number or a {sites} x {sites} matrix") from None
    if len(rows) != sites or any(len(row) != sites for row in rows):
        raise InvalidSpec(f"{name} must be a {sites} x {sites} matrix for {sites} sites, got {value!r:.80}")
    for a in range(sites):
        for b in range(sites):
            if a != b:
                require_positive(f"{name}[{a}][{b}]", rows[a][b])
                if rows[a][b] != rows[b][a]:
                    raise InvalidSpec(f"{name}[{a}][{b}]={rows[a][b]} differs from {name}[{b}][{a}]={rows[b][a]}: "
                                      "give one figure per site pair")
    return rows


def join_sites(graphs, *, distance_km, bandwidth, border=BORDER_SWITCH):
    """One fabric of ``graphs`` (the sites, in order) joined by long-haul links.

    Parameters
    ----------
    graphs : sequence of networkx.DiGraph
        Two or more fabrics with the same GPU, GPUs per node, transport, routing and
        queue pairs; each keeps its wiring.
    distance_km : float or matrix
        Fibre route length between two sites (one figure, or one per site pair).
    bandwidth : float or matrix
        Bytes/s of the long-haul link between two sites, each direction.
    border : str or SwitchSpec
        The model counted for each site's border (:data:`BORDER_SWITCH`).

    Returns
    -------
    networkx.DiGraph
        With ``G.graph["sites"]``: per site its name, GPUs and first rank.
    """
    graphs = list(graphs) if not isinstance(graphs, nx.DiGraph) else [graphs]
    if len(graphs) < 2:
        raise InvalidSpec(f"graphs must hold two or more fabrics to join, got {len(graphs)}")
    for i, G in enumerate(graphs):
        if not isinstance(G, nx.DiGraph):
            raise InvalidSpec(f"graphs[{i}]={G!r:.60} must be a fabric (networkx.DiGraph)")
        for name in _SHARED:
            if graph_attr(G, name) != graph_attr(graphs[0], name):
                raise InvalidSpec(f"graphs[{i}] has {name}={graph_attr(G, name)!r:.60}, graphs[0] "
                                  f"{graph_attr(graphs[0], name)!r:.60}: sites joined in one graph must share it")
    sites = len(graphs)
    distance = _pairwise("distance_km", distance_km, sites)
    rate = _pairwise("bandwidth", bandwidth, sites)
    border_spec = lookup("border", border, SWITCHES, SwitchSpec)
    medium = graph_attr(graphs[0], "transport")

    joined = nx.DiGraph()
    offsets = {"rank": 0, "host": 0, "domain": 0, "pod": 0}
    summary, specs, tops = [], {}, []
    for s, G in enumerate(graphs):
        names, first = {}, offsets["rank"]
        for node, data in node_items(G):
            attrs = dict(data, site=s)
            for key in ("rank", "host", "domain", "pod"):
                if key in attrs:
                    attrs[key] += offsets[key]
            kind = data.get("kind")
            if kind == "gpu":
                names[node] = f"gpu{attrs['rank']}"
            elif kind == "nic":
                names[node] = f"nic{first + int(node[3:])}"
            elif kind == "nvswitch":
                names[node] = f"nvswitch{attrs['domain']}"
            else:
                names[node] = f"s{s}-{node}"
            joined.add_node(names[node], **attrs)
        joined.add_edges_from((names[u], names[v], dict(d)) for u, v, d in G.edges(data=True))
        gpus = len(gpu_nodes(G))
        for key in ("host", "domain", "pod"):
            values = [d[key] for _, d in node_items(G) if key in d]
            offsets[key] += max(values) + 1 if values else 0
        offsets["rank"] += gpus
        top_tier = max((d["tier"] for _, d in node_items(G) if d.get("kind") == "switch"), default=0)
        if top_tier == 0:
            raise InvalidSpec(f"graphs[{s}] has no switch to join it to the others by")
        tops.append(([names[n] for n, d in node_items(G) if d.get("kind") == "switch" and d["tier"] == top_tier],
                     top_tier))
        for kind, by_name in G.graph.get("specs", {}).items():
            specs.setdefault(kind, {}).update(by_name)
        summary.append({"name": graph_attr(G, "name"), "gpus": gpus, "first_rank": first})

    for s, (top, tier) in enumerate(tops):
        node = f"s{s}-border"
        joined.add_node(node, kind="switch", tier=tier + 1, model=border_spec.name, site=s)
        # the site's share of every long-haul link it ends, spread over its top-tier switches
        out = sum(rate[s][t] for t in range(sites) if t != s)
        for switch in top:
            _cable(joined, switch, node, out / len(top), cable_latency(tier + 1), border_spec.latency, medium, None)
    for a in range(sites):
        for b in range(a + 1, sites):
            wire = distance[a][b] * 1e3 * PROPAGATION_PER_METRE
            _cable(joined, f"s{a}-border", f"s{b}-border", rate[a][b], wire, border_spec.latency, medium, distance[a][b])
    first = graphs[0].graph
    joined.graph.update({name: first[name] for name in _SHARED})
    joined.graph.update(
        name="join_sites: " + " + ".join(site["name"] for site in summary),
        builder="join_sites",
        params={"distance_km": distance, "bandwidth": rate, "border": border_spec.name,
                "sites": [G.graph.get("params", {}) for G in graphs]},
        sites=summary,
    )
    own = own_specs(border_spec)
    for kind, by_name in own.items():
        specs.setdefault(kind, {}).update(by_name)
    if specs:
        joined.graph["specs"] = specs
    return joined


def _cable(G, a, b, rate, wire, forwarding, medium, distance_km):
    """A full-duplex link of ``rate`` bytes/s each way between ``a`` and ``b``, entering the
    far end's forwarding latency, in 800ZR-sized parallel channels; a long-haul one (with
    ``distance_km``) is marked so the collectives charge its propagation delay."""
    links = max(1, math.ceil(rate / WAN_CHANNEL - 1e-9))
    extra = {} if distance_km is None else {"distance_km": float(distance_km)}
    for u, v in ((a, b), (b, a)):
        G.add_edge(u, v, bandwidth=float(rate), latency=wire + forwarding, medium=medium, links=links, **extra)
