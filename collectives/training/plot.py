"""Plotly views of training-step estimates.

- :func:`step_breakdown`: where a step's time goes, cause by cause;
- :func:`scaling`: step time and MFU as the GPU count grows;
- :func:`search_results`: every plan of a search, step time vs memory per GPU;
- :func:`what_if`: named scenarios (fabrics, failures) against a baseline;
- :func:`parity`: every published measurement against the model's prediction.

Collective figures (bandwidth curves, link heatmaps) are in :mod:`collectives.plot`. plotly
is imported inside the functions, so ``import collectives`` stays fast and works without it.
"""

import math
import numbers
from collections.abc import Mapping

from fabric.tables import format_time
from fabric.units import GiB

from collectives.errors import InvalidSpec
from collectives.plot import LAYOUT, palette

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
# Above this many points the search scatter uses WebGL, which stays fluid with 10k+ plans.
WEBGL_POINTS = 5000
BASELINE_COLOR, SLOWER_COLOR, FASTER_COLOR = "#7f7f7f", "#e45756", "#54a24b"


# --- 1. step breakdown ---------------------------------------------------------------


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
    >>> from collectives.training.plot import step_breakdown
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


# --- 2. scaling ----------------------------------------------------------------------


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
    >>> from collectives.training.plot import scaling
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
    colors = palette()
    single = len(series) == 1  # one series: step time and MFU in two colours, matching their axes
    for i, (label, pairs) in enumerate(series.items()):
        color = colors[i % len(colors)]
        mfu_color = colors[1] if single else color
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
            line=dict(color=mfu_color, dash="dash"), marker=dict(symbol="diamond"), legendgroup=label,
            hovertext=hover, hoverinfo="text"))
    ticks = sorted(gpus)
    if len(ticks) > 12:
        ticks = ticks[:: math.ceil(len(ticks) / 12)]
    layout = dict(
        LAYOUT,
        title=dict(text="Scaling<br><sup>step time (solid, left) and MFU (dashed, right) by GPU count</sup>", x=0.01),
        xaxis=dict(type="log", title="GPUs", tickvals=ticks, ticktext=[f"{n:,}" for n in ticks]),
        yaxis=dict(title=dict(text="seconds per step", font=dict(color=colors[0]) if single else {}),
                   rangemode="tozero"),
        yaxis2=dict(title=dict(text="MFU", font=dict(color=colors[1]) if single else {}), overlaying="y",
                    side="right", ticksuffix="%", rangemode="tozero", showgrid=False),
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


# --- 3. search results ---------------------------------------------------------------


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
    >>> from collectives.training.plot import search_results
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


# --- 4. what-if scenarios ------------------------------------------------------------


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
    >>> from collectives.training.plot import what_if
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



# --- 5. parity with published measurements --------------------------------------------

# One marker per GPU family on the parity figure, in catalog order.
GPU_SYMBOLS = {"A100": "circle", "H100": "square", "H200": "diamond", "B200": "triangle-up", "GB200": "star"}


def parity(report):
    """Predicted against published, one marker per row, a shape and colour per GPU family.

    Three panels: seconds per training step, peak memory per GPU and nccl-tests bus
    bandwidth, log-log, with the line of equality and a band of +-10%. Rows the plan of which is predicted not to fit
    are open markers; unsupported rows are counted in the title, not drawn.

    Parameters
    ----------
    report : collectives.training.validation.ValidationReport

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> from collectives.training.validation import validate
    >>> from collectives.training.plot import parity
    >>> fig = parity(validate(kinds=("nccl",), progress=False))
    >>> sorted({t.name for t in fig.data if t.showlegend is not False})
    ['A100', 'GB200', 'H100']
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not (hasattr(report, "rows") and hasattr(report, "level")):
        raise InvalidSpec(f"report={report!r:.80} is not a ValidationReport (collectives.training.validation)")
    panels = {"step": ("seconds per step", 1, lambda v: v),
              "memory": ("peak memory per GPU (GiB)", 2, lambda v: v / 2**30),
              "nccl": ("bus bandwidth (GB/s)", 3, lambda v: v / 1e9)}
    fig = make_subplots(rows=1, cols=3, subplot_titles=[title for title, _, _ in panels.values()],
                        horizontal_spacing=0.08)
    families = [g for g in GPU_SYMBOLS if any(r["gpu"] == g for r in report.rows)]
    families += sorted({r["gpu"] for r in report.rows} - set(families))
    colors, shown = palette(), set()
    for kind, (title, col, scale) in panels.items():
        priced = [r for r in report.rows if r["kind"] == kind and not r["unsupported"]]
        if not priced:
            continue
        values = [scale(v) for r in priced for v in (r["published"], r["predicted"])]
        lo, hi = min(values) / 1.3, max(values) * 1.3
        for factor, dash in ((1.0, "solid"), (1.1, "dot"), (1 / 1.1, "dot")):
            fig.add_trace(go.Scatter(x=[lo, hi], y=[lo * factor, hi * factor], mode="lines", showlegend=False,
                                     line=dict(color="#999999", dash=dash, width=1), hoverinfo="skip"), row=1, col=col)
        for i, gpu in enumerate(families):
            # plans that fit first, so the legend shows the filled marker
            mine = sorted((r for r in priced if r["gpu"] == gpu), key=lambda r: r["fits"] is False)
            if not mine:
                continue
            symbol = GPU_SYMBOLS.get(gpu, "x")
            fig.add_trace(go.Scatter(
                x=[scale(r["published"]) for r in mine], y=[scale(r["predicted"]) for r in mine], mode="markers",
                name=gpu, legendgroup=gpu, showlegend=gpu not in shown,
                marker=dict(size=10, color=colors[i % len(colors)],
                            symbol=[symbol + ("-open" if r["fits"] is False else "") for r in mine]),
                hovertext=[f"<b>{r['case']}</b><br>{r['gpus']:,} {gpu}<br>published {scale(r['published']):.4g}, "
                           f"predicted {scale(r['predicted']):.4g} ({r['error']:+.1%})"
                           + ("<br>predicted NOT to fit in memory" if r["fits"] is False else "")
                           for r in mine], hoverinfo="text"), row=1, col=col)
            shown.add(gpu)
        fig.update_xaxes(type="log", title_text=f"published {title}", row=1, col=col)
        fig.update_yaxes(type="log", title_text=f"predicted {title}", row=1, col=col)
    unsupported = sum(1 for r in report.rows if r["unsupported"])
    sub = f"{report.level} level; dotted: +-10%; open markers: predicted not to fit"
    if unsupported:
        sub += f"; {unsupported} unsupported rows not drawn"
    fig.update_layout(LAYOUT, title=dict(text=f"Model against published measurements<br><sup>{sub}</sup>", x=0.01),
                      legend=dict(title="GPU"))
    return fig


# --- shared helpers ------------------------------------------------------------------



def _is_estimate(obj):
    return all(hasattr(obj, a) for a in ("time", "mfu", "breakdown", "memory_per_gpu", "plan"))




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



__all__ = ["step_breakdown", "scaling", "search_results", "what_if", "parity"]
