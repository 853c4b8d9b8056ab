"""Plotly views of a fabric, aggregated so they stay readable from 8 to 100k+ GPUs.

plotly is imported inside the functions, so ``import fabric`` stays fast and works
without it.
"""

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from fabric.errors import InvalidSpec
from fabric.schema import KINDS, SWITCH_TIER_NAMES, edge_attr, graph_attr, node_attr
from fabric.units import GBps, Gbps, TBps

# Pods (or leaf blocks) are binned into at most this many columns, so a row never holds
# more than MAX_COLUMNS x rails markers however large the fabric.
MAX_COLUMNS = 8
# Line widths are quantised to this many classes; lines of one class and medium share a
# trace, which keeps the trace count bounded.
WIDTH_CLASSES = 6
MARKER_SIZES = (12, 46)  # pixels for the smallest and the largest group
MIN_MARKER = 6  # pixels; the floor when a crowded row shrinks its markers
NOMINAL_WIDTH = 1000  # pixels of plotting area assumed when fitting markers in a row
MEDIUM_COLORS = {"infiniband": "#76b900", "ethernet": "#1f77b4", "nvlink": "#9467bd", "pcie": "#7f7f7f"}
MEDIUM_NAMES = {"infiniband": "InfiniBand", "ethernet": "Ethernet", "nvlink": "NVLink", "pcie": "PCIe"}
ROW_COLORS = ("#444444", "#e45756", "#f58518", "#4c78a8", "#54a24b", "#b279a2", "#9d755d")
HOST_ROW = 0


def topology(G, *, group_by=None):
    """Draw ``G`` as groups of switches and servers joined by aggregated cable bundles.

    Rows are tiers: servers (GPUs, NICs, NVSwitches) at the bottom, then leaves,
    spines, cores. Each marker stands for a group of nodes, sized by how many it holds;
    each line for all cables between two groups, its width growing with their
    bandwidth. Hovering a marker or a line's midpoint gives counts, models, cables and
    bandwidth. Cables inside a group (NVLink, PCIe within servers) are summarised in
    the servers' hover text, not drawn.

    Parameters
    ----------
    G : networkx.DiGraph
        A fabric (see :mod:`fabric.schema`).
    group_by : None, str or callable
        How nodes of a row are grouped. None: switches by column and by rail (for
        rail-optimized leaves and rail-only switches), servers by the column of their
        leaves; columns are pods or, without pods, leaf blocks (a scalable unit's rail
        leaves, one top-of-rack leaf), binned into at most ``MAX_COLUMNS``. A str: the
        node attribute of that name (``"host"`` shows every server; nodes without it
        share a group). A callable ``(node, attributes) -> label``: any hashable label.
        NVSwitch nodes always join the group of their NVLink domain's first GPU.

    Returns
    -------
    plotly.graph_objects.Figure

    Raises
    ------
    fabric.errors.InvalidSpec
        ``group_by`` is none of the above, or a node lacks an attribute the schema
        requires.

    Examples
    --------
    >>> import fabric
    >>> from fabric.plot import topology
    >>> fig = topology(fabric.dgx_superpod(127))
    >>> type(fig).__name__
    'Figure'
    >>> [trace.name for trace in fig.data if trace.mode == "markers+text"]
    ['servers', 'leaf (tier 1)', 'spine (tier 2)']
    >>> [len(trace.x) for trace in fig.data if trace.mode == "markers+text"]
    [4, 32, 1]
    >>> len(topology(fabric.dgx_superpod(31), group_by="host").data[-3].x)
    31
    """
    import plotly.graph_objects as go

    if G.number_of_nodes() == 0:
        raise InvalidSpec("G has no nodes to plot (G.number_of_nodes()=0)")
    group_of = _assign_groups(G, group_by)
    members = defaultdict(list)
    for node, group in group_of.items():
        members[group].append(node)
    position = _positions(members)
    summaries = {group: _summarise(G, group, nodes) for group, nodes in members.items()}
    traces = _bundle_traces(go, _bundles(G, group_of, position), summaries, position)
    traces += _group_traces(go, members, summaries, position)
    return go.Figure(data=traces, layout=_figure_layout(G, members))


# --- grouping ------------------------------------------------------------------------


def _row(G, node, kind):
    if kind == "switch":
        return node_attr(G, node, "tier")
    if kind not in KINDS:
        raise InvalidSpec(f"node {node!r} has kind={kind!r}; must be one of {', '.join(KINDS)}")
    return HOST_ROW


def _assign_groups(G, group_by):
    """Map every node to its group, ``(row, label)``."""
    if group_by is None:
        label_of = _default_labels(G)
        label = lambda node, data: label_of[node]  # noqa: E731
    elif isinstance(group_by, str):
        label = lambda node, data: data.get(group_by)  # noqa: E731
    elif callable(group_by):
        label = group_by
    else:
        raise InvalidSpec(
            f"group_by={group_by!r} must be None, an attribute name or a callable (node, attributes) -> label"
        )
    groups, domain_gpu = {}, {}
    for node, data in G.nodes(data=True):
        kind = node_attr(G, node, "kind")
        if kind == "gpu":
            domain_gpu.setdefault(node_attr(G, node, "domain"), node)
        if kind != "nvswitch":
            groups[node] = (_row(G, node, kind), label(node, data))
    # An NVSwitch belongs to its NVLink domain, drawn with the domain's first GPU.
    for node, kind in G.nodes(data="kind"):
        if kind == "nvswitch":
            domain = node_attr(G, node, "domain")
            groups[node] = groups[domain_gpu[domain]] if domain in domain_gpu else (HOST_ROW, None)
    return groups


def _default_labels(G):
    """Switches by column and rail; GPUs and NICs by the column of their leaf; -1 for none.

    Columns are the pods where the fabric has them, else leaf blocks (leaves serving the
    same servers: the rail leaves of a scalable unit, or one top-of-rack leaf), binned
    into at most ``MAX_COLUMNS``.
    """
    host_leaf, leaf_first_host = {}, {}
    for node, kind in G.nodes(data="kind"):
        if kind == "nic":
            host = node_attr(G, node, "host")
            for leaf in G.successors(node):
                if node_attr(G, leaf, "kind") == "switch":
                    host_leaf.setdefault(host, leaf)
                    leaf_first_host[leaf] = min(host, leaf_first_host.get(leaf, host))
    block_of = {node: pod for node, pod in G.nodes(data="pod") if pod is not None}
    if not block_of:
        index = {host: i for i, host in enumerate(sorted(set(leaf_first_host.values())))}
        block_of = {leaf: index[host] for leaf, host in leaf_first_host.items()}
    blocks = max(block_of.values(), default=0) + 1
    columns = min(blocks, MAX_COLUMNS)

    def column(node):
        block = block_of.get(node)
        return -1 if block is None else block * columns // blocks

    # Rail-only fabrics (rails above the leaves too) are drawn rail by rail, so each
    # rail's Clos sits under its own spines.
    rail_major = any(d.get("rail") is not None and d.get("tier", 1) > 1 for _, d in G.nodes(data=True))
    labels = {}
    for node, data in G.nodes(data=True):
        kind = data.get("kind")  # a missing kind is reported by _assign_groups
        if kind == "switch":
            key = (column(node), data.get("rail", -1))
            labels[node] = key[::-1] if rail_major else key
        elif kind != "nvswitch":  # NVSwitches follow their domain's GPUs
            labels[node] = (column(host_leaf.get(node_attr(G, node, "host"))), -1)
    return labels


def _positions(members):
    """``(x, y)`` per group: rows at y = tier, groups spread evenly in label order."""
    by_row = defaultdict(list)
    for row, label in members:
        by_row[row].append(label)
    position = {}
    for row, labels in by_row.items():
        try:
            labels.sort()
        except TypeError:  # labels of mixed types from a user's group_by
            labels.sort(key=repr)
        for i, label in enumerate(labels):
            position[row, label] = ((i + 0.5) / len(labels), row)
    return position


# --- group summaries -----------------------------------------------------------------


@dataclass(frozen=True)
class _Summary:
    """What a group's marker shows: its title, its count (switches or servers), hover text."""

    title: str
    count: int
    text: str


def _summarise(G, group, nodes):
    row = group[0]
    kinds, models, values = Counter(), Counter(), defaultdict(set)
    attrs = ("host",) if row == HOST_ROW else ("pod", "rail")
    for node in nodes:
        data = G.nodes[node]
        kind = data["kind"]
        kinds[kind] += 1
        if kind != "gpu":
            models[kind, node_attr(G, node, "model")] += 1
        for attr in attrs:
            if attr in data and kind != "nvswitch":
                values[attr].add(data[attr])
    if row != HOST_ROW:
        parts = [_tier_name(row)]
        for attr in attrs:
            if values[attr]:
                parts.append(f"{attr}{'s' if len(values[attr]) > 1 else ''} {_span(sorted(values[attr]))}")
        title = " · ".join(parts)
        count = len(nodes)
        lines = [f"{count:,} switches: " + _models(models, "switch")]
    else:
        hosts = sorted(values["host"])
        title = f"server{'s' if len(hosts) != 1 else ''} {_span(hosts)}" if hosts else "servers"
        count = len(hosts) or len(nodes)
        gpu = graph_attr(G, "gpu")
        lines = [
            f"{count:,} servers, {kinds['gpu']:,} x {gpu.name}",
            f"{kinds['nvswitch']:,} NVLink domains, NVLink {_bandwidth(gpu.nvlink_bandwidth)} per GPU",
            f"{kinds['nic']:,} NICs: " + _models(models, "nic"),
        ]
    return _Summary(title=title, count=count, text="<br>".join([f"<b>{title}</b>"] + lines))


def _models(models, kind):
    return ", ".join(f"{count:,} x {model}" for (k, model), count in models.items() if k == kind) or "none"


# --- cable bundles between groups ----------------------------------------------------


@dataclass
class _Bundle:
    """All edges between two groups; index 0 is the upward direction, 1 downward."""

    bandwidth: list = field(default_factory=lambda: [0.0, 0.0])
    links: list = field(default_factory=lambda: [0, 0])
    edges: list = field(default_factory=lambda: [0, 0])
    media: Counter = field(default_factory=Counter)


def _bundles(G, group_of, position):
    """Aggregate edges by group pair, keyed ``(lower, upper)`` in plotting order."""
    bundles = defaultdict(_Bundle)
    for u, v, data in G.edges(data=True):
        a, b = group_of[u], group_of[v]
        if a == b:
            continue
        for name in ("bandwidth", "links", "medium"):
            if name not in data:
                edge_attr(G, u, v, name)  # raises InvalidSpec naming the edge
        down = (position[a][1], position[a][0]) > (position[b][1], position[b][0])
        bundle = bundles[(b, a) if down else (a, b)]
        bundle.bandwidth[down] += data["bandwidth"]
        bundle.links[down] += data["links"]
        bundle.edges[down] += 1
        bundle.media[data["medium"]] += data["links"]
    return bundles


def _bundle_traces(go, bundles, summaries, position):
    """Lines (one trace per medium and width class) and a trace of hoverable midpoints."""
    if not bundles:
        return []
    widest = max(max(b.bandwidth) for b in bundles.values())
    segments = defaultdict(lambda: ([], []))
    mid_x, mid_y, mid_text, mid_color = [], [], [], []
    for (a, b), bundle in bundles.items():
        medium = bundle.media.most_common(1)[0][0]
        width = 1 + round((WIDTH_CLASSES - 1) * max(bundle.bandwidth) / widest)
        (x0, y0), (x1, y1) = position[a], position[b]
        xs, ys = segments[medium, width]
        xs += [x0, x1, None]
        ys += [y0, y1, None]
        mid_x.append((x0 + x1) / 2)
        mid_y.append((y0 + y1) / 2)
        mid_color.append(MEDIUM_COLORS.get(medium, "#999999"))
        mid_text.append(_bundle_text(summaries[a].title, summaries[b].title, bundle))
    traces = []
    shown = set()
    for (medium, width), (xs, ys) in sorted(segments.items()):
        traces.append(
            go.Scatter(
                x=xs, y=ys, mode="lines", hoverinfo="skip",
                line=dict(width=width, color=MEDIUM_COLORS.get(medium, "#999999")), opacity=0.55,
                name=f"{MEDIUM_NAMES.get(medium, medium)} cables", legendgroup=medium,
                showlegend=medium not in shown,
            )
        )
        shown.add(medium)
    traces.append(
        go.Scatter(
            x=mid_x, y=mid_y, mode="markers", marker=dict(size=7, symbol="diamond", color=mid_color),
            hovertext=mid_text, hoverinfo="text", name="cable bundles (hover)", showlegend=False,
        )
    )
    return traces


def _bundle_text(lower, upper, bundle):
    up, down = bundle.bandwidth
    if math.isclose(up, down, rel_tol=1e-9):
        speed = f"{_bandwidth(up)} each way"
    else:
        speed = f"{_bandwidth(up)} up, {_bandwidth(down)} down"
    return (
        f"<b>{lower} ↔ {upper}</b><br>"
        f"{max(bundle.links):,} cables between {max(bundle.edges):,} node pairs<br>{speed}"
    )


# --- group markers -------------------------------------------------------------------


def _group_traces(go, members, summaries, position):
    """One marker trace per row: a marker per group, sized by its count."""
    largest = max(summary.count for summary in summaries.values())
    small, big = MARKER_SIZES
    traces = []
    for row in sorted({row for row, _ in members}):
        groups = sorted((g for g in members if g[0] == row), key=lambda g: position[g][0])
        # Crowded rows get smaller markers so neighbours do not overlap.
        fit = max(MIN_MARKER, 0.8 * NOMINAL_WIDTH / len(groups))
        traces.append(
            go.Scatter(
                x=[position[g][0] for g in groups],
                y=[position[g][1] for g in groups],
                mode="markers+text",
                marker=dict(
                    size=[min(fit, small + (big - small) * math.sqrt(summaries[g].count / largest)) for g in groups],
                    color=ROW_COLORS[row % len(ROW_COLORS)], line=dict(width=1, color="white"),
                ),
                text=[f"{summaries[g].count:,}" for g in groups],
                textposition="bottom center" if row == HOST_ROW else "top center",
                textfont=dict(size=10),
                hovertext=[summaries[g].text for g in groups],
                hoverinfo="text",
                name=_row_name(row),
            )
        )
    return traces


def _span(values):
    """``3``, ``0-7``, or ``12 in 0-31`` for sorted integers (other values: first and count)."""
    first, last = values[0], values[-1]
    if len(values) == 1:
        return f"{first}"
    if all(isinstance(v, int) for v in values):
        whole = last - first + 1 == len(values)
        return f"{first}-{last}" if whole else f"{len(values)} in {first}-{last}"
    return f"{first}, ... ({len(values)})"


def _tier_name(tier):
    return SWITCH_TIER_NAMES.get(tier, f"tier {tier}")


def _row_name(row):
    if row == HOST_ROW:
        return "servers"
    return f"{SWITCH_TIER_NAMES[row]} (tier {row})" if row in SWITCH_TIER_NAMES else _tier_name(row)


def _bandwidth(value):
    """Bytes/s as Gb/s with TB/s (or GB/s) alongside: ``51,200 Gb/s (6.4 TB/s)``."""
    bytes_unit, name = (TBps, "TB/s") if value >= TBps else (GBps, "GB/s")
    return f"{value / Gbps:,.0f} Gb/s ({value / bytes_unit:,.3g} {name})"


# --- layout --------------------------------------------------------------------------


def _figure_layout(G, members):
    rows = sorted({row for row, _ in members})
    kinds = Counter(kind for _, kind in G.nodes(data="kind"))
    tiers = Counter(row for (row, _), nodes in members.items() for _ in nodes if row != HOST_ROW)
    switches = ", ".join(f"{tiers[t]:,} {_tier_name(t)}" for t in sorted(tiers))
    subtitle = (
        f"{kinds['gpu']:,} GPUs · {kinds['switch']:,} switches ({switches or 'none'}) · "
        "marker: a group, sized by count · line: its cables, width by bandwidth · hover for details"
    )
    return dict(
        title=dict(text=f"{graph_attr(G, 'name')}<br><sup>{subtitle}</sup>", x=0.01),
        xaxis=dict(visible=False, range=[-0.02, 1.02]),
        yaxis=dict(
            tickvals=rows, ticktext=[_row_name(r) for r in rows], range=[rows[0] - 0.6, rows[-1] + 0.6],
            showgrid=False, zeroline=False,
        ),
        height=220 + 150 * len(rows),
        template="plotly_white",
        hovermode="closest",
        legend=dict(orientation="h", yanchor="bottom", y=-0.12, x=0),
        margin=dict(l=110, r=30, t=90, b=60),
    )


def facility(power):
    """A horizontal bar of a :class:`fabric.facility.FacilityPower` by part, in megawatts,
    cooling and distribution last.

    Examples
    --------
    >>> import fabric
    >>> fig = facility(fabric.facility_power(fabric.nvl72(2), pue=1.2))
    >>> fig.data[0].y[-1], round(sum(fig.data[0].x), 3)
    ('cooling and distribution', 0.317)
    """
    import plotly.graph_objects as go

    parts = {**power.it, "cooling and distribution": power.cooling_and_distribution}
    fig = go.Figure(go.Bar(x=[w / 1e6 for w in parts.values()], y=list(parts), orientation="h",
                           hovertemplate="%{y}: %{x:,.3f} MW<extra></extra>"))
    fig.update_layout(
        title=f"{power.systems:,} x {power.system} ({power.gpus:,} GPUs): {power.facility_watts / 1e6:,.2f} MW "
              f"at PUE {power.pue:g}",
        xaxis_title="MW", yaxis=dict(autorange="reversed"), margin=dict(l=180))
    return fig
