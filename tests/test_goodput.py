"""Goodput against the Llama 3 paper's 54 days on 16,384 GPUs, and how it moves with the fabric."""

import pytest

import collectives
import fabric
from collectives.training.failures import LLAMA3_CAUSES, LLAMA3_PLANNED

LLAMA70 = collectives.MODELS["llama3-70b"]


def plan70(gpus):
    return collectives.Parallelism(tp=8, pp=4, dp=gpus // 32, global_batch=gpus // 2)


def test_llama3_405b_on_16k_gpus_has_the_papers_interruptions_and_over_90_percent_effective_time():
    # Llama 3 paper, section 3.3.4: 466 interruptions (47 planned, 419 unexpected) in 54 days,
    # "higher than 90% effective training time"; the plan of its Table 4 (TP8 PP16 at 16k GPUs)
    G = fabric.preset("meta-llama3", gpus=16_384)
    plan = collectives.Parallelism(tp=8, pp=16, dp=128, global_batch=2048, virtual_stages=4, zero=3,
                                   recompute="selective")
    g = collectives.goodput(collectives.MODELS["llama3-405b"], plan, G)
    assert round(g.interruptions_per_day * 54) == sum(LLAMA3_CAUSES.values()) + LLAMA3_PLANNED == 466
    assert round((g.interruptions_per_day - g.interruptions["planned"]) * 54) == 419
    assert 0.90 < g.goodput < 1
    assert g.effective_step_time == pytest.approx(g.step_time / g.goodput)
    assert g.tokens_per_day == pytest.approx(2048 * 8192 / g.effective_step_time * 86400)
    assert "goodput" in str(g) and "<table>" in g._repr_html_() and g.to_dict()["gpus"] == 16_384


def test_goodput_falls_as_the_job_grows():
    results = []
    for gpus in (1024, 2048, 4096):
        G = fabric.preset("meta-llama3", gpus=gpus)
        results.append(collectives.goodput(LLAMA70, plan70(gpus), G))
    assert results[0].goodput > results[1].goodput > results[2].goodput
    unexpected = [r.interruptions_per_day - r.interruptions["planned"] for r in results]
    assert unexpected[1] == pytest.approx(2 * unexpected[0]) and unexpected[2] == pytest.approx(4 * unexpected[0])


def test_dual_tor_turns_tor_and_cable_failures_into_slowdowns():
    plan = plan70(256)
    single = collectives.goodput(LLAMA70, plan, fabric.fat_tree(32, rail_optimized=False))
    dual = collectives.goodput(LLAMA70, plan, fabric.fat_tree(32, rail_optimized=False, dual_tor=True))
    assert single.interruptions["network"] > 0 and dual.interruptions["network"] == 0
    assert dual.domains["stopping_leaves"] == 0 and dual.domains["slowing_leaves"] > 0
    assert dual.interruptions_per_day < single.interruptions_per_day


def test_spares_and_the_checkpoint_interval():
    G = fabric.preset("meta-llama3", gpus=2048)
    step = collectives.estimate_step(LLAMA70, plan70(2048), G)
    at = {s: collectives.goodput(LLAMA70, plan70(2048), G, spares=s, step=step).goodput for s in (0, 1, 4, None)}
    assert at[0] < at[1] < at[4] <= at[None]
    best = collectives.goodput(LLAMA70, plan70(2048), G, step=step)
    for interval in (best.checkpoint_interval / 3, best.checkpoint_interval * 3):
        assert collectives.goodput(LLAMA70, plan70(2048), G, step=step, checkpoint_interval=interval).goodput \
            < best.goodput


@pytest.mark.parametrize("options, message", [
    (dict(rates={"gpu": 1}), "rates=.* must be a collectives.training.failures.FailureRates"),
    (dict(spares=-1), "spares=-1 must be a whole number"),
    (dict(storage_bandwidth=0), "storage_bandwidth=0 must be > 0"),
    (dict(step=1.5), "step=1.5 must be a StepEstimate"),
    (dict(checkpoint_interval=-5), "checkpoint_interval=-5 must be > 0"),
])
def test_bad_input_names_the_field(options, message):
    with pytest.raises(collectives.InvalidSpec, match=message):
        collectives.goodput(LLAMA70, plan70(32), fabric.dgx_superpod(4), **options)
