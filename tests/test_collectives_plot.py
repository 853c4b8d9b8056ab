"""The collectives figures build, hold the expected traces and explain their numbers on hover."""

import math
import subprocess
import sys

import pytest

import collectives
import fabric
from collectives.calibration import read_nccl_csv
from collectives.plot import busbw_curve, link_heatmap
from collectives.training.plot import scaling, search_results, step_breakdown, what_if

MODEL = collectives.MODELS["llama3-8b"]


@pytest.fixture(scope="module")
def node():
    return fabric.dgx_superpod(1)


@pytest.fixture(scope="module")
def estimates(node):
    """Eight plans on one DGX node: tp=1 does not fit, the rest do."""
    plans = [collectives.Parallelism(tp=tp, dp=8 // tp, micro_batch=mb, global_batch=16)
             for tp in (1, 2, 4, 8) for mb in (1, 2)]
    return [collectives.estimate_step(MODEL, p, node, level="analytic") for p in plans]


def test_import_collectives_does_not_import_plotly():
    code = "import sys, collectives, collectives.plot, collectives.training.plot; assert 'plotly' not in sys.modules, 'plotly imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- busbw_curve ---------------------------------------------------------------------


def test_busbw_curve_one_sweep_with_published_points(node):
    sizes = [2**k for k in range(10, 34, 2)]
    curve = collectives.sweep(node, "all_reduce", sizes, level="analytic")
    rows = [r for r in read_nccl_csv() if r["collective"] == "all_reduce" and r["gpu"] == "H100"
            and r["nodes"] == 1 and r["gpus_per_node"] == 8]
    fig = busbw_curve(curve, published=rows)
    model, *measured = fig.data
    assert model.name == "all_reduce, 8 ranks (analytic)"
    assert list(model.x) == sizes
    assert list(model.y) == pytest.approx([r.busbw / 1e9 for r in curve])
    assert fig.layout.xaxis.type == "log"
    assert sum(len(t.x) for t in measured) == len(rows)
    assert {t.name for t in measured} == {f"nccl-tests: {r['algorithm']}" for r in rows}
    for trace in measured:
        algorithm = trace.name.split(": ")[1]
        assert all(f"algorithm {algorithm}" in text and "busbw" in text for text in trace.hovertext)
    for r, text in zip(curve, model.hovertext):
        assert f"busbw {r.busbw / 1e9:,.1f} GB/s" in text and f"algorithm {r.algorithm}" in text


def test_busbw_curve_several_curves_sorted_by_size(node):
    sizes = [2**30, 2**10, 2**20]
    curves = {a: collectives.sweep(node, "all_gather", sizes, algorithm=a, level="analytic")
              for a in ("ring", "halving_doubling")}
    fig = busbw_curve(curves)
    assert [t.name for t in fig.data] == ["ring", "halving_doubling"]
    assert all(list(t.x) == sorted(sizes) for t in fig.data)
    assert all(list(t.y) == sorted(t.y) for t in fig.data)  # busbw grows with size


@pytest.mark.parametrize("bad", [[], {"x": []}, [1.0], {}])
def test_busbw_curve_rejects_empty_or_foreign_input(bad):
    with pytest.raises(collectives.InvalidSpec):
        busbw_curve(bad)


def test_busbw_curve_rejects_incomplete_published_row(node):
    curve = collectives.sweep(node, "all_reduce", [2**20], level="analytic")
    with pytest.raises(collectives.InvalidSpec, match="busbw"):
        busbw_curve(curve, published=[{"collective": "all_reduce", "gpu": "H100", "nodes": 1, "gpus_per_node": 8,
                                       "algorithm": "ring", "message_bytes": 2**20}])


# --- step_breakdown ------------------------------------------------------------------


def test_step_breakdown_stacks_to_the_step_time(estimates):
    chosen = {f"plan {i}": e for i, e in enumerate(estimates[2:5])}
    fig = step_breakdown(chosen)
    assert fig.layout.barmode == "stack"
    assert all(t.type == "bar" and list(t.x) == list(chosen) for t in fig.data)
    for i, est in enumerate(chosen.values()):
        assert sum(t.y[i] for t in fig.data) == pytest.approx(est.time)
    nonzero = {c for e in chosen.values() for c, t in e.breakdown.items() if t > 0}
    assert len(fig.data) == len(nonzero)
    assert [a.text.split("MFU ")[1] for a in fig.layout.annotations] == [f"{e.mfu:.1%}" for e in chosen.values()]
    assert all("MFU" in text and "of" in text for t in fig.data for text in t.hovertext)


def test_step_breakdown_labels_a_list_and_a_single_estimate(estimates):
    fig = step_breakdown(estimates[2:4])  # tp2 dp4, mb 1 and 2: same sizes, so numbered
    assert list(fig.data[0].x) == ["#1 tp2·dp4", "#2 tp2·dp4"]
    assert list(step_breakdown(estimates[-1]).data[0].x) == ["tp8"]


# --- scaling -------------------------------------------------------------------------


def test_scaling_two_axes_sorted_by_gpus():
    points = []
    for n in (4, 1, 2):
        plan = collectives.Parallelism(tp=8, dp=n, global_batch=32)
        points.append((8 * n, collectives.estimate_step(MODEL, plan, fabric.dgx_superpod(n), level="analytic")))
    fig = scaling(points)
    time, mfu = fig.data
    assert (time.yaxis, mfu.yaxis) == ("y", "y2")
    assert list(time.x) == list(mfu.x) == [8, 16, 32]
    ordered = [e for _, e in sorted(points, key=lambda p: p[0])]
    assert list(time.y) == [e.time for e in ordered]
    assert list(mfu.y) == pytest.approx([100 * e.mfu for e in ordered])
    assert fig.layout.yaxis2.overlaying == "y" and fig.layout.xaxis.type == "log"
    assert all("MFU" in text and "tp=8" in text for text in time.hovertext)
    series = scaling({"IB": points, "RoCE": points[:2]})
    assert [t.name for t in series.data] == ["IB: step time", "IB: MFU", "RoCE: step time", "RoCE: MFU"]
    # readable on a slide: a title, round GPU-count ticks, one series in two colours matching its axes
    assert fig.layout.title.text.startswith("Scaling") and list(fig.layout.xaxis.ticktext) == ["8", "16", "32"]
    assert time.line.color != mfu.line.color
    assert (fig.layout.yaxis.title.font.color, fig.layout.yaxis2.title.font.color) == (time.line.color, mfu.line.color)
    assert series.data[0].line.color == series.data[1].line.color != series.data[2].line.color


@pytest.mark.parametrize("bad", [[], [(0, None)], [(8.0, None)]])
def test_scaling_rejects_bad_points(bad, estimates):
    bad = [(n, estimates[-1]) if e is None else (n, e) for n, e in bad]
    with pytest.raises(collectives.InvalidSpec):
        scaling(bad)


# --- search_results ------------------------------------------------------------------


def test_search_results_marks_the_fastest_that_fit(estimates):
    fig = search_results(estimates, best=2)
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"other plans", "2 fastest", "does not fit"}
    fitting = sorted((e for e in estimates if e.fits), key=lambda e: e.time)
    assert list(traces["2 fastest"].y) == [e.time for e in fitting[:2]]
    assert list(traces["2 fastest"].text) == ["1", "2"]
    assert list(traces["2 fastest"].x) == pytest.approx([e.memory_per_gpu / 2**30 for e in fitting[:2]])
    assert len(traces["other plans"].x) == len(fitting) - 2
    assert len(traces["does not fit"].x) == sum(not e.fits for e in estimates)
    assert all(max(traces["2 fastest"].y) <= y for y in traces["other plans"].y)
    for text in traces["2 fastest"].hovertext:
        assert "tp=" in text and "GiB" in text and "MFU" in text and "recompute=" in text


def test_search_results_best_zero_and_bad_best(estimates):
    fits = [e for e in estimates if e.fits]
    fig = search_results(fits, best=0)
    assert [t.name for t in fig.data] == ["other plans", "0 fastest"] and len(fig.data[0].x) == len(fits)
    with pytest.raises(collectives.InvalidSpec, match="best"):
        search_results(fits, best=-1)


# --- what_if -------------------------------------------------------------------------


def test_what_if_slowdown_against_the_first(estimates):
    scenarios = {"InfiniBand adaptive": estimates[3], "RoCE ECMP": estimates[5], "rail-only": estimates[7]}
    fig = what_if(scenarios)
    (bars,) = fig.data
    assert bars.orientation == "h" and list(bars.y) == list(scenarios)
    assert list(bars.x) == [e.time for e in scenarios.values()]
    base = estimates[3].time
    assert list(bars.text) == ["1.00x (baseline)"] + [f"{e.time / base:.2f}x" for e in (estimates[5], estimates[7])]
    assert all("slowdown" in text and "MFU" in text for text in bars.hovertext)
    assert fig.layout.yaxis.autorange == "reversed"  # the baseline on top
    with pytest.raises(collectives.InvalidSpec):
        what_if([estimates[0]])
    with pytest.raises(collectives.InvalidSpec):
        what_if({})


# --- link_heatmap --------------------------------------------------------------------


def cells(fig):
    (heat,) = fig.data
    return {(a, b): (heat.z[i][j], heat.customdata[i][j])
            for i, a in enumerate(heat.y) for j, b in enumerate(heat.x)}


def test_link_heatmap_counts_every_link_once():
    G = fabric.dgx_superpod(4)
    util = fabric.link_utilization(G, list(range(32)), [(r + 8) % 32 for r in range(32)])
    fig = link_heatmap(G, util)
    table = cells(fig)
    links = sum(int(text.split("</b><br>")[1].split(" links")[0].replace(",", ""))
                for z, text in table.values() if z is not None)
    assert links == G.number_of_edges()
    z, text = table["NIC", "leaf (tier 1)"]
    assert z == 100.0 and "utilisation: max 100.0%" in text
    assert table["leaf (tier 1)", "NIC"][0] == 100.0
    mean = cells(link_heatmap(G, util, stat="mean"))
    assert all(mean[k][0] is None or mean[k][0] <= v + 1e-9 for k, (v, _) in table.items())


def test_link_heatmap_stays_aggregated_at_16k_gpus():
    G = fabric.dgx_superpod(2048)  # 16,384 H100
    util = {(u, v): 0.5 for u, v in G.edges() if G.nodes[u]["kind"] == "switch"}
    fig = link_heatmap(G, util)
    (heat,) = fig.data
    assert list(heat.y) == ["GPU", "NVSwitch", "NIC", "leaf (tier 1)", "spine (tier 2)", "core (tier 3)"]
    assert len(heat.x) * len(heat.y) <= 36
    assert "16,384 GPUs" in fig.layout.title.text
    table = cells(fig)
    assert table["spine (tier 2)", "core (tier 3)"][0] == 50.0 and table["GPU", "NIC"][0] == 0.0


def test_link_heatmap_custom_groups_and_errors():
    G = fabric.dgx_superpod(2)
    util = fabric.link_utilization(G, [0, 1], [8, 8])
    fig = link_heatmap(G, util, group_by=lambda node, data: data["kind"])
    assert sorted(fig.data[0].y) == ["gpu", "nic", "nvswitch", "switch"]
    with pytest.raises(collectives.InvalidSpec, match="G lacks"):
        link_heatmap(G, {("nope", "leaf0"): 1.0})
    with pytest.raises(collectives.InvalidSpec, match="stat"):
        link_heatmap(G, util, stat="median")
    edge = next(iter(util))
    with pytest.raises(collectives.InvalidSpec, match="finite"):
        link_heatmap(G, {edge: math.nan})


def test_parity_marks_each_gpu_family_and_plans_that_do_not_fit():
    from collectives.training.plot import parity
    from collectives.training.validation import validate

    report = validate(kinds=("step",), progress=False)
    fig = parity(report)
    markers = [t for t in fig.data if t.mode == "markers"]
    priced = [r for r in report.rows if not r["unsupported"]]
    assert sum(len(t.x) for t in markers) == len(priced)
    assert {t.name for t in markers} == {r["gpu"] for r in priced}
    open_markers = sum(s.endswith("-open") for t in markers for s in t.marker.symbol)
    assert open_markers == sum(1 for r in priced if r["fits"] is False)
    unsupported = len(report.rows) - len(priced)
    assert (f"{unsupported} unsupported rows not drawn" in fig.layout.title.text) == (unsupported > 0)
    with pytest.raises(collectives.InvalidSpec, match="is not a ValidationReport"):
        parity([1, 2])
