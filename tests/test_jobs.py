"""Jobs on part of a fabric and jobs side by side (fabric.place, collectives.estimate_jobs)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

import collectives
import fabric

LLAMA = collectives.MODELS["llama3-8b"]
# 48 GPUs: one 3:1 oversubscribed top-of-rack leaf holds 6 servers (48 of its 64 ports down)
DP_EXPOSED = collectives.Parallelism(tp=8, dp=6, global_batch=48, overlap_grad_reduce=False)


@pytest.fixture(scope="module")
def oversubscribed():
    return fabric.fat_tree(16, rail_optimized=False, oversubscription=3.0)


def _leaves(G, ranks):
    leaf = {}
    for n, d in G.nodes(data=True):
        if d["kind"] == "nic":
            leaf[n] = next(v for v in G.successors(n) if G.nodes[v]["kind"] == "switch")
    return {leaf[f"nic{r}"] for r in ranks}


def test_place_hands_out_whole_free_servers(oversubscribed):
    G = oversubscribed
    packed = fabric.place(G, 48, policy="packed")
    assert packed == list(range(48)) and len(_leaves(G, packed)) == 1
    spread = fabric.place(G, 48, policy="spread")
    assert len(_leaves(G, spread)) == 3  # every leaf with free servers gets some
    again = fabric.place(G, 48, policy="random", seed=5)
    assert again == fabric.place(G, 48, policy="random", seed=5) and len(again) == 48
    second = fabric.place(G, 48, policy="packed", taken=packed)
    assert second == list(range(48, 96))
    with pytest.raises(fabric.InvalidSpec, match="gpus=12 must be a multiple of the 8 GPUs of a server"):
        fabric.place(G, 12)
    with pytest.raises(fabric.Infeasible, match="gpus=128 need 16 free servers; 10 of 16 are free"):
        fabric.place(G, 128, taken=packed)
    with pytest.raises(fabric.InvalidSpec, match="policy='tight' must be one of"):
        fabric.place(G, 8, policy="tight")


@pytest.mark.parametrize("level", ["analytic", "flow"])
def test_jobs_that_share_no_link_run_as_fast_as_alone(oversubscribed, level):
    G = oversubscribed
    a = fabric.place(G, 48, policy="packed")
    b = fabric.place(G, 48, policy="packed", taken=a)  # the next leaf: the rings share no cable
    assert not _leaves(G, a) & _leaves(G, b)
    shared = collectives.estimate_jobs(G, [(LLAMA, DP_EXPOSED, a), (LLAMA, DP_EXPOSED, b)], level=level)
    for job in shared:
        assert job.time == job.alone.time and job.slowdown == 0.0


@pytest.mark.parametrize("level", ["analytic", "flow"])
def test_spread_jobs_slow_each_other_down_on_an_oversubscribed_fabric(oversubscribed, level):
    G = oversubscribed
    slowdowns = {}
    for policy in ("packed", "spread"):
        a = fabric.place(G, 48, policy=policy)
        b = fabric.place(G, 48, policy=policy, taken=a)
        jobs = collectives.estimate_jobs(G, [(LLAMA, DP_EXPOSED, a), (LLAMA, DP_EXPOSED, b)], level=level)
        assert all(job.slowdown >= 0 for job in jobs)
        slowdowns[policy] = max(job.slowdown for job in jobs)
    assert slowdowns["spread"] > slowdowns["packed"] + 0.01


def test_expert_all_to_all_shares_the_fabric_too(oversubscribed):
    # a small MoE whose 16-expert all-to-all spans two servers (the fluid engine's path)
    moe = collectives.Transformer(name="moe-16", layers=2, hidden=1024, heads=8, seq_len=1024, vocab=32000,
                                  experts=16, top_k=2, mlp="swiglu")
    plan = collectives.Parallelism(tp=1, dp=48, ep=16, etp=1, global_batch=48)
    G = oversubscribed
    a = fabric.place(G, 48, policy="spread")
    b = fabric.place(G, 48, policy="spread", taken=a)
    jobs = collectives.estimate_jobs(G, [(moe, plan, a), (moe, plan, b)], level="flow")
    assert all(job.breakdown["ep_communication"] >= job.alone.breakdown["ep_communication"] > 0
               for job in jobs)
    assert "shared" in str(jobs[0]) and jobs[0].to_dict()["gpus"] == 48


def test_estimate_jobs_refuses_overlapping_or_malformed_jobs(oversubscribed):
    a = fabric.place(oversubscribed, 48)
    with pytest.raises(collectives.InvalidSpec, match="jobs 0 and 1 both use GPU 0"):
        collectives.estimate_jobs(oversubscribed, [(LLAMA, DP_EXPOSED, a), (LLAMA, DP_EXPOSED, a)])
    with pytest.raises(collectives.InvalidSpec, match=r"jobs\[0\]=.* must be a \(model, plan, ranks\) triple"):
        collectives.estimate_jobs(oversubscribed, [(LLAMA, DP_EXPOSED)])
    with pytest.raises(collectives.InvalidSpec, match="jobs is empty"):
        collectives.estimate_jobs(oversubscribed, [])
    with pytest.raises(collectives.InvalidSpec, match=r"must equal the 40 GPUs of jobs\[1\]'s ranks"):
        collectives.estimate_jobs(oversubscribed, [(LLAMA, DP_EXPOSED, a), (LLAMA, DP_EXPOSED, range(88, 128))])


def test_bad_placement_and_background_input_are_typed_errors(oversubscribed):
    from collectives.training import Cluster

    with pytest.raises(fabric.InvalidSpec, match=r"taken=\[None\] must be the GPU ranks other jobs hold"):
        fabric.place(oversubscribed, 8, taken=[None])
    with pytest.raises(collectives.InvalidSpec, match="jobs\\[0\\] plan=None must be a collectives.Parallelism"):
        collectives.estimate_jobs(oversubscribed, [(LLAMA, None, range(48))])
    with pytest.raises(collectives.InvalidSpec, match=r"got shapes \(1,\) and \(2,\)"):
        Cluster(oversubscribed, "flow", background=([0], [1, 2]))
    with pytest.raises(collectives.InvalidSpec, match="background dst contains rank 128, outside 0..127"):
        Cluster(oversubscribed, "flow", background=([0], [128]))
    with pytest.raises(fabric.InvalidSpec, match="switch= names 7 tiers; a Clos has at most 6"):
        fabric.fat_tree(8, switch=["tomahawk4"] * 7)


def test_even_placement_fills_nvlink_domains_in_equal_shares():
    # 128 GB200 on two NVL72 racks as the published runs use them: 64 + 64, which search(ranks=) takes
    from collections import Counter

    G = fabric.nvl72(2)
    ranks = fabric.place(G, 128, policy="even")
    assert sorted(Counter(G.nodes[f"gpu{r}"]["domain"] for r in ranks).values()) == [64, 64]
    assert sorted(Counter(G.nodes[f"gpu{r}"]["domain"] for r in fabric.place(G, 128)).values()) == [56, 72]
    with ThreadPoolExecutor(1) as pool:
        best = collectives.search(LLAMA, G, global_batch=128, ranks=ranks, progress=False, top=1, executor=pool)
    assert best[0].fits
    with pytest.raises(fabric.Infeasible, match="gpus=140 cannot be split into equal shares"):
        fabric.place(G, 140, policy="even")
