"""Regression tests for defects the fuzz campaign of the public API found (the hardening issue):
each call below escaped as an untyped Python error or was accepted silently."""

from concurrent.futures import ThreadPoolExecutor

import pytest

import collectives
import fabric

S2 = fabric.dgx_superpod(2)
LLAMA = collectives.MODELS["llama3-8b"]


def _edited(edit):
    G = fabric.dgx_superpod(2)
    edit(G)
    return G


def _with_gpu_name():
    G = fabric.dgx_superpod(2)
    G.graph["gpu"] = "H100"  # a name, not a spec
    return G


CASES = [
    (lambda: fabric.nvl72(1, rail_optimized="False"), "rail_optimized='False' must be True or False"),
    (lambda: fabric.fat_tree(2, nic="cx7", nic_bandwidth=float("nan")), "nic_bandwidth=nan must be finite"),
    (lambda: fabric.rail_only(2, nic="cx7", nic_bandwidth="400"), "nic_bandwidth='400' must be a number"),
    (lambda: fabric.completion_times(S2, [0], [8], "x"), "nbytes='x' must be numbers of bytes"),
    (lambda: collectives.concurrent_send_recv(S2, 2**20, []), "pairs is empty"),
    (lambda: collectives.sweep(S2, "all_reduce", 5), "sizes=5 must be a sequence of message sizes"),
    (lambda: collectives.all_reduce(None, 2**20), "G=None must be a fabric graph"),
    (lambda: collectives.estimate_step(LLAMA, collectives.Parallelism(tp=8, dp=2, global_batch=32), None),
     "G=None must be a fabric graph"),
    (lambda: collectives.all_reduce(_with_gpu_name(), 2**20, level="analytic"),
     r"G.graph\['gpu'\]='H100' must be a GPU spec"),
    (lambda: collectives.search(LLAMA, S2, global_batch=16, top=-1, progress=False), "top=-1 must be >= 1"),
    (lambda: collectives.search(LLAMA, S2, global_batch=16, top=0, progress=False), "top=0 must be >= 1"),
    (lambda: collectives.search(LLAMA, S2, global_batch=16, precision="fp4", progress=False),
     "precision='fp4' must be one of"),
    (lambda: collectives.concurrent(S2, "all_gather", [[0, 8], [2, 3, 4, 9]], 2**20, level="flow"),
     "concurrent groups must run the same number of steps"),
    (lambda: collectives.all_reduce(S2, 2**20, params={"collnet": True}),
     r"params=\{'collnet': True\} must be a collectives.CommParams"),
    (lambda: collectives.estimate_step(LLAMA, collectives.Parallelism(tp=8, dp=2, global_batch=32), S2,
                                       compute={"gemm_efficiency": 0.7}), "must be a collectives.ComputeParams"),
    (lambda: collectives.search(LLAMA, S2, global_batch=16, executor="pool", progress=False),
     "executor='pool' must be a concurrent.futures.Executor"),
    (lambda: fabric.bisection_bandwidth(_edited(lambda G: G.edges["leaf0", "spine0"].update(bandwidth="x"))),
     r"bandwidth of edge \('leaf0', 'spine0'\)='x' must be a number"),
    (lambda: collectives.all_reduce(_edited(lambda G: G.nodes["leaf0"].update(tier=None)), 2**20, level="flow"),
     "node 'leaf0' tier=None must be an integer"),
    (lambda: collectives.all_reduce(_edited(lambda G: G.nodes["gpu0"].update(rank=[1])), 2**20),
     r"node 'gpu0' rank=\[1\] must be an integer"),
    (lambda: fabric.completion_times(S2, [0], [8], [1e9], rtol=1.0), "rtol=1.0 must be < 1"),
]


@pytest.mark.parametrize("call, message", CASES, ids=[m[:40] for _, m in CASES])
def test_bad_input_is_a_typed_error_naming_field_and_value(call, message):
    with pytest.raises(fabric.InvalidSpec, match=message):
        call()


def test_an_empty_all_to_all_costs_only_latency_at_both_levels():
    analytic = collectives.all_to_all(S2, 0, level="analytic")
    flow = collectives.all_to_all(S2, 0, level="flow")
    assert analytic.time == pytest.approx(flow.time) and 0 < analytic.time < 1e-3
    # the rate the flows would get, not inf, and the same at both levels
    assert flow.phases[0].rate == pytest.approx(analytic.phases[0].rate)


def test_plot_and_strategies_are_reachable_after_import_fabric():
    import subprocess
    import sys

    code = "import fabric; fabric.plot.topology; fabric.strategies.fabrics; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"


def test_a_seed_too_large_to_hash_is_refused():
    with pytest.raises(fabric.InvalidSpec, match="seed=" + str(10**30) + " must be <= 9223372036854775807"):
        fabric.flow_rates(S2, [0], [8], seed=10**30)


def test_tiers_that_dwarf_the_gpus_fail_fast():
    # 2.1 million switches for 8 GPUs: refused before anything is built
    with pytest.raises(fabric.Infeasible, match=r"tiers=6 would build 2,130,984 switches for 8 GPUs"):
        fabric.fat_tree(1, tiers=6)
    assert fabric.fat_tree(1, tiers=3).number_of_nodes() < 100


@pytest.mark.parametrize("removed", ["nic0", "nic8", "leaf0"])
@pytest.mark.parametrize("level", ["analytic", "flow"])
def test_a_gpu_cut_off_the_network_is_no_route_at_both_levels(removed, level):
    G = fabric.dgx_superpod(2)
    G.remove_node(removed)
    with pytest.raises(fabric.NoRoute):
        collectives.all_reduce(G, 2**20, ranks=[0, 8], level=level)


@pytest.mark.parametrize("level", ["analytic", "flow"])
def test_a_step_on_a_fabric_with_a_top_of_rack_switch_removed_is_no_route(level):
    G = fabric.fat_tree(4, rail_optimized=False)
    G.remove_node(next(n for n, d in G.nodes(data=True) if d.get("kind") == "switch" and d.get("tier") == 1))
    with pytest.raises(fabric.NoRoute):
        collectives.estimate_step(LLAMA, collectives.Parallelism(tp=8, dp=4, global_batch=32), G, level=level)


def test_search_on_a_fabric_with_a_gpu_cut_off_is_no_route():
    G = fabric.dgx_superpod(2)
    G.remove_node("nic9")
    with pytest.raises(fabric.NoRoute, match="GPU rank 9 has no NIC"):
        collectives.search(LLAMA, G, global_batch=16, progress=False)


@pytest.fixture
def memory_budget(monkeypatch):
    """A fixed 8 GiB budget, so the size checks answer the same on every machine."""
    import fabric.limits

    monkeypatch.setattr(fabric.limits, "MEMORY_BUDGET", 8 * 2**30)


def test_ten_million_queue_pairs_are_refused_before_allocating(memory_budget):
    G = fabric.fat_tree(4, routing="ecmp", qps=10**7)
    with pytest.raises(fabric.TooLarge, match=r"routing 256 flows x 10,000,000 queue pairs .* needs about [\d.]+ TiB; "
                                              r"8 GiB is available"):
        collectives.all_reduce(G, 2**20, level="flow")


def test_a_hundred_million_cables_per_edge_are_refused_before_allocating(memory_budget):
    G = fabric.fat_tree(4, routing="ecmp")
    for u, v, data in G.edges(data=True):
        if G.nodes[u]["kind"] == G.nodes[v]["kind"] == "switch":
            data["links"] = 10**8
    with pytest.raises(fabric.TooLarge, match=r"over 6,400,000,192 hashed cables"):
        collectives.all_reduce(G, 2**20, level="flow")


def test_a_distance_table_too_large_for_the_budget_is_refused(monkeypatch):
    import fabric.limits

    # 8,192 GPUs, 640 switches; 64 flows into 64 of the 256 leaves route in ~110 kB and need
    # the table of hops to every leaf, 256 x 640 bytes (a cut cable: the Clos is no longer
    # even, so its blocks cannot stand in for the tables).
    G = fabric.dgx_superpod(1024)
    G.remove_edges_from([("leaf200", "spine192"), ("spine192", "leaf200")])
    src, dst = [1] * 64, [256 * unit + 8 + rail for unit in range(32) for rail in (0, 4)]  # 32 SUs x 2 rails
    monkeypatch.setattr(fabric.limits, "MEMORY_BUDGET", 130_000)
    with pytest.raises(fabric.TooLarge, match="a table of switch hops from 640 switches to 256 leaves"):
        fabric.flow_rates(G, src, dst)
    monkeypatch.setattr(fabric.limits, "MEMORY_BUDGET", None)  # the machine's free memory
    assert fabric.flow_rates(G, src, dst).min() > 0


def test_completion_times_stay_within_their_tolerance_of_the_exact_simulation():
    import numpy as np

    G = fabric.dgx_superpod(8)
    rng = np.random.default_rng(1)
    src = rng.integers(0, 64, 300)
    dst = (src + rng.integers(1, 63, 300)) % 64
    nbytes = rng.uniform(1e6, 1e9, 300)
    exact = fabric.completion_times(G, src, dst, nbytes, rtol=0)
    fast = fabric.completion_times(G, src, dst, nbytes)
    assert np.all(np.abs(fast - exact) <= fabric.flows.FLUID_RTOL * exact)
    assert np.abs(fast - exact).max() > 0  # the batching did batch


def _every_edge(attr, value, routing=None):
    def edit(G):
        if routing:
            G.graph["routing"] = routing
        for _, _, data in G.edges(data=True):
            data[attr] = value
    return edit


def _first_edge_without_bandwidth(G):
    del G.edges["nic0", "leaf0"]["bandwidth"]


EDITED = [  # (edit, call on the edited graph, message): each once hung, crashed or gave garbage
    (_every_edge("bandwidth", float("inf")), lambda G: fabric.completion_times(G, [0], [8], [1e9]),
     "bandwidth=inf must be a finite number"),
    (_every_edge("bandwidth", float("inf")), lambda G: collectives.all_to_all(G, 2**20, level="flow"),
     "bandwidth=inf must be a finite number"),
    (_every_edge("bandwidth", float("inf")), lambda G: collectives.all_reduce(G, 2**20),
     "bandwidth=inf must be a finite number"),
    (_every_edge("latency", -1.0), lambda G: fabric.completion_times(G, [0], [8], [1e9]), "latency=-1.0 must be >= 0"),
    (_every_edge("latency", float("nan")), lambda G: fabric.completion_times(G, [0], [8], [1e9]),
     "latency=nan must be finite"),
    (_every_edge("bandwidth", 1e-300), lambda G: collectives.estimate_step(
        LLAMA, collectives.Parallelism(tp=8, dp=2, global_batch=32), G), "bandwidth=1e-300 must be a finite number"),
    (_every_edge("bandwidth", "fast"), lambda G: collectives.all_reduce(G, 2**20, level="flow"),
     "bandwidth='fast' must be a finite number"),
    (_every_edge("latency", "slow"), lambda G: collectives.all_reduce(G, 2**20, level="flow"),
     "latency='slow' must be a number"),
    (_every_edge("links", None), lambda G: collectives.all_reduce(G, 2**20, level="flow"), "links=None must be an integer"),
    (_every_edge("links", float("nan")), lambda G: collectives.all_reduce(G, 2**20, level="flow"),
     "links=nan must be an integer"),
    (_every_edge("links", -1, "ecmp"), lambda G: collectives.all_reduce(G, 2**20, level="flow"), "links=-1 must be >= 1"),
    (_every_edge("links", 0, "ecmp"), lambda G: collectives.all_reduce(G, 2**20, level="flow"), "links=0 must be >= 1"),
    (_every_edge("links", 1.5, "ecmp"), lambda G: collectives.all_reduce(G, 2**20, level="flow"),
     "links=1.5 must be an integer"),
    (_first_edge_without_bandwidth, lambda G: collectives.all_reduce(G, 2**20, ranks=[0, 8], level="analytic"),
     r"edge \('nic0', 'leaf0'\) has no attribute 'bandwidth'"),
    (lambda G: G.edges["nvswitch0", "gpu0"].update(bandwidth=None), fabric.summary, "=None must be a number"),
]


@pytest.mark.parametrize("edit, call, message", EDITED, ids=[m[:40] for _, _, m in EDITED])
def test_a_bad_edge_value_is_a_typed_error(edit, call, message):
    G = fabric.dgx_superpod(2)
    edit(G)
    with pytest.raises(fabric.InvalidSpec, match=message):
        call(G)


def test_builders_refuse_servers_without_gpus_and_more_gpus_than_nics_fit():
    with pytest.raises(fabric.InvalidSpec, match="gpus_per_node=0 must be >= 1"):
        fabric.fat_tree(2, gpus_per_node=0)
    with pytest.raises(fabric.FabricError):
        fabric.fat_tree(2, gpus_per_node=129)


def _ecmp_fat_tree_with_a_cut_cable():
    """A 256-GPU ECMP fat tree that routes from tables: a cut cable leaves it no blocks
    (fabric.clos_blocks), so its next hops come from distance tables."""
    G = fabric.fat_tree(32, routing="ecmp", rail_optimized=False)
    G.remove_edges_from([("leaf0", "spine0"), ("spine0", "leaf0")])
    return G


def test_a_fabric_too_large_to_probe_is_refused_at_the_flow_level_and_blind_at_the_analytic(monkeypatch):
    import fabric.limits

    from fabric.tables import format_bytes

    G = _ecmp_fat_tree_with_a_cut_cable()
    # the tables toward every leaf: per leaf, 8 bytes per switch-to-switch link and 18 per switch
    kinds = dict(G.nodes(data="kind"))
    switches = [n for n, k in kinds.items() if k == "switch"]
    leaves = sum(1 for n in switches if G.nodes[n]["tier"] == 1)
    links = sum(1 for u, v in G.edges if kinds[u] == kinds[v] == "switch")
    needed = format_bytes(leaves * (8 * links + 18 * len(switches)))
    plan = collectives.Parallelism(tp=8, dp=32, global_batch=256)
    monkeypatch.setattr(fabric.limits, "MEMORY_BUDGET", 1000)
    with pytest.raises(fabric.TooLarge, match=f"routing a training step on 256 GPUs .* needs about {needed}; 1000 B"):
        collectives.estimate_step(LLAMA, plan, G, level="flow")
    with pytest.warns(collectives.FabricBlindWarning, match="reads one GPU's links instead"):
        blind = collectives.estimate_step(LLAMA, plan, G, level="analytic")
    assert not blind.fabric_aware and "fabric-blind" in str(blind)
    monkeypatch.setattr(fabric.limits, "MEMORY_BUDGET", None)
    aware = collectives.estimate_step(LLAMA, plan, G, level="analytic")
    assert aware.fabric_aware and aware.time >= blind.time


def test_a_search_on_a_fabric_too_large_to_probe_is_fabric_blind_and_says_so(monkeypatch):
    import fabric.limits

    G = _ecmp_fat_tree_with_a_cut_cable()  # its routing tables: ~6 KiB
    monkeypatch.setattr(fabric.limits, "MEMORY_BUDGET", 1000)
    with pytest.warns(collectives.FabricBlindWarning, match="the search reads one GPU's links instead"):
        ranked = collectives.search(LLAMA, G, global_batch=256, progress=False, top=5)
    assert ranked and not any(e.fabric_aware for e in ranked)


def test_a_pattern_too_large_to_probe_is_priced_blind_with_a_warning_not_refused(monkeypatch):
    import fabric.limits

    # 8 servers under one top-of-rack switch, 16 queue pairs per flow: the routing tables are
    # a few bytes, the data-parallel rings' flows x queue pairs x cables several MiB
    G = fabric.fat_tree(8, routing="ecmp", rail_optimized=False, qps=16)
    model = collectives.MODELS["mixtral-8x7b"]
    plan = collectives.Parallelism(tp=2, pp=2, dp=16, ep=8, etp=1, global_batch=64)
    monkeypatch.setattr(fabric.limits, "MEMORY_BUDGET", 2**20)
    ring_too_large = r"\(ring\) on 4 concurrent groups of 16 ranks: .* needs about .*priced from one GPU's links"
    with pytest.warns(collectives.FabricBlindWarning, match=ring_too_large):
        blind = collectives.estimate_step(model, plan, G, level="analytic")
    assert not blind.fabric_aware and "fabric-blind" in str(blind)
    too_large = r"\d+ of the \d+ communication patterns of the search were too large"
    with pytest.warns(collectives.FabricBlindWarning, match=too_large), ThreadPoolExecutor(1) as pool:
        ranked = collectives.search(model, G, global_batch=64, progress=False, top=3, executor=pool)
    assert ranked and not any(e.fabric_aware for e in ranked)
    monkeypatch.setattr(fabric.limits, "MEMORY_BUDGET", None)
    aware = collectives.estimate_step(model, plan, G, level="analytic")
    assert aware.fabric_aware
