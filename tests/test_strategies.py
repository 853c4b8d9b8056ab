"""The public hypothesis strategies draw valid fabrics and well-behaved topology changes."""

import networkx as nx
import pytest
from hypothesis import given, settings, strategies as st

import fabric
from fabric import strategies as fst
from fabric.schema import gpu_nodes
from fabric.validate import validate

# Each example builds a fabric of up to a few hundred GPUs (~15 ms); keep the file fast.
FAST = settings(max_examples=40, deadline=None)


def snapshot(G):
    """Everything a change could touch, as plain values."""
    return (
        dict(G.graph),
        {n: dict(d) for n, d in G.nodes(data=True)},
        {(u, v): dict(d) for u, v, d in G.edges(data=True)},
    )


@FAST
@given(fst.fabrics())
def test_drawn_fabrics_follow_the_schema(G):
    # validate() checks attributes, values (bandwidth > 0, latency >= 0, media, links >= 1)
    # and ranks 0..n-1; every node, not only every GPU, must be reachable too.
    assert validate(G) == []
    assert nx.is_strongly_connected(G)


@FAST
@given(st.data())
def test_changed_fabrics_still_follow_the_schema(data):
    G = data.draw(fst.fabrics(max_gpus=128), label="G")
    H = data.draw(fst.topology_changes(G), label="change").apply(G)
    # Failures may cut GPUs off (documented); nothing else may break.
    assert [p for p in validate(H) if not p.startswith("GPUs not mutually reachable")] == []


@FAST
@given(st.data())
def test_fabrics_respect_their_restrictions(data):
    builders = data.draw(st.lists(st.sampled_from(fst.BUILDERS), min_size=1, unique=True), label="builders")
    max_gpus = data.draw(st.integers(72 if builders == ["nvl72"] else 8, 200), label="max_gpus")
    G = data.draw(fst.fabrics(builders=builders, max_gpus=max_gpus), label="G")
    assert G.graph["builder"] in builders
    assert len(gpu_nodes(G)) <= max_gpus


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(builders=("mesh",)), "builders='mesh' must be one of"),
        (dict(builders=()), "builders=() must name at least one"),
        (dict(max_gpus=0), "max_gpus=0 must be >= 1"),
        (dict(builders=("nvl72",), max_gpus=64), "max_gpus=64 must be >= 72"),
    ],
)
def test_fabrics_rejects_bad_restrictions(kwargs, message):
    with pytest.raises(fabric.InvalidSpec, match=message.replace("(", r"\(").replace(")", r"\)")):
        fst.fabrics(**kwargs)


@FAST
@given(st.data())
def test_changes_never_mutate_their_input(data):
    G = data.draw(fst.fabrics(max_gpus=128), label="G")
    change = data.draw(fst.topology_changes(G), label="change")
    before = snapshot(G)
    H = change.apply(G)
    assert snapshot(G) == before
    assert H is not G


@FAST
@given(st.data())
def test_a_failed_switch_is_gone_with_its_edges(data):
    G = data.draw(fst.fabrics(max_gpus=128), label="G")
    change = data.draw(fst.failed_switches(G, max_count=2), label="change")
    H = change.apply(G)
    for switch in change.failed_switches:
        assert G.nodes[switch]["kind"] == "switch"
        assert switch not in H
    assert H.number_of_nodes() == G.number_of_nodes() - len(change.failed_switches)


@FAST
@given(st.data())
def test_failed_links_remove_their_share_of_cables(data):
    G = data.draw(fst.fabrics(max_gpus=128), label="G")
    change = data.draw(fst.failed_links(G), label="change")
    H = change.apply(G)
    failed = {}
    for pair in change.failed_links:
        failed[frozenset(pair)] = failed.get(frozenset(pair), 0) + 1
    for pair, count in failed.items():
        u, v = sorted(pair)
        for a, b in ((u, v), (v, u)):
            links = G.edges[a, b]["links"]
            if count == links:
                assert not H.has_edge(a, b)
            else:
                assert H.edges[a, b]["links"] == links - count
                assert H.edges[a, b]["bandwidth"] == pytest.approx(G.edges[a, b]["bandwidth"] * (links - count) / links)


@FAST
@given(st.data())
def test_degraded_links_are_slower_both_ways(data):
    G = data.draw(fst.fabrics(max_gpus=128), label="G")
    change = data.draw(fst.degraded_links(G), label="change")
    H = change.apply(G)
    for u, v, factor in change.degraded_links:
        assert 0 < factor <= 1
        for a, b in ((u, v), (v, u)):
            assert H.edges[a, b]["bandwidth"] == pytest.approx(G.edges[a, b]["bandwidth"] * factor)
            assert H.edges[a, b]["bandwidth"] <= G.edges[a, b]["bandwidth"]
    untouched = {frozenset((u, v)) for u, v, _ in change.degraded_links}
    for u, v, d in H.edges(data=True):
        if frozenset((u, v)) not in untouched:
            assert d == G.edges[u, v]


@FAST
@given(st.data())
def test_repr_replays_the_change(data):
    G = data.draw(fst.fabrics(max_gpus=64), label="G")
    change = data.draw(fst.topology_changes(G), label="change")
    assert eval(repr(change), {"TopologyChange": fst.TopologyChange}) == change
    assert str(change) != "no change"


def test_str_reads_as_the_failure():
    change = fst.TopologyChange(
        failed_links=[("nic0", "leaf0"), ("leaf0", "spine0"), ("spine0", "leaf0")],
        failed_switches=["spine1"],
        degraded_links=[("leaf1", "spine0", 0.25)],
    )
    assert str(change) == (
        "degrade leaf1<->spine0 to 0.25x bandwidth; fail 1 cable leaf0<->nic0; "
        "fail 2 cables leaf0<->spine0; fail switch spine1"
    )
    assert str(fst.TopologyChange()) == "no change"


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(failed_switches=("spine9",)), "node 'spine9' is not in the graph"),
        (dict(failed_switches=("gpu0",)), "failed_switches names 'gpu0', whose kind='gpu'"),
        (dict(failed_links=(("nic0", "spine0"),)), r"edge \('nic0', 'spine0'\) is not in the graph"),
        (dict(failed_links=(("nic0", "leaf0"),) * 2), "fails 2 cables of .* which has links=1"),
        (dict(degraded_links=(("nic0", "spine0", 0.5),)), r"edge \('nic0', 'spine0'\) is not in the graph"),
    ],
)
def test_apply_names_what_is_missing(change, message):
    with pytest.raises(fabric.InvalidSpec, match=message):
        fst.TopologyChange(**change).apply(fabric.dgx_superpod(4))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(degraded_links=(("a", "b", 0),)), "factor of .* must be > 0"),
        (dict(degraded_links=(("a", "b", 2.0),)), "factor=2.0 of .* must be <= 1"),
        (dict(degraded_links=(("a", "b"),)), "must be a \\(u, v, factor\\) triple"),
        (dict(failed_links=(("a",),)), "must be a \\(u, v\\) pair"),
    ],
)
def test_bad_changes_fail_at_construction(change, message):
    with pytest.raises(fabric.InvalidSpec, match=message):
        fst.TopologyChange(**change)


def test_change_strategies_reject_bad_arguments():
    G = fabric.dgx_superpod(4)
    with pytest.raises(fabric.InvalidSpec, match="max_count=0 must be >= 1"):
        fst.failed_links(G, max_count=0)
    with pytest.raises(fabric.InvalidSpec, match="min_factor=2 must be <= 1"):
        fst.degraded_links(G, min_factor=2)
    with pytest.raises(fabric.InvalidSpec, match=r"tiers=\(3,\) selects no switch of G \(its tiers: 1, 2\)"):
        fst.failed_switches(G, tiers=(3,))
