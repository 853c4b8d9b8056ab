"""Builders against NVIDIA's published reference tables and hand-computed designs."""

from collections import Counter

import networkx as nx
import pytest

import fabric
from fabric.clos import design_clos
from fabric.units import Gbps


def switches_per_tier(G):
    return dict(sorted(Counter(d["tier"] for _, d in G.nodes(data=True) if d["kind"] == "switch").items()))


# DGX SuperPOD H100 reference architecture, compute fabric table (1-4 SU).
@pytest.mark.parametrize(
    "nodes, leaves, spines", [(31, 8, 4), (63, 16, 8), (95, 24, 16), (127, 32, 16)]
)
def test_h100_superpod_matches_nvidia_table(nodes, leaves, spines):
    assert switches_per_tier(fabric.dgx_superpod(nodes, gpu="H100")) == {1: leaves, 2: spines}


# DGX SuperPOD B200 reference architecture: 8 SU two tiers; 16 SU three tiers.
@pytest.mark.parametrize(
    "nodes, expected", [(256, {1: 64, 2: 32}), (512, {1: 128, 2: 128, 3: 64})]
)
def test_b200_superpod_matches_nvidia_table(nodes, expected):
    assert switches_per_tier(fabric.dgx_superpod(nodes, gpu="B200")) == expected


def test_superpod_is_rail_optimized():
    G = fabric.dgx_superpod(31, gpu="H100")
    for rank in range(0, 31 * 8, 37):
        (leaf,) = [v for v in G.successors(f"nic{rank}") if G.nodes[v]["kind"] == "switch"]
        assert G.nodes[leaf]["rail"] == G.nodes[f"gpu{rank}"]["local_rank"] == rank % 8


def test_rank_is_host_major():
    G = fabric.fat_tree(4, gpu="A100", nic_bandwidth=200 * Gbps, switch="qm8700")
    for node, d in G.nodes(data=True):
        if d["kind"] == "gpu":
            assert d["rank"] == d["host"] * 8 + d["local_rank"]
            assert node == f"gpu{d['rank']}"


def test_every_gpu_pair_is_connected():
    for G in (fabric.dgx_superpod(40), fabric.spectrum_x(70), fabric.rail_only(8), fabric.nvl72(2)):
        assert nx.is_strongly_connected(G)


def test_parallel_cables_are_one_edge_with_links():
    # 1 SU: each leaf has 32 uplinks spread over 4 spines -> 8 cables per leaf-spine pair.
    G = fabric.dgx_superpod(31, gpu="H100")
    edge = G.edges["leaf0", "spine0"]
    assert edge["links"] == 8
    assert edge["bandwidth"] == pytest.approx(8 * 400 * Gbps)


def test_oversubscription_above_the_leaf_is_exact():
    d = design_clos(hosts=100, rails=8, radix=64, rail_optimized=False, oversubscription=3)
    assert d.down[0] / d.up[0] == 3


def test_oversubscription_above_the_pod_is_exact():
    G = fabric.fat_tree(1024, switch="sn5600", pod_nodes=384, oversubscription=8, rail_optimized=False)
    pod_gpus = 384 * 8
    up = sum(
        G.edges[u, v]["links"]
        for u, v in G.edges
        if G.nodes[u].get("tier") == 2 and G.nodes[u].get("pod") == 0 and G.nodes[v].get("tier") == 3
    )
    assert pod_gpus / up == 8


def test_last_pod_may_be_partly_filled():
    # 8,192 GPUs on 3,072-GPU pods: two full pods and one two-thirds full.
    G = fabric.fat_tree(1024, switch="sn5600", pod_nodes=384, oversubscription=8, rail_optimized=False)
    pods = Counter(d["pod"] for _, d in G.nodes(data=True) if d.get("tier") == 1)
    assert sorted(pods.values()) == [32, 48, 48]


def _links_between(G, lower, upper, **where):
    """Cables from tier ``lower`` switches (matching ``where``) up to tier ``upper``."""
    return sum(G.edges[u, v]["links"] for u, v in G.edges
               if G.nodes[u].get("tier") == lower and G.nodes[v].get("tier") == upper
               and all(G.nodes[u].get(k) == x for k, x in where.items()))


def test_one_switch_per_tier_and_servers_per_leaf():
    # Two servers (16 GPUs) under each top-of-rack switch, deep-buffer chassis above: 8 pods
    # of 192 racks, each pod's spines 192/27 oversubscribed towards the aggregation tier.
    G = fabric.fat_tree(3072, switch=("tomahawk4", "arista-7808r3", "arista-7808r3"), rail_optimized=False,
                        servers_per_leaf=2, pod_nodes=384, oversubscription=192 / 27)
    models = Counter((d["tier"], d["model"]) for _, d in G.nodes(data=True) if d["kind"] == "switch")
    assert set(models) == {(1, "tomahawk4"), (2, "arista-7808r3"), (3, "arista-7808r3")}
    assert models[1, "tomahawk4"] == 3072 // 2
    # every ToR: 16 NIC ports down, as many cables up
    tor = next(n for n, d in G.nodes(data=True) if d.get("tier") == 1)
    down = sum(1 for u in G.predecessors(tor) if G.nodes[u]["kind"] == "nic")
    up = sum(G.edges[tor, v]["links"] for v in G.successors(tor) if G.nodes[v].get("tier") == 2)
    assert down == up == 16
    # full bisection inside a pod, 192/27 above it, measured on the graph
    assert _links_between(G, 1, 2, pod=0) == 384 * 8
    assert _links_between(G, 1, 2, pod=0) / _links_between(G, 2, 3, pod=0) == pytest.approx(192 / 27)
    # each cable's latency includes the forwarding of the switch it enters
    spine = next(v for v in G.successors(tor) if G.nodes[v].get("tier") == 2)
    assert G.edges[tor, spine]["latency"] > G.edges[spine, tor]["latency"]
    assert fabric.validate(G) == []


def test_a_switch_per_tier_fixes_the_tiers():
    G = fabric.fat_tree(8, switch=["tomahawk5", "tomahawk5", "tomahawk6"])
    assert set(switches_per_tier(G)) == {1, 2, 3}
    with pytest.raises(fabric.InvalidSpec, match=r"tiers=2 differs from the 3 tiers of radix"):
        fabric.fat_tree(8, switch=["tomahawk5", "tomahawk5", "tomahawk6"], tiers=2)


def test_tiers_none_picks_the_fewest():
    assert max(switches_per_tier(fabric.fat_tree(8, switch="tomahawk4", rail_optimized=False))) == 1
    assert max(switches_per_tier(fabric.fat_tree(8, switch="tomahawk4"))) == 2
    assert max(switches_per_tier(fabric.dgx_superpod(256))) == 2
    assert max(switches_per_tier(fabric.dgx_superpod(257))) == 3


def test_breakout_splits_faster_ports():
    G = fabric.spectrum_x(1024)  # 128 x 400G from 64 x 800G: 64 servers per leaf group
    assert switches_per_tier(G) == {1: 128, 2: 64}


def test_rail_only_has_no_spine_between_rails():
    G = fabric.rail_only(32)
    for u, v in G.edges:
        if G.nodes[u]["kind"] == "switch" and G.nodes[v]["kind"] == "switch":
            assert G.nodes[u]["rail"] == G.nodes[v]["rail"]


def test_nvl72_domain_spans_the_rack():
    G = fabric.nvl72(2)
    assert G.nodes["gpu71"]["domain"] == 0 and G.nodes["gpu72"]["domain"] == 1
    assert G.has_edge("gpu0", "nvswitch0") and G.has_edge("nvswitch0", "gpu71")


def test_a_nic_speed_no_catalog_part_has_is_built_at_that_speed():
    G = fabric.fat_tree(16, gpu="A100", nic_bandwidth=100 * Gbps, switch="qm8700", transport="infiniband",
                        routing="adaptive")
    nic_links = [d["bandwidth"] for u, v, d in G.edges(data=True)
                 if G.nodes[u]["kind"] == "nic" and G.nodes[v]["kind"] == "switch"]
    assert len(nic_links) == 128 and set(nic_links) == {100 * Gbps}
    assert "cx6 at 100 Gb/s" in G.graph["name"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fabric.fat_tree(0), "nodes=0 must be >= 1"),
        (lambda: fabric.fat_tree(4, nic_bandwidth=1600 * Gbps), "faster than every ethernet NIC"),
        (lambda: fabric.fat_tree(4, gpu="Z100"), "gpu='Z100' is not known"),
        (lambda: fabric.fat_tree(4, switch="sw"), "switch='sw' is not known"),
        (lambda: fabric.fat_tree(4, oversubscription=0.5), "oversubscription=0.5 must be >= 1"),
        (lambda: fabric.fat_tree(4, nic_bandwidth=800 * Gbps), "cannot run 800 Gb/s"),
        (lambda: fabric.fat_tree(4, nic_bandwidth=-1), "nic_bandwidth=-1 must be > 0"),
        (lambda: fabric.fat_tree(4, routing="ospf"), "routing='ospf' must be one of"),
        (lambda: fabric.fat_tree(4, qps=0), "qps=0 must be >= 1"),
        (lambda: fabric.fat_tree(4, tiers=1), "tiers=1 must be >= 2 with rail_optimized=True"),
        (lambda: fabric.fat_tree(300, switch="qm9700", tiers=2), "need more than tiers=2"),
        (lambda: fabric.fat_tree(64, pod_nodes=32, tiers=2), "tiers=2 must be >= 3"),
        (lambda: fabric.fat_tree(4, switch="qm9700", transport="ethernet"), "does not match switch"),
        (lambda: fabric.fat_tree(2.5), "nodes=2.5 must be an integer"),
        (
            lambda: fabric.fat_tree(2048, switch="tomahawk4", pod_nodes=4096 // 8 * 4),
            "pod_nodes=2048 is larger than 64-port spines can connect",
        ),
        (
            lambda: fabric.fat_tree(1024, switch="sn5600", pod_nodes=384, oversubscription=7, rail_optimized=False),
            "oversubscription=7 cannot be realised",
        ),
        (lambda: fabric.dgx_superpod(4, gpu="GB200"), "gpu='GB200' is not known"),
        (lambda: fabric.fat_tree(4, switch=()), "switch=() must name at least one switch"),
        (lambda: fabric.fat_tree(4, switch=("tomahawk4", "qm9700")), "does not match switch='qm9700'"),
        (lambda: fabric.fat_tree(4, servers_per_leaf=0), "servers_per_leaf=0 must be >= 1"),
        (
            lambda: fabric.fat_tree(64, rail_optimized=False, servers_per_leaf=5),
            "servers_per_leaf=5 (40 NIC ports) and their uplinks at 1:1 do not fit 64-port leaves in whole "
            "cables; at most 4 servers fit",
        ),
        (
            lambda: fabric.fat_tree(3072, switch=("tomahawk4", "arista-7808r3", "arista-7808r3"),
                                    rail_optimized=False, servers_per_leaf=2, pod_nodes=384, oversubscription=7),
            "oversubscription=7 cannot be realised in whole cables above a pod of 192 leaves with 16 uplinks each "
            "on 288-port spines; exact ratios nearby: 6.85714, 7.11111",
        ),
    ],
)
def test_bad_input_names_field_bound_and_value(call, message):
    with pytest.raises(fabric.FabricError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@pytest.mark.parametrize("build", [
    lambda: fabric.dgx_superpod(40),
    lambda: fabric.nvl72(3),
    lambda: fabric.fat_tree(96, switch="tomahawk5", transport="ethernet", planes=2, dual_tor=True),
    lambda: fabric.rail_only(5),
])
def test_bulk_insertion_makes_the_graph_networkx_makes(build, monkeypatch):
    from fabric import clos, server

    fast = build()
    for module in (clos, server):
        monkeypatch.setattr(module, "add_nodes", lambda G, nodes: G.add_nodes_from(nodes))
        monkeypatch.setattr(module, "add_edges", lambda G, edges: G.add_edges_from(edges))
    slow = build()
    assert list(fast.nodes(data=True)) == list(slow.nodes(data=True))
    assert list(fast.edges(data=True)) == list(slow.edges(data=True))
    assert all(list(fast.pred[node].items()) == list(slow.pred[node].items()) for node in slow)
    assert nx.utils.graphs_equal(fast, slow)
    u, v = next(iter(fast.edges))
    fast.edges[u, v]["links"] = 7  # every edge keeps a dict of its own
    assert sum(links == 7 for _, _, links in fast.edges(data="links")) == 1
