"""The fabric-aware analytic level: communication patterns probed once at the flow level."""

import warnings
from dataclasses import replace

import numpy as np
import pytest

import collectives
import fabric
from collectives.params import DEFAULT_PARAMS
from collectives.patterns import PatternProbes, PatternTable, pattern_key

LLAMA = collectives.MODELS["llama3-8b"]
MOE = replace(collectives.MODELS["mixtral-8x7b"], experts=32)  # 32 experts: EP across servers


def _tor(oversubscription=3.0, nodes=16):
    return fabric.fat_tree(nodes, routing="ecmp", rail_optimized=False, oversubscription=oversubscription)


def _estimate(model, plan, G, level, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", collectives.MemoryWarning)
        return collectives.estimate_step(model, plan, G, level=level, **kwargs)


@pytest.mark.parametrize("model, plan, exposed", [
    (LLAMA, collectives.Parallelism(tp=8, dp=16, global_batch=128, overlap_grad_reduce=False), "dp_communication"),
    (LLAMA, collectives.Parallelism(tp=4, pp=2, dp=16, global_batch=128), None),
    (MOE, collectives.Parallelism(tp=1, pp=2, dp=64, ep=32, global_batch=128), "ep_communication"),
])
def test_the_analytic_level_sees_oversubscription_as_the_flow_level_does(model, plan, exposed):
    G = _tor()
    analytic, flow = _estimate(model, plan, G, "analytic"), _estimate(model, plan, G, "flow")
    assert analytic.time == pytest.approx(flow.time, rel=1e-6)
    full = _estimate(model, plan, _tor(1.0), "analytic")
    assert analytic.time >= full.time
    if exposed:  # where the traffic is not hidden, 3:1 above the leaves shows
        assert analytic.breakdown[exposed] > full.breakdown[exposed]


def test_the_analytic_level_raises_no_route_when_the_spines_are_gone():
    G = fabric.fat_tree(16, rail_optimized=False)  # four leaves of four servers
    G.remove_nodes_from([n for n, d in G.nodes(data=True) if d.get("tier") == 2])
    plan = collectives.Parallelism(tp=8, dp=16, global_batch=64)
    with pytest.raises(fabric.NoRoute):
        _estimate(LLAMA, plan, G, "analytic")
    with pytest.raises(fabric.NoRoute):
        collectives.search(LLAMA, G, global_batch=64, progress=False)
    assert _estimate(LLAMA, plan, fabric.fat_tree(16, rail_optimized=False), "analytic").time > 0


def test_the_seed_moves_ecmp_collisions_at_both_levels():
    G = _tor(1.0, nodes=32)
    plan = collectives.Parallelism(tp=8, dp=32, global_batch=256, overlap_grad_reduce=False)
    times = {seed: _estimate(LLAMA, plan, G, "analytic", seed=seed).time for seed in range(4)}
    assert len(set(times.values())) > 1
    assert times[3] == pytest.approx(_estimate(LLAMA, plan, G, "flow", seed=3).time, rel=1e-6)


def test_cross_rack_rings_on_nvl72_use_every_tray_nic():
    # 72 rings of one GPU per rack: PXN relays inside a compute tray, so no NIC carries two rings
    probes = PatternProbes(fabric.nvl72(2), DEFAULT_PARAMS)
    rings = [[i, 72 + i] for i in range(72)]
    assert probes.slowdown("all_reduce", "ring", rings) == pytest.approx(1.0, rel=0.05)


def test_a_search_prices_each_plan_as_estimate_step_does_on_the_graph():
    G = _tor(3.0, nodes=8)
    ranked = collectives.search(LLAMA, G, global_batch=64, progress=False, executor=None)
    assert len(ranked) > 20
    for est in ranked[:: max(1, len(ranked) // 15)]:
        plan = collectives.Parallelism(**est.plan, global_batch=64)
        assert est.time == pytest.approx(_estimate(LLAMA, plan, G, "analytic").time, rel=1e-9)


def test_a_table_serves_only_the_patterns_it_was_built_for():
    table = PatternTable({pattern_key("all_reduce", "ring", [[0, 8]]): 1.5}, 8)
    assert table.slowdown("all_reduce", "ring", np.array([[0, 8]])) == 1.5
    assert table.slowdown("all_reduce", "ring", [[0, 1]]) == 1.0  # inside one domain
    with pytest.raises(collectives.InvalidSpec, match="all_reduce with tree on 1 group"):
        table.slowdown("all_reduce", "tree", [[0, 8]])
