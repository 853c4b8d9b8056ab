"""Metrics against values computed by hand from the reference designs."""

import dataclasses

import networkx as nx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fabric
from fabric import strategies as fst
from fabric.catalog import GPUS, NICS, OPTICS, SWITCHES
from fabric.materials import bill_of_materials
from fabric.metrics import bisection_bandwidth, hop_diameter, summary
from fabric.units import Gbps

# Line rates the builders use: ConnectX-7 / BlueField-3 NDR-400G, ConnectX-6 HDR-200G.
NDR = 400 * Gbps
HDR = 200 * Gbps


# ----------------------------------------------------------------------------- bisection


@pytest.mark.parametrize(
    "build, hosts_per_half, rate",
    [
        (lambda: fabric.dgx_superpod(128, gpu="H100"), 64, NDR),
        (lambda: fabric.dgx_superpod(127, gpu="H100"), 63, NDR),  # odd: the first half has 63 hosts
        (lambda: fabric.dgx_superpod(3, gpu="H100"), 1, NDR),
        (lambda: fabric.dgx_superpod(512, gpu="B200"), 256, NDR),  # three tiers
        (lambda: fabric.dgx_superpod(40, gpu="A100"), 20, HDR),
        (lambda: fabric.spectrum_x(128), 64, NDR),
        (lambda: fabric.fat_tree(64, switch="tomahawk4", rail_optimized=False), 32, NDR),  # ToR
        (lambda: fabric.fat_tree(64, switch="tomahawk4", rail_optimized=True), 32, NDR),
        (lambda: fabric.rail_only(16), 8, NDR),  # cross-rail traffic turns on NVLink
    ],
)
def test_non_blocking_bisection_is_half_the_gpus_at_nic_rate(build, hosts_per_half, rate):
    assert bisection_bandwidth(build()) == hosts_per_half * 8 * rate


@pytest.mark.parametrize(
    "build, gpus_per_half",
    [
        # 64-port ToR split 48 down / 16 up: 4 leaves of 6 servers, 2 leaves per half.
        (lambda: fabric.fat_tree(24, switch="tomahawk4", oversubscription=3, rail_optimized=False), 12 * 8),
        # Rail-optimized: 2 leaf groups of 48 servers, one per half.
        (lambda: fabric.fat_tree(96, switch="tomahawk4", oversubscription=3), 48 * 8),
        # 3:1 above pods of 24 servers; 2 and 4 full pods.
        (lambda: fabric.fat_tree(48, switch="tomahawk4", pod_nodes=24, oversubscription=3, rail_optimized=False),
         24 * 8),
        (lambda: fabric.fat_tree(96, switch="tomahawk4", pod_nodes=24, oversubscription=3, rail_optimized=False),
         48 * 8),
    ],
)
def test_oversubscription_divides_the_bisection_exactly(build, gpus_per_half):
    assert bisection_bandwidth(build()) == pytest.approx(gpus_per_half * NDR / 3, rel=1e-12)


def test_removing_a_spine_lowers_the_bisection():
    # 2 SUs: 16 leaves, each with 4 cables to each of 8 spines. Without spine0 each leaf of
    # the first half keeps 28 of 32 uplinks: 8 leaves x 28 cables cross instead of 256 GPUs.
    G = fabric.dgx_superpod(64)
    before = bisection_bandwidth(G)
    G.remove_node("spine0")
    after = bisection_bandwidth(G, samples=3)
    assert before == 256 * NDR
    assert after == 8 * 28 * NDR < before


@pytest.mark.parametrize("edge", [("nic0", "leaf0"), ("leaf0", "nic0")])
def test_one_way_cable_loss_counts_in_either_direction(edge):
    # gpu0 can still reach another NIC over NVLink, but the first half has one NIC less
    # to send with (or receive with): 15 of its 16 GPUs' worth crosses.
    G = fabric.dgx_superpod(4)
    G.remove_edge(*edge)
    assert bisection_bandwidth(G) == 15 * NDR


def test_random_splits_only_lower_the_result():
    G = fabric.dgx_superpod(40)
    G.remove_edge("leaf3", "spine1")
    assert bisection_bandwidth(G, samples=4, seed=1) <= bisection_bandwidth(G)
    assert bisection_bandwidth(G, samples=4, seed=1) == bisection_bandwidth(G, samples=4, seed=1)


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_failures_and_degradations_never_raise_the_bisection(data):
    G = data.draw(fst.fabrics(max_gpus=128), label="G")
    assume(len({h for _, h in G.nodes(data="host") if h is not None}) >= 2)
    change = data.draw(fst.topology_changes(G), label="change")
    assert bisection_bandwidth(change.apply(G)) <= bisection_bandwidth(G)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda G: bisection_bandwidth(fabric.fat_tree(1, rail_optimized=False)), "hosts=1 must be >= 2"),
        (lambda G: bisection_bandwidth(G, samples=-1), "samples=-1 must be >= 0"),
        (lambda G: bisection_bandwidth(G, samples=1.5), "samples=1.5 must be an integer"),
    ],
)
def test_bisection_rejects_bad_input(call, message):
    with pytest.raises(fabric.InvalidSpec, match=message):
        call(fabric.dgx_superpod(4))


def test_bisection_names_a_bad_edge():
    G = fabric.dgx_superpod(4)
    del G.edges["leaf0", "spine1"]["bandwidth"]
    with pytest.raises(fabric.InvalidSpec, match=r"edge \('leaf0', 'spine1'\) has no attribute 'bandwidth'"):
        bisection_bandwidth(G)
    G.edges["leaf0", "spine1"]["bandwidth"] = -1.0
    with pytest.raises(fabric.InvalidSpec, match=r"bandwidth of edge \('leaf0', 'spine1'\)=-1.0 must be >= 0"):
        bisection_bandwidth(G)
    G.edges["leaf0", "spine1"]["bandwidth"] = "fast"
    with pytest.raises(fabric.InvalidSpec, match=r"bandwidth of edge \('leaf0', 'spine1'\)='fast' must be a number"):
        bisection_bandwidth(G)
    G.edges["leaf0", "spine1"]["bandwidth"] = 1e30
    with pytest.raises(fabric.InvalidSpec, match=r"bandwidth=1e\+30 of edge \('leaf0', 'spine1'\) must be <="):
        bisection_bandwidth(G)


# ----------------------------------------------------------------------------- hop diameter


@pytest.mark.parametrize(
    "build, hops",
    [
        (lambda: fabric.fat_tree(1, rail_optimized=False), 2),  # GPU, NVSwitch, GPU
        (lambda: fabric.fat_tree(8, rail_optimized=False), 4),  # one ToR: GPU, NIC, leaf, NIC, GPU
        (lambda: fabric.dgx_superpod(64), 6),  # through a spine
        (lambda: fabric.dgx_superpod(512, gpu="B200"), 8),  # through a core switch
        (lambda: fabric.rail_only(8), 6),  # change rail over NVLink, then one rail switch
    ],
)
def test_hop_diameter_by_hand(build, hops):
    assert hop_diameter(build()) == hops


def _brute_force_diameter(G):
    gpus = [n for n, k in G.nodes(data="kind") if k == "gpu"]
    longest = 0
    for g in gpus:
        distance = nx.single_source_shortest_path_length(G, g)
        longest = max(longest, max(distance[h] for h in gpus))
    return longest


def _failed(G, *edges):
    G.remove_edges_from(edges)
    return G


@pytest.mark.parametrize(
    "build",
    [
        lambda: fabric.dgx_superpod(5),  # a partly filled scalable unit
        lambda: fabric.nvl72(2),
        lambda: fabric.rail_only(3),
        lambda: fabric.fat_tree(48, switch="tomahawk4", pod_nodes=24, oversubscription=3, rail_optimized=False),
        lambda: _failed(fabric.dgx_superpod(40), ("leaf0", "spine0"), ("spine0", "leaf0"), ("leaf9", "spine2")),
        lambda: _failed(fabric.dgx_superpod(6), ("leaf0", "nic0")),  # gpu0 now receives over NVLink
    ],
)
def test_hop_diameter_matches_bfs_from_every_gpu(build):
    G = build()
    assert hop_diameter(G) == _brute_force_diameter(G)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_hop_diameter_matches_bfs_after_random_changes(data):
    G = data.draw(fst.fabrics(max_gpus=64), label="G")
    H = data.draw(fst.topology_changes(G), label="change").apply(G)
    component = {node: i for i, nodes in enumerate(nx.strongly_connected_components(H)) for node in nodes}
    if len({component[g] for g, kind in H.nodes(data="kind") if kind == "gpu"}) == 1:
        assert hop_diameter(H) == _brute_force_diameter(H)
    else:
        with pytest.raises(fabric.NoRoute):
            hop_diameter(H)


def test_hop_diameter_names_unreachable_gpus():
    G = fabric.dgx_superpod(2)
    G.remove_edges_from([("nvswitch0", "gpu3"), ("nic3", "gpu3")])
    with pytest.raises(fabric.NoRoute, match=r"cannot reach GPU 'gpu3'"):
        hop_diameter(G)


# ----------------------------------------------------------------------------- bill of materials


def test_bill_of_materials_of_one_h100_scalable_unit():
    # 31 DGX H100: 8 leaves + 4 spines (NVIDIA table); 248 NIC cables; 8 leaves x 32 uplinks.
    bom = bill_of_materials(fabric.dgx_superpod(31, gpu="H100"))
    assert bom.switches == {1: {"qm9700": 8}, 2: {"qm9700": 4}}
    assert bom.cables == {1: 248, 2: 256}
    assert bom.optics == {"osfp-400g": 2 * (248 + 256)}
    assert bom.nics == {"cx7": 248}
    assert bom.switch_watts == pytest.approx(12 * SWITCHES["qm9700"].power)
    assert bom.optic_watts == pytest.approx(2 * (248 + 256) * OPTICS["osfp-400g"].power)
    assert bom.nic_watts == pytest.approx(248 * NICS["cx7"].power)
    assert bom.network_watts == pytest.approx(bom.switch_watts + bom.optic_watts + bom.nic_watts)
    assert bom.gpu_watts == pytest.approx(248 * GPUS["H100"].power)


def test_bill_of_materials_uses_200g_optics_on_hdr():
    # 20 DGX A100 on QM8700 (40 x HDR): 8 leaves of 20 NICs with 20 uplinks each.
    bom = bill_of_materials(fabric.dgx_superpod(20, gpu="A100"))
    assert bom.cables == {1: 160, 2: 160}
    assert bom.optics == {"qsfp56-200g": 640}
    assert bom.nics == {"cx6": 160}


def test_bill_of_materials_leaves_nvlink_out():
    # One NVL72 rack: 72 NIC cables; 4 rail leaves with 32 uplinks each; no NVLink cables.
    bom = bill_of_materials(fabric.nvl72(1))
    assert bom.cables == {1: 72, 2: 128}
    assert bom.gpu_watts == pytest.approx(72 * GPUS["GB200"].power)


def test_bill_of_materials_follows_edits():
    G = fabric.dgx_superpod(31)
    G.remove_node("spine0")  # 8 leaves x 8 cables
    for u, v in (("leaf1", "spine1"), ("spine1", "leaf1")):
        G.edges[u, v]["bandwidth"] /= 2  # 8 cables now run at 200G
    bom = bill_of_materials(G)
    assert bom.switches == {1: {"qm9700": 8}, 2: {"qm9700": 3}}
    assert bom.cables == {1: 248, 2: 256 - 64}
    assert bom.optics == {"osfp-400g": 2 * (248 + 256 - 64 - 8), "qsfp56-200g": 2 * 8}


def test_bill_of_materials_refuses_a_cable_no_optic_carries():
    G = fabric.dgx_superpod(31)
    G.edges["leaf0", "spine0"]["bandwidth"] *= 8  # 3.2 Tb/s per cable
    with pytest.raises(fabric.InvalidSpec, match="cable speed=3200 Gb/s must be <= 1600 Gb/s"):
        bill_of_materials(G)


# ----------------------------------------------------------------------------- summary


def test_summary_of_four_scalable_units():
    s = summary(fabric.dgx_superpod(128, gpu="H100"))
    assert (s.gpus, s.hosts, s.gpu) == (1024, 128, "H100")
    assert s.switches == {1: 32, 2: 16}
    assert (s.transport, s.routing) == ("infiniband", "adaptive")
    assert s.bisection_bandwidth == 512 * NDR
    assert s.bisection_per_gpu == NDR
    assert s.hop_diameter == 6
    assert s.network_watts == bill_of_materials(fabric.dgx_superpod(128, gpu="H100")).network_watts
    text = str(s)
    for label in ("GPUs", "bisection bandwidth", "bisection per GPU", "hop diameter", "network power"):
        assert label in text
    assert "25.6 TB/s (204.8 Tb/s)" in text
    assert s._repr_html_().startswith("<table>")
    assert s.to_dict()["bisection_bandwidth"] == 512 * NDR
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.gpus = 1


def test_summary_of_one_server_has_no_bisection():
    s = summary(fabric.fat_tree(1, rail_optimized=False))
    assert s.bisection_bandwidth is None and s.hop_diameter == 2
    assert "n/a" in str(s)


def test_results_render(capsys):
    from fabric.__main__ import main

    main()
    out = capsys.readouterr().out
    assert "Fabric summary" in out and "Bill of materials" in out
    bom = bill_of_materials(fabric.dgx_superpod(4))
    assert set(bom.to_dict()) == {f.name for f in dataclasses.fields(bom)}
    assert all(tag in bom._repr_html_() for tag in ("<table>", "<caption>Bill of materials</caption>"))


def test_every_builder_is_measurable():
    for G in (fabric.spectrum_x(70), fabric.nvl72(2), fabric.rail_only(8)):
        s = summary(G)
        assert s.bisection_bandwidth > 0 and s.network_watts > 0
        assert min(s.switches) == 1


# ----------------------------------------------------------------------------- fast reads


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_cables_read_as_arrays_match_the_edge_by_edge_count(data):
    from fabric.graph_arrays import GraphArrays
    from fabric.materials import _cables_by_arrays, _cables_by_edges

    G = data.draw(fst.fabrics(max_gpus=64), label="G")
    H = data.draw(fst.topology_changes(G), label="change").apply(G)
    cables = [(u, v) for u, v, medium in H.edges(data="medium") if medium in ("infiniband", "ethernet")]
    for u, v in data.draw(st.lists(st.sampled_from(cables), max_size=4) if cables else st.just([]),
                          label="one direction faster"):
        H.edges[u, v].update(links=H.edges[u, v]["links"] + 1, bandwidth=H.edges[u, v]["bandwidth"] * 3)
    tiers = {node: tier for node, tier in H.nodes(data="tier") if H.nodes[node]["kind"] == "switch"}
    assert _cables_by_arrays(tiers, GraphArrays(H)) == _cables_by_edges(H, tiers)


def test_cables_fall_back_to_the_edge_checks_where_a_value_is_not_exact():
    G = fabric.dgx_superpod(2)
    G.edges["leaf0", "spine0"]["links"] = 1.0  # integral, but not an int: named, not rounded
    with pytest.raises(fabric.InvalidSpec, match=r"links of edge \('leaf0', 'spine0'\)=1.0 must be an integer"):
        bill_of_materials(G)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_gpu_order_read_as_arrays_matches_the_node_loop(data):
    from fabric import schema

    G = data.draw(fst.fabrics(max_gpus=64), label="G")
    H = data.draw(fst.topology_changes(G), label="change").apply(G)
    by_rank = sorted((node for node, kind in H.nodes(data="kind") if kind == "gpu"), key=lambda n: H.nodes[n]["rank"])
    assert schema._gpu_nodes_by_arrays(H) == by_rank
