"""Plotly views of collective costs and training-step estimates.

Six figures, each a function returning a ``plotly.graph_objects.Figure``:

- :func:`busbw_curve`: the nccl-tests curve (bus bandwidth vs message size), with
  published measurements overlaid;
- :func:`step_breakdown`: where a step's time goes, cause by cause;
- :func:`scaling`: step time and MFU as the GPU count grows;
- :func:`search_results`: every plan of a search, step time vs memory per GPU;
- :func:`what_if`: named scenarios (fabrics, failures) against a baseline;
- :func:`link_heatmap`: link utilisation aggregated by tier, readable at 100k+ GPUs.

plotly is imported inside the functions, so ``import collectives`` stays fast and works
without it.
"""

import math
import numbers
from collections.abc import Mapping

from fabric.schema import SWITCH_TIER_NAMES, gpu_count
from fabric.tables import format_time
from fabric.units import GBps, GiB

from collectives.errors import InvalidSpec

# Symbols distinguishing algorithms on a curve (the "auto" choice changes with size).
ALGORITHM_SYMBOLS = {
    "ring": "circle", "tree": "triangle-up", "halving_doubling": "diamond", "hierarchical": "square",
    "nvls": "star", "sharp": "hexagram", "direct": "cross",
}
# Display names of step-breakdown causes; unknown causes get their key with spaces.
CAUSE_NAMES = {
    "compute": "compute",
    "tp_communication": "TP communication",
    "cp_communication": "CP communication",
    "ep_communication": "EP communication",
    "pipeline_bubble": "pipeline bubble",
    "pp_communication": "PP communication",
    "dp_communication": "DP communication",
    "optimizer": "optimizer",
}
CAUSE_COLORS = {
    "compute": "#4c78a8", "tp_communication": "#f58518", "cp_communication": "#b279a2",
    "ep_communication": "#ff9da6", "pipeline_bubble": "#bab0ac", "pp_communication": "#e45756",
    "dp_communication": "#54a24b", "optimizer": "#9d755d",
}
# Plan fields shown in a short label, in this order, when they differ from 1 / are set.
PLAN_LABEL_FIELDS = ("tp", "pp", "dp", "cp", "ep")
# Node groups of the link heatmap, in display order: server-side kinds, then switch tiers.
KIND_GROUPS = {"gpu": "GPU", "nvswitch": "NVSwitch", "nic": "NIC"}
# Above this many points the search scatter uses WebGL, which stays fluid with 10k+ plans.
WEBGL_POINTS = 5000
BASELINE_COLOR, SLOWER_COLOR, FASTER_COLOR = "#7f7f7f", "#e45756", "#54a24b"
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


# --- 2. step breakdown ---------------------------------------------------------------


def step_breakdown(estimates):
    """Stacked bars of where each step's time goes, one bar per estimate.

    Parameters
    ----------
    estimates : StepEstimate, list of StepEstimate, or dict
        ``{label: StepEstimate}``; a list is labelled by each plan's parallel sizes.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace per cause (``breakdown`` key) that is non-zero in some estimate,
        stacked; each segment's hover gives seconds, share of the step and the MFU, and
        an annotation above each bar gives the step time and MFU.

    Examples
    --------
    >>> import fabric, collectives
    >>> from collectives.plot import step_breakdown
    >>> model = collectives.MODELS["llama3-8b"]
    >>> G = fabric.dgx_superpod(2)
    >>> est = {f"tp={tp}": collectives.estimate_step(model, collectives.Parallelism(
    ...            tp=tp, dp=16 // tp, global_batch=32), G, level="analytic") for tp in (4, 8)}
    >>> fig = step_breakdown(est)
    >>> [t.name for t in fig.data][:2]
    ['compute', 'TP communication']
    >>> list(fig.data[0].x), len(fig.layout.annotations)
    (['tp=4', 'tp=8'], 2)
    >>> "MFU" in fig.data[0].hovertext[0]
    True
    """
    import plotly.graph_objects as go

    labelled = _estimates(estimates, "estimates")
    labels, ests = list(labelled), list(labelled.values())
    causes = []
    for est in ests:
        causes += [c for c in est.breakdown if c not in causes]
    causes = [c for c in causes if any(est.breakdown.get(c, 0) > 0 for est in ests)]
    traces = []
    for cause in causes:
        seconds = [est.breakdown.get(cause, 0.0) for est in ests]
        traces.append(
            go.Bar(
                x=labels, y=seconds, name=_cause_name(cause), marker_color=CAUSE_COLORS.get(cause),
                hovertext=[
                    f"<b>{label}</b><br>{_cause_name(cause)}: {format_time(t)} "
                    f"({t / est.time if est.time else 0:.1%} of {format_time(est.time)})<br>MFU {est.mfu:.1%}"
                    for label, est, t in zip(labels, ests, seconds)
                ],
                hoverinfo="text",
            )
        )
    annotations = [
        dict(x=label, y=est.time, text=f"{format_time(est.time)}<br>MFU {est.mfu:.1%}", showarrow=False,
             yanchor="bottom", font=dict(size=11))
        for label, est in zip(labels, ests)
    ]
    layout = dict(
        LAYOUT, barmode="stack", annotations=annotations,
        title=dict(text="Step time by cause<br><sup>stacked seconds per optimizer step · "
                        "label: step time and MFU · hover for shares</sup>", x=0.01),
        yaxis=dict(title="seconds per step", rangemode="tozero"),
        xaxis=dict(title=None, type="category"),
        margin=dict(t=110),
    )
    return go.Figure(data=traces, layout=layout)


def _cause_name(cause):
    return CAUSE_NAMES.get(cause, cause.replace("_", " "))


# --- 3. scaling ----------------------------------------------------------------------


def scaling(points):
    """Step time (left axis) and MFU (right axis) against the GPU count.

    Parameters
    ----------
    points : list of (int, StepEstimate), or dict
        ``(gpus, estimate)`` pairs, or ``{label: list of pairs}`` for several series
        (e.g. one per fabric). Pairs are sorted by GPU count.

    Returns
    -------
    plotly.graph_objects.Figure
        Per series, a step-time trace (solid, ``yaxis="y"``) and an MFU trace (dashed,
        ``yaxis="y2"``, in percent); hover gives GPUs, step time, MFU, tokens/s and plan.

    Examples
    --------
    >>> import fabric, collectives
    >>> from collectives.plot import scaling
    >>> model = collectives.MODELS["llama3-8b"]
    >>> points = [(8 * n, collectives.estimate_step(model, collectives.Parallelism(
    ...     tp=8, dp=n, global_batch=32), fabric.dgx_superpod(n), level="analytic")) for n in (1, 2, 4)]
    >>> fig = scaling(points)
    >>> [(t.name, t.yaxis, list(t.x)) for t in fig.data]
    [('step time', 'y', [8, 16, 32]), ('MFU', 'y2', [8, 16, 32])]
    >>> "MFU" in fig.data[0].hovertext[0]
    True
    """
    import plotly.graph_objects as go

    if isinstance(points, Mapping):
        if not points:
            raise InvalidSpec("points is empty; give at least one (gpus, StepEstimate) pair")
        series = {str(label): _pairs(value, f"points[{label!r}]") for label, value in points.items()}
    else:
        series = {"": _pairs(points, "points")}
    traces, gpus = [], set()
    palette = _palette()
    for i, (label, pairs) in enumerate(series.items()):
        color = palette[i % len(palette)]
        prefix = f"{label}: " if label else ""
        xs = [n for n, _ in pairs]
        gpus.update(xs)
        hover = [
            f"<b>{prefix}{n:,} GPUs</b><br>step {format_time(est.time)} · MFU {est.mfu:.1%}<br>"
            f"{est.tokens_per_second:,.0f} tokens/s · {est.tflops_per_gpu:.0f} TFLOP/s per GPU<br>"
            f"{_plan_text(est.plan)}"
            for n, est in pairs
        ]
        traces.append(go.Scatter(
            x=xs, y=[est.time for _, est in pairs], yaxis="y", mode="lines+markers", name=f"{prefix}step time",
            line=dict(color=color), legendgroup=label, hovertext=hover, hoverinfo="text"))
        traces.append(go.Scatter(
            x=xs, y=[100 * est.mfu for _, est in pairs], yaxis="y2", mode="lines+markers", name=f"{prefix}MFU",
            line=dict(color=color, dash="dash"), marker=dict(symbol="diamond"), legendgroup=label,
            hovertext=hover, hoverinfo="text"))
    ticks = sorted(gpus)
    if len(ticks) > 12:
        ticks = ticks[:: math.ceil(len(ticks) / 12)]
    layout = dict(
        LAYOUT,
        title=dict(text="Scaling<br><sup>step time (solid, left) and MFU (dashed, right) by GPU count</sup>", x=0.01),
        xaxis=dict(type="log", title="GPUs", tickvals=ticks, ticktext=[f"{n:,}" for n in ticks]),
        yaxis=dict(title="seconds per step", rangemode="tozero"),
        yaxis2=dict(title="MFU", overlaying="y", side="right", ticksuffix="%", rangemode="tozero", showgrid=False),
        legend=dict(orientation="h", yanchor="bottom", y=-0.3, x=0),
    )
    return go.Figure(data=traces, layout=layout)


def _pairs(points, name):
    pairs = list(points)
    if not pairs:
        raise InvalidSpec(f"{name} is empty; give at least one (gpus, StepEstimate) pair")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and _is_estimate(pair[1])):
            raise InvalidSpec(f"{name}[{i}]={pair!r:.80} must be a (gpus, StepEstimate) pair")
        if isinstance(pair[0], bool) or not isinstance(pair[0], numbers.Integral) or pair[0] < 1:
            raise InvalidSpec(f"{name}[{i}] has gpus={pair[0]!r}; must be an integer >= 1")
    return sorted(((int(n), est) for n, est in pairs), key=lambda p: p[0])


# --- 4. search results ---------------------------------------------------------------


def search_results(estimates, best=5):
    """Every plan of a search: step time against memory per GPU, the fastest marked.

    Parameters
    ----------
    estimates : list of StepEstimate
        E.g. from :func:`collectives.search`, in any order.
    best : int
        How many of the fastest plans that fit to mark (ranked, labelled 1, 2, ...).

    Returns
    -------
    plotly.graph_objects.Figure
        Traces ``"other plans"``, ``"N fastest"`` and, if any estimate does not fit in
        memory, ``"does not fit"``; hover lists the plan, step time, MFU and memory.

    Examples
    --------
    >>> import fabric, collectives
    >>> from collectives.plot import search_results
    >>> G, model = fabric.dgx_superpod(1), collectives.MODELS["llama3-8b"]
    >>> plans = [collectives.Parallelism(tp=tp, dp=8 // tp, micro_batch=mb, global_batch=16)
    ...          for tp in (1, 2, 4, 8) for mb in (1, 2)]
    >>> found = [collectives.estimate_step(model, p, G, level="analytic") for p in plans]
    >>> fig = search_results(found, best=3)          # tp=1 does not fit in 80 GB
    >>> [(t.name, len(t.x)) for t in fig.data]
    [('other plans', 3), ('3 fastest', 3), ('does not fit', 2)]
    >>> "tp=" in fig.data[1].hovertext[0]
    True
    """
    import plotly.graph_objects as go

    if isinstance(best, bool) or not isinstance(best, numbers.Integral) or best < 0:
        raise InvalidSpec(f"best={best!r} must be an integer >= 0")
    ests = list(estimates)
    if not ests:
        raise InvalidSpec("estimates is empty; give at least one StepEstimate")
    for i, est in enumerate(ests):
        if not _is_estimate(est):
            raise InvalidSpec(f"estimates[{i}]={est!r:.80} is not a StepEstimate")
    ests.sort(key=lambda e: e.time)
    fitting = [e for e in ests if e.fits]
    top = fitting[:best]
    top_ids = {id(e) for e in top}
    others = [e for e in fitting if id(e) not in top_ids]
    misfits = [e for e in ests if not e.fits]
    scatter = go.Scattergl if len(ests) > WEBGL_POINTS else go.Scatter

    def points(group, **style):
        return dict(x=[e.memory_per_gpu / GiB for e in group], y=[e.time for e in group],
                    hovertext=[_estimate_text(e) for e in group], hoverinfo="text", **style)

    traces = [
        scatter(mode="markers", name="other plans", marker=dict(size=6, color="#9ecae1", opacity=0.7),
                **points(others)),
        go.Scatter(mode="markers+text", name=f"{len(top)} fastest", text=[str(i + 1) for i in range(len(top))],
                   textposition="top center",
                   marker=dict(size=12, color="#e45756", symbol="star", line=dict(width=1, color="black")),
                   **points(top)),
    ]
    if misfits:
        traces.append(scatter(mode="markers", name="does not fit",
                              marker=dict(size=6, color="#bab0ac", symbol="x"), **points(misfits)))
    layout = dict(
        LAYOUT,
        title=dict(text=f"Parallelism plans: {len(ests):,} estimated<br><sup>step time vs memory on the most "
                        f"loaded GPU · stars: the {len(top)} fastest that fit · hover for the plan</sup>", x=0.01),
        xaxis=dict(title="memory per GPU (GiB)", rangemode="tozero"),
        yaxis=dict(title="seconds per step", type="log"),
    )
    return go.Figure(data=traces, layout=layout)


def _estimate_text(est):
    return (
        f"<b>{format_time(est.time)} per step · MFU {est.mfu:.1%}</b><br>"
        f"memory {est.memory_per_gpu / GiB:.1f} GiB per GPU ({'fits' if est.fits else 'does NOT fit'})<br>"
        f"{_plan_text(est.plan)}"
    )


# --- 5. what-if scenarios ------------------------------------------------------------


def what_if(estimates):
    """Horizontal bars of named scenarios' step times, each against the first (baseline).

    Parameters
    ----------
    estimates : dict
        ``{scenario name: StepEstimate}``, e.g. ``"InfiniBand adaptive"``,
        ``"Spectrum-X"``, ``"RoCE ECMP"``, ``"rail-only"``, ``"3:1 oversubscribed"``,
        ``"spine down"``. The first entry is the baseline.

    Returns
    -------
    plotly.graph_objects.Figure
        One bar trace, one bar per scenario top to bottom in the given order, labelled
        with the slowdown (``1.00x (baseline)``, ``1.23x``); hover gives step time,
        slowdown, MFU and the breakdown.

    Examples
    --------
    >>> import fabric, collectives
    >>> from collectives.plot import what_if
    >>> model = collectives.MODELS["llama3-8b"]
    >>> plan = collectives.Parallelism(tp=8, dp=4, global_batch=32)
    >>> fabrics = {"InfiniBand adaptive": fabric.dgx_superpod(4),
    ...            "RoCE ECMP": fabric.fat_tree(4, routing="ecmp", qps=1),
    ...            "3:1 oversubscribed": fabric.fat_tree(4, oversubscription=3)}
    >>> fig = what_if({name: collectives.estimate_step(model, plan, G, level="analytic")
    ...                for name, G in fabrics.items()})
    >>> len(fig.data), list(fig.data[0].y)
    (1, ['InfiniBand adaptive', 'RoCE ECMP', '3:1 oversubscribed'])
    >>> fig.data[0].text[0], "slowdown" in fig.data[0].hovertext[1]
    ('1.00x (baseline)', True)
    """
    import plotly.graph_objects as go

    if not isinstance(estimates, Mapping):
        raise InvalidSpec(f"estimates must be a dict {{scenario name: StepEstimate}}, got {type(estimates).__name__}")
    labelled = _estimates(estimates, "estimates")
    names, ests = list(labelled), list(labelled.values())
    base = ests[0]
    ratios = [e.time / base.time if base.time > 0 else math.inf for e in ests]
    text = ["1.00x (baseline)"] + [f"{r:.2f}x" for r in ratios[1:]]
    colors = [BASELINE_COLOR] + [SLOWER_COLOR if r > 1 + 1e-9 else FASTER_COLOR if r < 1 - 1e-9 else BASELINE_COLOR
                                 for r in ratios[1:]]
    hover = []
    for name, est, ratio in zip(names, ests, ratios):
        causes = sorted(((t, c) for c, t in est.breakdown.items() if t > 0), reverse=True)
        hover.append(
            f"<b>{name}</b><br>step {format_time(est.time)} · slowdown {ratio:.3f}x "
            f"({ratio - 1:+.1%} vs {names[0]})<br>MFU {est.mfu:.1%}<br>"
            + "<br>".join(f"  {_cause_name(c)}: {format_time(t)}" for t, c in causes)
        )
    trace = go.Bar(
        x=[e.time for e in ests], y=names, orientation="h", marker_color=colors, text=text,
        textposition="outside", hovertext=hover, hoverinfo="text", name="step time",
    )
    layout = dict(
        LAYOUT,
        title=dict(text=f"What if<br><sup>seconds per step · label: slowdown vs {names[0]} · "
                        "hover for the breakdown</sup>", x=0.01),
        xaxis=dict(title="seconds per step", rangemode="tozero", range=[0, 1.2 * max(e.time for e in ests)]),
        yaxis=dict(autorange="reversed", type="category"),
        height=200 + 40 * len(names),
        showlegend=False,
    )
    return go.Figure(data=[trace], layout=layout)


# --- 6. link utilisation heatmap -----------------------------------------------------


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


def _is_estimate(obj):
    return all(hasattr(obj, a) for a in ("time", "mfu", "breakdown", "memory_per_gpu", "plan"))


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


def _estimates(estimates, name):
    """``{label: StepEstimate}`` from one estimate, a list or a dict."""
    if _is_estimate(estimates):
        estimates = [estimates]
    if isinstance(estimates, Mapping):
        labelled = {str(k): v for k, v in estimates.items()}
    else:
        items = list(estimates)
        labels = [_plan_label(e.plan) if _is_estimate(e) else "" for e in items]
        if len(set(labels)) < len(labels) or not all(labels):
            labels = [f"#{i + 1} {label}".strip() for i, label in enumerate(labels)]
        labelled = dict(zip(labels, items))
    if not labelled:
        raise InvalidSpec(f"{name} is empty; give at least one StepEstimate")
    for label, est in labelled.items():
        if not _is_estimate(est):
            raise InvalidSpec(f"{name}[{label!r}]={est!r:.80} is not a StepEstimate")
    return labelled


def _plan_label(plan):
    """``tp8·pp4·dp16`` from a plan dict (empty if it has none of the sizes)."""
    return "·".join(f"{k}{plan[k]}" for k in PLAN_LABEL_FIELDS if k in plan and (plan[k] != 1 or k == "tp"))


def _plan_text(plan):
    """The plan dict on two hover lines: parallel sizes, then the rest."""
    if not plan:
        return "plan: (not recorded)"
    sizes = ", ".join(f"{k}={plan[k]}" for k in PLAN_LABEL_FIELDS if k in plan)
    rest = ", ".join(f"{k}={v}" for k, v in plan.items() if k not in PLAN_LABEL_FIELDS)
    return "<br>".join(part for part in (sizes, rest) if part)


def _palette():
    import plotly.colors

    return plotly.colors.qualitative.Plotly


__all__ = ["busbw_curve", "step_breakdown", "scaling", "search_results", "what_if", "link_heatmap"]
