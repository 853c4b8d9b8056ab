"""Plotly views of collective costs: bandwidth curves and link utilisation.

- :func:`busbw_curve`: the nccl-tests curve (bus bandwidth vs message size), with
  published measurements overlaid;
- :func:`link_heatmap`: link utilisation aggregated by tier, readable at 100k+ GPUs.

Training-step figures (breakdowns, scaling, searches, what-if) are in
:mod:`collectives.training.plot`. plotly is imported inside the functions, so
``import collectives`` stays fast and works without it.
"""

import math
import numbers
from collections.abc import Mapping

from fabric.schema import SWITCH_TIER_NAMES, gpu_count
from fabric.tables import format_time
from fabric.units import GBps

from collectives.errors import InvalidSpec

# Symbols distinguishing algorithms on a curve (the "auto" choice changes with size).
ALGORITHM_SYMBOLS = {
    "ring": "circle", "tree": "triangle-up", "halving_doubling": "diamond", "hierarchical": "square",
    "nvls": "star", "sharp": "hexagram", "direct": "cross",
}
# Node groups of the link heatmap, in display order: server-side kinds, then switch tiers.
KIND_GROUPS = {"gpu": "GPU", "nvswitch": "NVSwitch", "nic": "NIC"}
# The look shared by every figure of the project (training figures included).
LAYOUT = dict(template="plotly_white", hovermode="closest")


# --- 1. bus bandwidth vs message size ------------------------------------------------


def busbw_curve(results, published=None):
    """Bus bandwidth (GB/s) against message size, nccl-tests style, on a log x axis.

    Parameters
    ----------
    results : list of CollectiveResult, or dict
        One curve (e.g. from :func:`collectives.sweep`), or several as
        ``{label: list of CollectiveResult}``. Each point's hover text gives the size,
        busbw, algbw, time and the algorithm (and protocol) that produced it; the marker
        symbol changes with the algorithm.
    published : list of dict, optional
        Measured rows from :func:`collectives.calibration.read_nccl_csv`, filtered by the
        caller to what compares; drawn as large open markers, one trace per algorithm,
        hover giving GPU, nodes x GPUs per node, algorithm, busbw and the row's note.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``lines+markers`` trace per curve, then one ``markers`` trace per published
        algorithm.

    Raises
    ------
    collectives.InvalidSpec
        A curve is empty or holds something that is not a CollectiveResult, or a
        published row lacks a field.

    Examples
    --------
    >>> import fabric, collectives
    >>> from collectives.plot import busbw_curve
    >>> G = fabric.dgx_superpod(1)
    >>> sizes = [2**k for k in range(10, 34, 4)]
    >>> curves = {a: collectives.sweep(G, "all_reduce", sizes, algorithm=a, level="analytic")
    ...           for a in ("ring", "nvls")}
    >>> rows = [{"collective": "all_reduce", "gpu": "H100", "nodes": 1, "gpus_per_node": 8,
    ...          "algorithm": "nvls", "message_bytes": 2**32, "busbw": 480e9, "note": ""}]
    >>> fig = busbw_curve(curves, published=rows)
    >>> [(t.name, len(t.x)) for t in fig.data]
    [('ring', 6), ('nvls', 6), ('nccl-tests: nvls', 1)]
    >>> "algorithm nvls" in fig.data[2].hovertext[0]
    True
    """
    import plotly.graph_objects as go

    curves = _labelled(results, "results", _curve_label)
    traces, sizes = [], []
    for label, curve in curves.items():
        curve = sorted(curve, key=lambda r: r.nbytes)
        sizes += [r.nbytes for r in curve]
        traces.append(
            go.Scatter(
                x=[r.nbytes for r in curve],
                y=[r.busbw / GBps for r in curve],
                mode="lines+markers",
                name=label,
                marker=dict(size=8, symbol=[ALGORITHM_SYMBOLS.get(r.algorithm, "circle") for r in curve]),
                hovertext=[_result_text(label, r) for r in curve],
                hoverinfo="text",
            )
        )
    by_algorithm = {}
    for i, row in enumerate(published or ()):
        missing = [k for k in ("collective", "gpu", "nodes", "gpus_per_node", "algorithm", "message_bytes", "busbw")
                   if k not in row]
        if missing:
            raise InvalidSpec(f"published[{i}] lacks {', '.join(missing)} (rows of read_nccl_csv() have them)")
        by_algorithm.setdefault(row["algorithm"], []).append(row)
    for algorithm, rows in by_algorithm.items():
        sizes += [row["message_bytes"] for row in rows]
        traces.append(
            go.Scatter(
                x=[row["message_bytes"] for row in rows],
                y=[row["busbw"] / GBps for row in rows],
                mode="markers",
                name=f"nccl-tests: {algorithm}",
                marker=dict(size=14, symbol=ALGORITHM_SYMBOLS.get(algorithm, "circle") + "-open",
                            line=dict(width=2), color="black"),
                hovertext=[_published_text(row) for row in rows],
                hoverinfo="text",
            )
        )
    tickvals = _byte_ticks(sizes)
    layout = dict(
        LAYOUT,
        title=dict(text="Bus bandwidth vs message size<br><sup>model curves (lines), published nccl-tests "
                        "(open markers) · marker shape: algorithm · hover for details</sup>", x=0.01),
        xaxis=dict(type="log", title="message size (bytes, as nccl-tests counts it)",
                   tickvals=tickvals, ticktext=[_format_bytes(v) for v in tickvals]),
        yaxis=dict(title="busbw (GB/s)", rangemode="tozero"),
    )
    return go.Figure(data=traces, layout=layout)


def _curve_label(curve):
    first = curve[0]
    return f"{first.collective}, {first.ranks} ranks ({first.level})"


def _result_text(label, r):
    return (
        f"<b>{label}</b><br>{_format_bytes(r.nbytes)} {r.collective} over {r.ranks} ranks<br>"
        f"busbw {r.busbw / GBps:,.1f} GB/s · algbw {r.algbw / GBps:,.1f} GB/s<br>"
        f"time {format_time(r.time)} (latency {format_time(r.latency)})<br>"
        f"algorithm {r.algorithm} ({r.protocol}, {r.level} level)"
    )


def _published_text(row):
    text = (
        f"<b>nccl-tests (published)</b><br>{row['collective']}, {row['gpu']} "
        f"{row['nodes']} node{'s' if row['nodes'] != 1 else ''} x {row['gpus_per_node']} GPUs<br>"
        f"{_format_bytes(row['message_bytes'])}: busbw {row['busbw'] / GBps:,.1f} GB/s<br>"
        f"algorithm {row['algorithm']}"
    )
    return text + (f"<br>{row['note']}" if row.get("note") else "")


def _format_bytes(n):
    """``8 B``, ``64 KiB``, ``4 GiB``, ``1.5 MiB``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:.4g} B"


def _byte_ticks(sizes, max_ticks=10):
    """Powers of two spanning ``sizes``, thinned to at most ``max_ticks``."""
    sizes = [s for s in sizes if s > 0]
    if not sizes:
        return []
    lo, hi = math.floor(math.log2(min(sizes))), math.ceil(math.log2(max(sizes)))
    step = max(1, math.ceil((hi - lo + 1) / max_ticks))
    return [2.0**k for k in range(lo, hi + 1, step)]



# --- 2. link utilisation heatmap -----------------------------------------------------


def link_heatmap(G, utilization, *, stat="max", group_by=None):
    """Link utilisation aggregated by (source group, destination group), one cell per pair.

    Nodes are grouped by kind and tier (GPU, NVSwitch, NIC, leaf, spine, core), so the
    figure has a handful of cells whether ``G`` holds 16 or 100k GPUs; every link of
    ``G`` counts, idle ones as 0.

    Parameters
    ----------
    G : networkx.DiGraph
        A fabric.
    utilization : dict
        ``{(u, v): fraction}`` as :func:`fabric.link_utilization` returns (edges absent
        carry nothing).
    stat : {"max", "mean"}
        What colours a cell: the most loaded link of the pair (hot spots, ECMP
        collisions) or the mean over all its links (how evenly load spreads). Hover gives
        both, the link count and how many carry traffic.
    group_by : callable, optional
        ``(node, attributes) -> label`` replacing the kind/tier groups (e.g. to split by
        pod: ``lambda n, d: (d.get("tier"), d.get("pod"))``); labels are shown with
        ``str`` in sorted order.

    Returns
    -------
    plotly.graph_objects.Figure
        One heatmap trace: rows are source groups, columns destination groups, ``z`` the
        utilisation in percent (None where no link joins the pair).

    Raises
    ------
    collectives.InvalidSpec
        ``stat`` is unknown, or ``utilization`` names an edge that ``G`` lacks or a
        fraction that is negative or not finite.

    Examples
    --------
    >>> import fabric
    >>> from collectives.plot import link_heatmap
    >>> G = fabric.dgx_superpod(4)
    >>> util = fabric.link_utilization(G, list(range(32)), [(r + 8) % 32 for r in range(32)])
    >>> fig = link_heatmap(G, util)
    >>> list(fig.data[0].y)
    ['GPU', 'NVSwitch', 'NIC', 'leaf (tier 1)', 'spine (tier 2)']
    >>> i, j = list(fig.data[0].y).index("NIC"), list(fig.data[0].x).index("leaf (tier 1)")
    >>> fig.data[0].z[i][j]
    100.0
    >>> "utilisation: max 100.0%" in fig.data[0].customdata[i][j]
    True
    """
    import plotly.graph_objects as go

    if stat not in ("max", "mean"):
        raise InvalidSpec(f"stat={stat!r} must be one of 'max', 'mean'")
    if group_by is not None and not callable(group_by):
        raise InvalidSpec(f"group_by={group_by!r} must be None or a callable (node, attributes) -> label")
    group_of, order = _link_groups(G, group_by)
    links, load, peak, loaded = {}, {}, {}, {}
    for u, v in G.edges():
        key = (group_of[u], group_of[v])
        links[key] = links.get(key, 0) + 1
    for (u, v), fraction in utilization.items():
        if not G.has_edge(u, v):
            raise InvalidSpec(f"utilization has edge ({u!r}, {v!r}) that G lacks")
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
                math.isfinite(fraction) and fraction >= 0):
            raise InvalidSpec(f"utilization[({u!r}, {v!r})]={fraction!r} must be a finite fraction >= 0")
        key = (group_of[u], group_of[v])
        load[key] = load.get(key, 0.0) + fraction
        peak[key] = max(peak.get(key, 0.0), fraction)
        if fraction > 0:
            loaded[key] = loaded.get(key, 0) + 1
    used = [g for g in order if any(g in key for key in links)]
    names = [_group_name(g) for g in used]
    z, text, hover = [], [], []
    for a in used:
        z_row, text_row, hover_row = [], [], []
        for b in used:
            count = links.get((a, b), 0)
            if not count:
                z_row.append(None)
                text_row.append("")
                hover_row.append(f"{_group_name(a)} → {_group_name(b)}: no links")
                continue
            mean, top = load.get((a, b), 0.0) / count, peak.get((a, b), 0.0)
            value = 100 * (top if stat == "max" else mean)
            z_row.append(value)
            text_row.append(f"{value:.0f}%")
            hover_row.append(
                f"<b>{_group_name(a)} → {_group_name(b)}</b><br>{count:,} links, {loaded.get((a, b), 0):,} "
                f"carrying traffic<br>utilisation: max {100 * top:.1f}%, mean {100 * mean:.1f}%"
            )
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
    trace = go.Heatmap(
        z=z, x=names, y=names, text=text, texttemplate="%{text}", customdata=hover,
        hovertemplate="%{customdata}<extra></extra>", colorscale="YlOrRd", zmin=0,
        zmax=max(100.0, max((v for row in z for v in row if v is not None), default=0.0)),
        colorbar=dict(title=f"{stat} util.", ticksuffix="%"), xgap=2, ygap=2,
    )
    gpus = gpu_count(G)
    layout = dict(
        LAYOUT,
        title=dict(text=f"Link utilisation ({stat} per group pair) · {G.graph.get('name', 'fabric')}<br>"
                        f"<sup>{gpus:,} GPUs · {G.number_of_edges():,} links, {len(utilization):,} carrying traffic"
                        " · rows: from, columns: to</sup>", x=0.01),
        xaxis=dict(title="to", type="category", side="bottom"),
        yaxis=dict(title="from", type="category", autorange="reversed"),
        width=260 + 110 * len(names), height=220 + 80 * len(names),
    )
    return go.Figure(data=[trace], layout=layout)


def _link_groups(G, group_by):
    """Each node's group and the groups in display order."""
    group_of = {}
    for node, data in G.nodes(data=True):
        if group_by is not None:
            group_of[node] = ("custom", group_by(node, data))
            continue
        kind = data.get("kind")
        if kind == "switch":
            if "tier" not in data:
                raise InvalidSpec(f"switch {node!r} lacks the 'tier' attribute")
            group_of[node] = ("tier", data["tier"])
        elif kind in KIND_GROUPS:
            group_of[node] = ("kind", kind)
        else:
            raise InvalidSpec(f"node {node!r} has kind={kind!r}; must be one of gpu, nvswitch, nic, switch")
    kinds = list(KIND_GROUPS)
    groups = set(group_of.values())
    builtin = sorted((g for g in groups if g[0] != "custom"),
                     key=lambda g: (0, kinds.index(g[1])) if g[0] == "kind" else (1, g[1]))
    custom = [g for g in groups if g[0] == "custom"]
    try:
        custom.sort(key=lambda g: g[1])
    except TypeError:  # labels of mixed types from a user's group_by
        custom.sort(key=lambda g: repr(g[1]))
    order = builtin + custom
    return group_of, order


def _group_name(group):
    family, value = group
    if family == "kind":
        return KIND_GROUPS[value]
    if family == "tier":
        return f"{SWITCH_TIER_NAMES[value]} (tier {value})" if value in SWITCH_TIER_NAMES else f"tier {value}"
    return str(value)


# --- shared helpers ------------------------------------------------------------------



def _is_result(obj):
    return all(hasattr(obj, a) for a in ("nbytes", "busbw", "algbw", "algorithm", "time"))




def _labelled(results, name, default_label):
    """``{label: non-empty list of CollectiveResult}`` from a list or a dict of lists."""
    curves = dict(results) if isinstance(results, Mapping) else {None: list(results)}
    if not curves:
        raise InvalidSpec(f"{name} is empty; give a list of CollectiveResult or a dict of such lists")
    out = {}
    for label, curve in curves.items():
        curve = list(curve)
        where = name if label is None else f"{name}[{label!r}]"
        if not curve:
            raise InvalidSpec(f"{where} is empty; give at least one CollectiveResult")
        for i, r in enumerate(curve):
            if not _is_result(r):
                raise InvalidSpec(f"{where}[{i}]={r!r:.80} is not a CollectiveResult")
        out[default_label(curve) if label is None else str(label)] = curve
    return out




def palette():
    """plotly's qualitative palette, the colours every figure of the project cycles through."""
    import plotly.colors

    return plotly.colors.qualitative.Plotly



__all__ = ["busbw_curve", "link_heatmap", "LAYOUT", "palette"]
