"""The flow engine: routing, max-min fair rates, fluid completion times."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fabric
from fabric import strategies as fst
from fabric.errors import InvalidSpec, NoRoute
from fabric.compiled import compile_fabric
from fabric.flows import max_min_rates
from fabric.routing import class_matrix, route
from fabric.units import GBps, Gbps

B = 10 * GBps  # switch-to-switch link in the toy fabrics


def toy_fabric(switch_links, hosts_at, nic_bandwidth=100 * GBps):
    """GPUs with one NIC each, NIC i cabled to switch hosts_at[i]; switch_links {(a, b): bw}."""
    G = nx.DiGraph(
        gpu=fabric.GPUS["H100"], gpus_per_node=1, transport="ethernet", routing="adaptive", qps=1,
        name="toy", builder="test", params={},
    )

    def cable(u, v, bw, medium):
        for a, b in ((u, v), (v, u)):
            G.add_edge(a, b, bandwidth=bw, latency=1e-6, medium=medium, links=1)

    for s in {s for pair in switch_links for s in pair}:
        G.add_node(s, kind="switch", tier=1, model="tomahawk4")
    for (a, b), bw in switch_links.items():
        cable(a, b, bw, "ethernet")
    for rank, s in enumerate(hosts_at):
        G.add_node(f"gpu{rank}", kind="gpu", rank=rank, host=rank, local_rank=0, rail=0, domain=rank)
        G.add_node(f"nic{rank}", kind="nic", host=rank, rail=0, model="cx7")
        cable(f"gpu{rank}", f"nic{rank}", 1000 * GBps, "pcie")
        cable(f"nic{rank}", s, nic_bandwidth, "ethernet")
    return G


def materialized(routes):
    """Resources x variables coefficient matrix of a Routes, classes expanded."""
    A = routes.host.tocsc().astype(float)
    if routes.cls:
        member = np.flatnonzero(routes.class_of >= 0)
        extra = class_matrix(routes.cls, A.shape[0])[:, routes.class_of[member]]
        pad = np.zeros((A.shape[0], A.shape[1]))
        pad[:, member] = extra.toarray()
        A = A.toarray() + pad
    else:
        A = A.toarray()
    return A


def assert_max_min(routes, rates):
    """No resource over capacity; every variable crosses a saturated resource where it is maximal."""
    A = materialized(routes)
    load = A @ rates
    cap = routes.capacity
    assert (load <= cap * (1 + 1e-6)).all()
    saturated = load >= cap * (1 - 1e-6)
    for v in range(A.shape[1]):
        crossing = np.flatnonzero((A[:, v] > 0) & saturated)
        assert crossing.size, f"variable {v} crosses no saturated resource"
        ok = [rates[v] >= rates[A[r] > 0].max() * (1 - 1e-6) for r in crossing]
        assert any(ok), f"variable {v} is not maximal on any of its saturated resources"


def test_two_flows_share_one_link():
    G = toy_fabric({("s0", "s1"): B}, ["s0", "s0", "s1", "s1"])
    assert fabric.flow_rates(G, [0, 1], [2, 3]) == pytest.approx([B / 2, B / 2])


def test_parking_lot():
    # Long flow 0 -> 3 over three links; one short flow on each link. Middle link is 2B.
    G = toy_fabric(
        {("s0", "s1"): B, ("s1", "s2"): 2 * B, ("s2", "s3"): B},
        ["s0", "s3", "s0", "s1", "s1", "s2", "s2", "s3"],
    )
    rates = fabric.flow_rates(G, [0, 2, 4, 6], [1, 3, 5, 7])
    assert rates == pytest.approx([B / 2, B / 2, 1.5 * B, B / 2])


def test_flow_limited_by_its_nic():
    G = fabric.dgx_superpod(2)
    rate = fabric.flow_rates(G, [0], [8])[0]
    assert rate == pytest.approx(400 * Gbps)  # ConnectX-7, not PCIe Gen5 (64 GB/s) or NVLink


def test_nvlink_inside_a_server():
    G = fabric.dgx_superpod(1)
    assert fabric.flow_rates(G, [0], [1])[0] == pytest.approx(fabric.GPUS["H100"].nvlink_bandwidth)
    # Seven GPUs into one: they share its NVLink port.
    rates = fabric.flow_rates(G, [1, 2, 3, 4, 5, 6, 7], [0] * 7)
    assert rates == pytest.approx([450 * GBps / 7] * 7)


def test_pxn_crosses_nvlink_to_the_destination_rail():
    # Same scalable unit, different rails: NVLink to the GPU on the destination's rail,
    # then one leaf, as NCCL's PXN sends it.
    G = fabric.dgx_superpod(2)
    used = fabric.link_utilization(G, [0], [9])
    assert ("gpu0", "nvswitch0") in used and ("nvswitch0", "gpu1") in used
    assert not any(G.nodes[v]["kind"] == "switch" and G.nodes[v]["tier"] == 2 for _, v in used)


def test_rail_only_cross_rail_traffic_goes_over_nvlink():
    G = fabric.rail_only(4)
    used = fabric.link_utilization(G, [0], [9])
    assert ("gpu0", "nvswitch0") in used


def test_no_route_names_both_ends():
    G = fabric.dgx_superpod(2)
    G.remove_edge("leaf1", "nic9")
    with pytest.raises(fabric.NoRoute, match="gpu0 to gpu9"):
        fabric.flow_rates(G, [0], [9])


def test_bad_flows_are_rejected():
    G = fabric.dgx_superpod(1)
    with pytest.raises(fabric.InvalidSpec, match="src contains rank 8, outside 0..7"):
        fabric.flow_rates(G, [8], [0])
    with pytest.raises(fabric.InvalidSpec, match="src == dst == 3"):
        fabric.flow_rates(G, [3], [3])
    with pytest.raises(fabric.InvalidSpec, match="same length"):
        fabric.flow_rates(G, [0, 1], [2])
    with pytest.raises(fabric.InvalidSpec, match="seed=-1 must be >= 0"):
        fabric.flow_rates(G, [0], [1], seed=-1)


def test_completion_times_resolve_when_flows_finish():
    G = toy_fabric({("s0", "s1"): B}, ["s0", "s0", "s1", "s1"])
    t = fabric.completion_times(G, [0, 1], [2, 3], [B, 2 * B])
    # Both at B/2 until flow 0 ends at 2 s having sent B; flow 1 then has B left at full B.
    latency = 5e-6  # five edges of 1 us: gpu -> nic -> s0 -> s1 -> nic -> gpu
    assert t == pytest.approx([2.0 + latency, 3.0 + latency], rel=1e-12)


def test_ecmp_hash_collisions_cost_bandwidth_adaptive_routing_does_not():
    G = fabric.fat_tree(64, switch="tomahawk4", rail_optimized=False)  # 8 servers per ToR
    n = 512
    src = np.arange(n)
    dst = (src + 64) % n  # every flow leaves its ToR
    adaptive = fabric.flow_rates(G, src, dst, routing="adaptive")
    ecmp = fabric.flow_rates(G, src, dst, routing="ecmp", qps=1)
    ecmp16 = fabric.flow_rates(G, src, dst, routing="ecmp", qps=16)
    assert adaptive.mean() == pytest.approx(400 * Gbps)
    assert ecmp.mean() < 0.8 * adaptive.mean()
    assert ecmp.mean() < ecmp16.mean() <= adaptive.mean() * (1 + 1e-9)


def test_seeded_ecmp_repeats_exactly_and_seeds_differ():
    G = fabric.fat_tree(64, switch="tomahawk4", rail_optimized=False)
    src = np.arange(512)
    dst = (src + 64) % 512
    a = fabric.flow_rates(G, src, dst, routing="ecmp", seed=3)
    assert np.array_equal(a, fabric.flow_rates(G, src, dst, routing="ecmp", seed=3))
    assert not np.array_equal(a, fabric.flow_rates(G, src, dst, routing="ecmp", seed=4))


def test_a_flow_keeps_its_ecmp_path_when_others_join():
    G = fabric.fat_tree(64, switch="tomahawk4", rail_optimized=False)
    alone = fabric.link_utilization(G, [0], [100], routing="ecmp")
    together = fabric.link_utilization(G, [0, 5], [100, 300], routing="ecmp")
    assert set(alone) <= set(together)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), routing=st.sampled_from(["adaptive", "ecmp"]))
def test_max_min_conditions_on_random_flows(data, routing):
    G = data.draw(fst.fabrics(max_gpus=64), label="G")
    n = sum(1 for _, k in G.nodes(data="kind") if k == "gpu")
    flows = data.draw(st.integers(1, 24), label="flows")
    src = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=flows, max_size=flows), label="src"))
    shift = np.array(data.draw(st.lists(st.integers(1, n - 1), min_size=flows, max_size=flows), label="shift"))
    dst = (src + shift) % n
    routes = route(compile_fabric(G), src, dst, routing=routing, qps=2)
    rates, load = max_min_rates(routes)
    assert (rates > 0).all()
    assert_max_min(routes, rates)


@settings(max_examples=15, deadline=None)
@given(data=st.data(), routing=st.sampled_from(["adaptive", "ecmp"]))
def test_more_capacity_never_lowers_the_sorted_rates(data, routing):
    G = data.draw(fst.fabrics(max_gpus=64), label="G")
    n = sum(1 for _, k in G.nodes(data="kind") if k == "gpu")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    src = rng.integers(0, n, 16)
    dst = (src + rng.integers(1, n, 16)) % n
    before = np.sort(fabric.flow_rates(G, src, dst, routing=routing))
    H = G.copy()
    edge = data.draw(st.sampled_from(sorted(H.edges)), label="edge")
    H.edges[edge]["bandwidth"] *= data.draw(st.floats(1.0, 4.0), label="factor")
    after = np.sort(fabric.flow_rates(H, src, dst, routing=routing))
    # Lexicographic: at the first index where they differ, after is larger.
    diff = np.flatnonzero(~np.isclose(before, after, rtol=1e-9))
    assert diff.size == 0 or after[diff[0]] > before[diff[0]]


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_a_failed_spine_never_raises_aggregate_throughput(data):
    G = data.draw(fst.fabrics(builders=("fat_tree", "dgx_superpod", "spectrum_x"), max_gpus=128), label="G")
    spines = sorted(v for v, d in G.nodes(data=True) if d["kind"] == "switch" and d["tier"] >= 2)
    if len(spines) < 2:
        return
    n = sum(1 for _, k in G.nodes(data="kind") if k == "gpu")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    src = np.arange(n)
    dst = rng.permutation(n)
    keep = src != dst
    H = G.copy()
    H.remove_node(data.draw(st.sampled_from(spines), label="spine"))
    before = fabric.flow_rates(G, src[keep], dst[keep], routing="adaptive").sum()
    after = fabric.flow_rates(H, src[keep], dst[keep], routing="adaptive").sum()
    assert after <= before * (1 + 1e-9)


# ---------------------------------------------------------------- PXN on and off


def test_without_pxn_a_cross_rail_flow_leaves_through_its_own_nic():
    G = fabric.dgx_superpod(4)
    with_pxn = fabric.link_utilization(G, [0], [9])          # gpu0 (rail 0) -> gpu9 (rail 1)
    without = fabric.link_utilization(G, [0], [9], pxn=False)
    assert ("nic1", "leaf1") in with_pxn and ("nic0", "leaf0") not in with_pxn
    assert ("nic0", "leaf0") in without and not any(u == "gpu0" and v == "nvswitch0" for u, v in without)


def test_rail_only_fabric_needs_pxn_between_rails():
    G = fabric.rail_only(2)
    assert fabric.flow_rates(G, [0], [9])[0] > 0
    with pytest.raises(NoRoute, match="gpu0 to gpu9 with PXN disabled"):
        fabric.flow_rates(G, [0], [9], pxn=False)


def test_pxn_funnels_a_cross_rail_permutation_the_fabric_itself_does_not_block():
    G = fabric.dgx_superpod(32)                  # 256 GPUs, non-blocking
    rng = np.random.default_rng(1)
    n = 256
    dst = rng.permutation(n)
    src = np.arange(n)
    keep = (src // 8) != (dst // 8)               # between servers
    nic = 400 * fabric.units.Gbps
    own_nic = fabric.flow_rates(G, src[keep], dst[keep], pxn=False) / nic
    funnelled = fabric.flow_rates(G, src[keep], dst[keep]) / nic
    assert own_nic.min() == pytest.approx(1.0)    # adaptive routing on a non-blocking fat tree
    assert funnelled.mean() < 0.85                # GPUs of a server sharing destination-rail NICs


def test_pxn_must_be_a_bool():
    with pytest.raises(InvalidSpec, match="pxn='no' must be True or False"):
        fabric.flow_rates(fabric.dgx_superpod(1), [0], [1], pxn="no")


# ---------------------------------------------------------------- split paths


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_split_paths_give_the_rates_of_per_pair_paths(data):
    """Up and down halves shared between leaf pairs are exact, on failed fabrics too
    (rows where a failure breaks the split fall back to per-pair paths)."""
    G = data.draw(fst.fabrics(max_gpus=64), label="G")
    G = data.draw(fst.topology_changes(G, max_count=2), label="change").apply(G)
    n = sum(1 for _, k in G.nodes(data="kind") if k == "gpu")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    rng = np.random.default_rng(seed)
    src = np.repeat(np.arange(n), 3)
    dst = (src + rng.integers(1, n, len(src))) % n
    try:
        split = route(compile_fabric(G), src, dst, routing="adaptive")
    except NoRoute:
        return
    import fabric.routing as routing

    saved, routing.SPLIT_PAIRS_PER_TARGET = routing.SPLIT_PAIRS_PER_TARGET, 10**9
    try:
        per_pair = route(compile_fabric(G), src, dst, routing="adaptive")
    finally:
        routing.SPLIT_PAIRS_PER_TARGET = saved
    a, b = materialized(split), materialized(per_pair)
    assert np.allclose(a, b, atol=1e-12)
    assert np.allclose(split.latency, per_pair.latency, rtol=1e-12)
    assert np.allclose(max_min_rates(split)[0], max_min_rates(per_pair)[0], rtol=1e-9)


def test_split_paths_are_used_and_smaller_on_a_permutation():
    G = fabric.fat_tree(64, rail_optimized=False)
    C = compile_fabric(G)
    rng = np.random.default_rng(0)
    dst = rng.permutation(C.n_gpus)
    keep = dst != np.arange(C.n_gpus)
    r = route(C, np.arange(C.n_gpus)[keep], dst[keep], routing="adaptive")
    assert len(r.cls) == 2                      # an up part and a down part, nothing per pair
    stored = sum(p.matrix.nnz for p in r.cls)
    assert stored < class_matrix(r.cls, len(r.capacity)).nnz / 5


def _cut_first_uplink(G):
    leaf = "leaf0"
    up = next(v for v in G.successors(leaf) if G.nodes[v]["kind"] == "switch")
    G.remove_edge(leaf, up)
    G.remove_edge(up, leaf)
    return G


@pytest.mark.parametrize("build", [
    lambda: fabric.dgx_superpod(64),
    lambda: fabric.fat_tree(64, rail_optimized=False),
    lambda: fabric.fat_tree(96, rail_optimized=False, oversubscription=3),
])
@pytest.mark.parametrize("damage", [lambda G: G, _cut_first_uplink, lambda G: (G.remove_node("spine0"), G)[1]])
def test_split_paths_match_per_pair_paths_on_healthy_and_damaged_fabrics(build, damage, monkeypatch):
    import fabric.routing as routing

    monkeypatch.setattr(routing, "clos_blocks", lambda C: None)  # the halves, not the blocks (test_clos_blocks)
    G = damage(build())
    C = compile_fabric(G)
    rng = np.random.default_rng(3)
    src = np.repeat(np.arange(C.n_gpus), 2)
    dst = (src + rng.integers(1, C.n_gpus, len(src))) % C.n_gpus
    split = route(C, src, dst, routing="adaptive", pxn=False)  # no PXN: flows cross rails
    saved, routing.SPLIT_PAIRS_PER_TARGET = routing.SPLIT_PAIRS_PER_TARGET, 10**9
    try:
        per_pair = route(compile_fabric(G), src, dst, routing="adaptive", pxn=False)
    finally:
        routing.SPLIT_PAIRS_PER_TARGET = saved
    assert len(split.cls) >= 2 and len(per_pair.cls) == 1
    A = class_matrix(split.cls, len(split.capacity))
    B = class_matrix(per_pair.cls, len(per_pair.capacity))
    assert abs(A - B).max() < 1e-12
    assert np.allclose(max_min_rates(split)[0], max_min_rates(per_pair)[0], rtol=1e-9)


def test_a_one_way_switch_cable_keeps_paths_per_pair_and_exact():
    G = fabric.fat_tree(64, rail_optimized=False)
    G.remove_edge("spine0", "leaf0")             # leaf0 -> spine0 stays: a one-way cable
    C = compile_fabric(G)
    rng = np.random.default_rng(3)
    src = np.repeat(np.arange(C.n_gpus), 2)
    dst = (src + rng.integers(1, C.n_gpus, len(src))) % C.n_gpus
    r = route(C, src, dst, routing="adaptive")
    assert len(r.cls) == 1                        # nothing split: every leaf pair's own path
    assert np.allclose(max_min_rates(r)[0] > 0, True)
