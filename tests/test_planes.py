"""NICs on several switches: multi-plane fabrics and dual top-of-rack, built and routed."""

from collections import Counter

import networkx as nx
import numpy as np
import pytest

import collectives
import fabric
from fabric.compiled import compile_fabric
from fabric.units import Gbps


def leaves_of(G, nic):
    return sorted(v for v in G.successors(nic) if G.nodes[v]["kind"] == "switch")


def switches(G, **attrs):
    return [n for n, d in G.nodes(data=True) if d["kind"] == "switch" and all(d.get(k) == v for k, v in attrs.items())]


def test_each_plane_is_a_whole_clos_of_its_own_meeting_only_at_the_nics():
    G = fabric.fat_tree(64, planes=2, oversubscription=3.0, rail_optimized=False)
    # one plane at the port speed (200G) is the single-plane fabric of 200G NICs
    alone = fabric.fat_tree(64, nic_bandwidth=200 * Gbps, oversubscription=3.0, rail_optimized=False)
    per_plane = Counter(d["tier"] for _, d in alone.nodes(data=True) if d["kind"] == "switch")
    for p in (0, 1):
        assert Counter(G.nodes[n]["tier"] for n in switches(G, plane=p)) == per_plane
    crossing = [(u, v) for u, v in G.edges if G.nodes[u]["kind"] == G.nodes[v]["kind"] == "switch"
                and G.nodes[u]["plane"] != G.nodes[v]["plane"]]
    assert crossing == []
    for nic in (n for n, d in G.nodes(data=True) if d["kind"] == "nic"):
        ports = leaves_of(G, nic)
        assert sorted(G.nodes[v]["plane"] for v in ports) == [0, 1]
        assert all(G.edges[nic, v]["bandwidth"] == 200 * Gbps for v in ports)


def test_dual_tor_puts_each_nic_on_two_tors_that_serve_the_same_servers_and_share_spines():
    G = fabric.fat_tree(32, dual_tor=True, rail_optimized=False, servers_per_leaf=3, oversubscription=3.0)
    served = {}
    for nic in (n for n, d in G.nodes(data=True) if d["kind"] == "nic"):
        a, b = leaves_of(G, nic)
        served.setdefault(a, set()).add(G.nodes[nic]["host"])
        served.setdefault(b, set()).add(G.nodes[nic]["host"])
        assert G.edges[nic, a]["bandwidth"] == G.edges[nic, b]["bandwidth"] == 200 * Gbps
    # ToRs come in pairs over the same 3 servers (the last pair over the 2 left)
    groups = Counter(frozenset(hosts) for hosts in served.values())
    assert set(groups.values()) == {2} and sorted(Counter(map(len, groups)).items()) == [(2, 1), (3, 10)]
    assert len(served) == 2 * 11
    # each ToR: 3 servers x 8 NIC ports down, a third of that up (3:1)
    assert all(G.edges[leaf, spine]["links"] * len(spines_of) == 8 for leaf in served
               for spines_of in [[v for v in G.successors(leaf) if G.nodes[v].get("tier") == 2]] for spine in spines_of)
    spines = {leaf: {v for v in G.successors(leaf) if G.nodes[v].get("tier") == 2} for leaf in served}
    assert all(s == spines[next(iter(spines))] for s in spines.values())  # one plane: every ToR on every spine
    assert all("plane" not in G.nodes[n] for n in served)


@pytest.mark.parametrize("options", [dict(planes=2), dict(planes=4), dict(dual_tor=True),
                                     dict(planes=2, dual_tor=True)])
def test_without_contention_the_ports_add_up_to_the_nic_and_the_levels_agree(options):
    one = fabric.fat_tree(16, routing="adaptive")
    G = fabric.fat_tree(16, routing="adaptive", **options)
    for collective, size in ((collectives.all_reduce, 2**28), (collectives.all_to_all, 2**24)):
        flow = collective(G, size, level="flow").time
        assert flow == pytest.approx(collective(G, size, level="analytic").time, rel=1e-9)
        assert flow == pytest.approx(collective(one, size, level="flow").time, rel=1e-9)
    assert fabric.flow_rates(G, [0], [8]) / Gbps == pytest.approx([400.0])


@pytest.mark.parametrize("routing", ["adaptive", "ecmp"])
@pytest.mark.parametrize("options", [dict(planes=2), dict(dual_tor=True, rail_optimized=False)])
def test_a_failed_tor_halves_its_nics_instead_of_cutting_them_off(options, routing):
    G = fabric.fat_tree(16, routing=routing, qps=4, **options)
    tor = leaves_of(G, "nic0")[0]
    G.remove_node(tor)
    # gpu0 keeps its other port; gpu8's traffic from gpu0 arrives on the port they share
    assert fabric.flow_rates(G, [0], [8]) / Gbps == pytest.approx([200.0])
    single = fabric.fat_tree(16, routing=routing, **{k: v for k, v in options.items() if k == "rail_optimized"})
    single.remove_node(leaves_of(single, "nic0")[0])
    with pytest.raises(fabric.NoRoute):
        fabric.flow_rates(single, [0], [8])


def test_a_training_step_survives_a_failed_tor_on_dual_tor_and_runs_slower():
    model = collectives.MODELS["llama3-8b"]
    plan = collectives.Parallelism(tp=8, dp=16, global_batch=128)
    G = fabric.fat_tree(16, dual_tor=True, rail_optimized=False, routing="adaptive")
    healthy = collectives.estimate_step(model, plan, G, level="flow").time
    G.remove_node(leaves_of(G, "nic0")[0])
    hurt = collectives.estimate_step(model, plan, G, level="flow").time
    assert np.isfinite(hurt) and hurt > healthy


def test_ecmp_queue_pairs_are_hashed_per_port():
    G = fabric.fat_tree(64, planes=2, routing="ecmp", qps=2, rail_optimized=False, oversubscription=2.0)
    C = compile_fabric(G)
    routes = fabric.routing.route(C, [0], [500], routing="ecmp", qps=2)
    assert len(routes.owner) == 4  # 2 ports x 2 queue pairs, all of flow 0
    assert (routes.owner == 0).all()


def test_saved_multi_plane_fabric_routes_the_same(tmp_path):
    G = fabric.fat_tree(16, planes=2, routing="ecmp", qps=2)
    fabric.save(G, tmp_path / "g.json")
    H = fabric.load(tmp_path / "g.json")
    assert np.array_equal(compile_fabric(H).port_leaf, compile_fabric(G).port_leaf)
    src, dst = np.arange(0, 64), (np.arange(0, 64) + 37) % 128
    assert np.array_equal(fabric.flow_rates(H, src, dst), fabric.flow_rates(G, src, dst))


def test_bill_of_materials_counts_a_cable_per_nic_port():
    G = fabric.fat_tree(16, planes=2)
    assert fabric.bill_of_materials(G).cables[1] == 2 * 128


def test_sharp_is_not_offered_on_multi_port_nics():
    G = fabric.fat_tree(16, switch="qm9700", transport="infiniband", planes=2, routing="adaptive")
    with pytest.raises(collectives.Unsupported, match="ports on separate switches"):
        collectives.all_reduce(G, 2**28, algorithm="sharp")


@pytest.mark.parametrize("options, message", [
    (dict(planes=0), "planes=0 must be >= 1"),
    (dict(planes=1.5), "planes=1.5"),
    (dict(dual_tor="yes"), "dual_tor='yes'"),
    (dict(dual_tor=True, planes=3), "dual_tor=True with planes=3"),
    (dict(dual_tor=True, tiers=3, pod_nodes=6, servers_per_leaf=4, rail_optimized=False),
     "pod_nodes=6 must be a multiple of 4 servers per top-of-rack pair"),
])
def test_bad_planes_and_dual_tor_name_the_field(options, message):
    with pytest.raises(fabric.InvalidSpec, match=message.replace("(", r"\(").replace(".", r"\.")):
        fabric.fat_tree(16, **options)


def test_a_nic_on_switches_of_one_plane_twice_or_with_and_without_planes_is_refused():
    G = fabric.fat_tree(16, planes=2)
    a, b = leaves_of(G, "nic0")
    G.nodes[b]["plane"] = G.nodes[a]["plane"]
    with pytest.raises(fabric.InvalidSpec, match="'nic0' has two ports on plane"):
        compile_fabric(G)
    del G.nodes[b]["plane"]
    with pytest.raises(fabric.InvalidSpec, match="with and without a plane"):
        compile_fabric(G)


def test_every_gpu_pair_is_connected_on_dual_tor():
    G = fabric.fat_tree(8, dual_tor=True, rail_optimized=False)
    assert nx.is_strongly_connected(G)
