"""Sites joined by long-haul links: the joined graph, and what crossing costs."""

import numpy as np
import pytest

import collectives
import fabric
from fabric.clos import PROPAGATION_PER_METRE
from fabric.compiled import compile_fabric
from collectives.training.memory import gradient_bytes

SMALL = collectives.Transformer(layers=4, hidden=2048, heads=16, seq_len=2048, vocab=32000, name="small")


def two_sites(km=1000, bandwidth=10e9):
    return fabric.join_sites([fabric.dgx_superpod(1), fabric.dgx_superpod(1)], distance_km=km, bandwidth=bandwidth)


def test_each_site_keeps_its_fabric_and_ranks_stay_global_and_host_major():
    a, b = fabric.dgx_superpod(2), fabric.dgx_superpod(3)
    G = fabric.join_sites([a, b], distance_km=50, bandwidth=400e9)
    assert fabric.validate(G) == []
    assert [s["gpus"] for s in G.graph["sites"]] == [16, 24] and G.graph["sites"][1]["first_rank"] == 16
    assert G.nodes["gpu16"]["host"] == 2 and G.nodes["gpu16"]["site"] == 1
    # site 1's wiring is b's, renamed
    inside = {(u, v) for u, v in G.edges if G.nodes[u]["site"] == G.nodes[v]["site"] == 1
              and "border" not in u + v}
    assert len(inside) == b.number_of_edges()
    # the long-haul link: one per site pair, its latency the fibre's plus the border's forwarding
    border = fabric.SWITCHES[fabric.sites.BORDER_SWITCH]
    wan = G.edges["s0-border", "s1-border"]
    assert wan["bandwidth"] == 400e9 and wan["distance_km"] == 50
    assert wan["latency"] == pytest.approx(50e3 * PROPAGATION_PER_METRE + border.latency)
    assert compile_fabric(G).far_latency.max() == pytest.approx(wan["latency"])
    path = fabric.flow_rates(G, [0], [16])
    assert path[0] == pytest.approx(min(400e9, 50e9))  # one flow: its NIC is the narrower


def test_a_dp_job_across_a_thin_link_costs_what_the_link_implies():
    # 16 GPUs, 8 per site, plain data parallelism with the all-reduce exposed, reduced
    # hierarchically: a reduce-scatter inside each site, the 8 shards all-reduced across (each
    # site sends the other its half of every shard's sums and receives the other half: S bytes
    # each way in all, at the link's rate and efficiency, in two rounds that wait for the
    # fibre), an all-gather inside each site
    G = two_sites(km=1000, bandwidth=10e9)
    plan = collectives.Parallelism(dp=16, global_batch=16, zero=0, overlap_grad_reduce=False)
    S = SMALL.parameters() * gradient_bytes(plan.grad_reduce_in_fp32)
    efficiency = collectives.DEFAULT_PARAMS.efficiency("infiniband")
    wan = G.edges["s0-border", "s1-border"]["latency"]
    inside = (collectives.reduce_scatter(G, S, ranks=range(8), level="flow").time
              + collectives.all_gather(G, S, ranks=range(8), level="flow").time)
    by_hand = inside + S / (10e9 * efficiency) + 2 * wan
    for level in ("flow", "analytic"):
        dp = collectives.estimate_step(SMALL, plan, G, level=level).breakdown["dp_communication"]
        assert dp == pytest.approx(by_hand, rel=0.01)
    one_site = fabric.dgx_superpod(2)
    assert collectives.estimate_step(SMALL, plan, one_site, level="flow").breakdown["dp_communication"] < by_hand / 10


def test_farther_sites_cost_more_latency_and_the_result_says_how_much():
    near, far = two_sites(km=10), two_sites(km=2000)
    a = collectives.all_reduce(near, 2**24, level="flow", algorithm="ring")
    b = collectives.all_reduce(far, 2**24, level="flow", algorithm="ring")
    assert b.time > a.time and b.far_latency > a.far_latency > 0
    assert b.far_latency == pytest.approx(2 * 15 * far.edges["s0-border", "s1-border"]["latency"])  # 2(n-1) rounds
    assert "of which long-haul" in str(b)
    inside = collectives.all_reduce(far, 2**24, ranks=list(range(8)), level="flow")
    assert inside.far_latency == 0


@pytest.mark.parametrize("call, message", [
    (lambda: fabric.join_sites([fabric.dgx_superpod(1)], distance_km=1, bandwidth=1e9), "two or more fabrics"),
    (lambda: fabric.join_sites([fabric.dgx_superpod(1), fabric.dgx_superpod(1, gpu="B200")], distance_km=1,
                               bandwidth=1e9), "graphs\\[1\\] has gpu="),
    (lambda: fabric.join_sites([fabric.dgx_superpod(1)] * 2, distance_km=0, bandwidth=1e9), "distance_km=0 must be > 0"),
    (lambda: fabric.join_sites([fabric.dgx_superpod(1)] * 2, distance_km=[[0, 1], [2, 0]], bandwidth=1e9),
     "distance_km\\[0\\]\\[1\\]=1 differs from distance_km\\[1\\]\\[0\\]=2"),
    (lambda: fabric.join_sites([fabric.dgx_superpod(1)] * 3, distance_km=[[0, 1], [1, 0]], bandwidth=1e9),
     "must be a 3 x 3 matrix"),
])
def test_bad_input_names_the_field(call, message):
    with pytest.raises(fabric.InvalidSpec, match=message):
        call()


def test_a_joined_fabric_saves_and_loads():
    G = two_sites()
    H = fabric.from_json(fabric.to_json(G))
    assert H.graph["sites"] == G.graph["sites"]
    assert compile_fabric(H).far_latency.max() == compile_fabric(G).far_latency.max()


def _best(G, orders, **kwargs):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return collectives.search(collectives.MODELS["llama3-8b"], G, global_batch=64, progress=False,
                                  executor=pool, rank_orders=orders, **kwargs)


def _plan(estimate):
    return collectives.Parallelism(**estimate.plan, global_batch=64)


def test_search_keeps_every_group_but_data_parallelism_inside_a_site():
    from collectives.training.search import groups_inside_sites, job_sites

    G = fabric.join_sites([fabric.dgx_superpod(2), fabric.dgx_superpod(2)], distance_km=1000, bandwidth=5e9)
    sites = job_sites(G, None)
    results = _best(G, None)
    assert all(e.plan["rank_order"] == "tp-cp-pp-dp" and groups_inside_sites(_plan(e), sites) for e in results)


@pytest.mark.parametrize("km, bandwidth, pp_crosses", [(3000, 100e9, False), (1000, 5e9, True)])
def test_pp_across_sites_is_chosen_only_where_it_is_faster(km, bandwidth, pp_crosses):
    # a fat link far away: gradients cross cheaply once per step, activations would wait for
    # the fibre every micro-batch; a thin one: the gradients are what cannot cross
    from collectives.training.search import groups_inside_sites, job_sites

    G = fabric.join_sites([fabric.dgx_superpod(2), fabric.dgx_superpod(2)], distance_km=km, bandwidth=bandwidth)
    sites = job_sites(G, None)
    results = _best(G, ("tp-cp-pp-dp", "tp-cp-dp-pp"))
    inside = [e for e in results if groups_inside_sites(_plan(e), sites)]
    crossing = [e for e in results if not groups_inside_sites(_plan(e), sites)]
    best = results[0]
    assert (best in crossing) == pp_crosses
    assert (crossing[0].time < inside[0].time) == pp_crosses


def test_data_parallel_groups_reduce_inside_each_site_first():
    from collectives.training.communication import Communication

    G = fabric.join_sites([fabric.dgx_superpod(4), fabric.dgx_superpod(4)], distance_km=1000, bandwidth=50e9)
    comm = Communication(G, "flow", collectives.DEFAULT_PARAMS)
    group = np.arange(64)[None, :]
    inside, across, k = comm._by_site(group)
    assert k == 32 and inside.tolist() == [list(range(32)), list(range(32, 64))]
    assert across.shape == (32, 2) and across[0].tolist() == [0, 32]
    hierarchical = comm.data_parallel("all_reduce", group, 2**28)
    flat = comm.time("all_reduce", group, 2**28, concurrent=True)
    assert hierarchical < flat
    one_site = np.arange(32)[None, :]
    assert comm.data_parallel("all_reduce", one_site, 2**28) == comm.time("all_reduce", one_site, 2**28, concurrent=True)
