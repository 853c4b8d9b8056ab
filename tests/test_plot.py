"""The topology figure aggregates any fabric into a bounded number of readable marks."""

import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

import fabric
from fabric.plot import topology
from fabric.strategies import TopologyChange, fabrics, topology_changes
from fabric.units import Gbps


def marker_traces(fig):
    return {trace.name: trace for trace in fig.data if trace.mode == "markers+text"}


def counts(trace):
    return [int(text.replace(",", "")) for text in trace.text]


def bundle_hover(fig):
    (trace,) = [trace for trace in fig.data if trace.name == "cable bundles (hover)"]
    return list(trace.hovertext)


@pytest.mark.parametrize(
    "G",
    [
        fabric.dgx_superpod(31),
        fabric.spectrum_x(70),
        fabric.fat_tree(24, rail_optimized=False, oversubscription=3),
        fabric.fat_tree(64, switch="tomahawk4", tiers=3),
        fabric.rail_only(40, switch="qm8700", nic_bandwidth=200 * Gbps),
        fabric.nvl72(2),
    ],
    ids=lambda G: G.graph["name"],
)
def test_markers_account_for_every_server_and_switch(G):
    markers = marker_traces(topology(G))
    hosts = {d["host"] for _, d in G.nodes(data=True) if d["kind"] == "gpu"}
    assert sum(counts(markers["servers"])) == len(hosts)
    tiers = Counter(d["tier"] for _, d in G.nodes(data=True) if d["kind"] == "switch")
    for tier, switches in tiers.items():
        (trace,) = [t for name, t in markers.items() if name.endswith(f"(tier {tier})")]
        assert sum(counts(trace)) == switches


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_any_drawn_fabric_and_change_plots(data):
    G = data.draw(fabrics(max_gpus=128), label="G")
    H = data.draw(topology_changes(G), label="change").apply(G)
    markers = marker_traces(topology(H))
    hosts = {d["host"] for _, d in H.nodes(data=True) if d["kind"] == "gpu"}
    assert sum(counts(markers["servers"])) == len(hosts)
    switches = sum(1 for _, kind in H.nodes(data="kind") if kind == "switch")
    assert sum(sum(counts(t)) for name, t in markers.items() if name != "servers") == switches


def test_size_does_not_multiply_marks():
    fig = topology(fabric.dgx_superpod(2048))  # 16,384 GPUs, 1,280 switches
    markers = sum(len(trace.x) for trace in marker_traces(fig).values())
    assert markers <= 8 * 8 + 3 * 8 + 1  # 8 columns x 8 rails of leaves; servers, spines, cores
    assert len(fig.data) <= 12
    assert len(bundle_hover(fig)) <= 200


def test_superpod_draws_scalable_units_and_rails():
    # 4 SUs of 32 (the last 31) servers, each with one leaf per rail, all on one spine group.
    markers = marker_traces(topology(fabric.dgx_superpod(127)))
    assert counts(markers["servers"]) == [32, 32, 32, 31]
    assert counts(markers["leaf (tier 1)"]) == [1] * 32
    assert counts(markers["spine (tier 2)"]) == [16]


def test_hover_gives_cables_and_bandwidth():
    hover = bundle_hover(topology(fabric.dgx_superpod(31)))
    # One SU: 31 servers to the rail-0 leaf, 31 x 400 Gb/s; the leaf to 4 spines with 32 cables.
    assert any(
        "servers 0-30 ↔ leaf · rail 0" in text and "31 cables between 31 node pairs" in text
        and "12,400 Gb/s (1.55 TB/s) each way" in text
        for text in hover
    )
    assert any("32 cables between 4 node pairs" in text and "12,800 Gb/s (1.6 TB/s)" in text for text in hover)


def test_asymmetric_bandwidth_shows_both_directions():
    G = fabric.dgx_superpod(31)
    for spine in ("spine0", "spine1", "spine2", "spine3"):
        G.edges["leaf0", spine]["bandwidth"] /= 2
    assert any("6,400 Gb/s (800 GB/s) up, 12,800 Gb/s (1.6 TB/s) down" in t for t in bundle_hover(topology(G)))


def test_failed_spine_shrinks_its_group():
    G = TopologyChange(failed_switches=("spine0",)).apply(fabric.dgx_superpod(31))
    assert counts(marker_traces(topology(G))["spine (tier 2)"]) == [3]


def test_group_by_attribute_and_callable():
    G = fabric.dgx_superpod(8)
    assert len(marker_traces(topology(G, group_by="host"))["servers"].x) == 8
    by_tier = topology(G, group_by=lambda node, data: data.get("tier"))
    assert [len(t.x) for t in marker_traces(by_tier).values()] == [1, 1, 1]


def test_bad_input_is_named():
    G = fabric.dgx_superpod(4)
    with pytest.raises(fabric.InvalidSpec, match="group_by=3 must be None, an attribute name or a callable"):
        topology(G, group_by=3)
    del G.edges["nic0", "leaf0"]["bandwidth"]
    with pytest.raises(fabric.InvalidSpec, match=r"edge \('nic0', 'leaf0'\) has no attribute 'bandwidth'"):
        topology(G)


def test_import_fabric_does_not_import_plotly():
    code = "import sys, fabric, fabric.plot; assert 'plotly' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
