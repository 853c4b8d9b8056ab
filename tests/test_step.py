"""Training step estimator: published runs, consistency, fabric effects, errors."""

import dataclasses

import numpy as np
import pytest

import collectives
import fabric
from collectives.training import calibration
from collectives.training.compute import DEFAULT_COMPUTE, peak_flops

MEDIAN_TOLERANCE = 0.10  # issue: median error over the calibration runs within 10%


@pytest.fixture(scope="module")
def published():
    return calibration.report()


def test_calibration_runs_median_error_within_tolerance(published):
    lines, errors = published
    print("\n".join(lines))
    assert np.median(np.abs(errors)) <= MEDIAN_TOLERANCE
    # every row of the SC'21 and Megatron-LM tables within 25%: no row is wildly off
    tables = [e for run, e in zip(calibration.calibration_runs(), errors) if run.file == "training.csv"]
    assert len(tables) == 19 and np.max(np.abs(tables)) <= 0.25


def test_compute_efficiencies_are_the_fit_to_the_published_runs():
    # DEFAULT_COMPUTE carries the GEMM efficiency fitted to every published run off GB200
    fitted, errors = calibration.fit()
    assert fitted.gemm_efficiency == pytest.approx(DEFAULT_COMPUTE.gemm_efficiency, abs=0.003)
    assert fitted.kernel_overhead == pytest.approx(DEFAULT_COMPUTE.kernel_overhead, abs=1e-6)
    assert len(errors) == len(calibration.calibration_runs()) and np.median(np.abs(errors)) <= MEDIAN_TOLERANCE


def test_gb200_matmul_rates_are_the_fit_to_its_published_runs():
    # no GB200 matmul benchmark is published: fabric.GPUS carries the rates fitted to every
    # published GB200 run together, and the fit lands within its tolerance of them
    gpu = fabric.GPUS["GB200"]
    fitted, errors = calibration.fit_gpu_rates("GB200")
    assert fitted.matmul_efficiency == pytest.approx(gpu.matmul_efficiency, abs=0.003)
    assert fitted.fp8_matmul_efficiency == pytest.approx(gpu.fp8_matmul_efficiency, abs=0.003)
    assert len(errors) == 10 and np.median(np.abs(errors)) <= 0.07


def llama8b_plan(**overrides):
    return collectives.Parallelism(**{"tp": 8, "dp": 4, "global_batch": 64, **overrides})


def test_breakdown_adds_up_and_mfu_is_consistent():
    G = fabric.dgx_superpod(4)
    model = collectives.MODELS["llama3-8b"]
    est = collectives.estimate_step(model, llama8b_plan(), G, level="analytic")
    assert sum(est.breakdown.values()) == pytest.approx(est.time)
    assert all(v >= 0 for v in est.breakdown.values())
    flops = model.flops_per_token() * 64 * model.seq_len
    assert est.mfu == pytest.approx(flops / (est.time * 32 * peak_flops(G.graph["gpu"], "bf16")))
    assert est.tokens_per_second == pytest.approx(64 * model.seq_len / est.time)
    assert est.energy > 32 * G.graph["gpu"].power * est.time  # GPUs plus the network


def test_levels_agree_on_a_non_blocking_fabric():
    G = fabric.dgx_superpod(4)
    model = collectives.MODELS["llama3-8b"]
    plan = llama8b_plan(tp=2, pp=2, dp=8)
    flow = collectives.estimate_step(model, plan, G, level="flow")
    analytic = collectives.estimate_step(model, plan, G, level="analytic")
    assert flow.time == pytest.approx(analytic.time, rel=1e-6)


def test_an_oversubscribed_fabric_slows_expert_parallel_training():
    # Mixtral with experts spread over 16 servers: every all-to-all crosses the leaves.
    model = collectives.MODELS["mixtral-8x7b"]
    plan = collectives.Parallelism(tp=8, dp=16, ep=8, global_batch=64)
    full = fabric.fat_tree(16, switch="tomahawk4", rail_optimized=False, routing="adaptive", tiers=2)
    thin = fabric.fat_tree(16, switch="tomahawk4", rail_optimized=False, routing="adaptive", tiers=2,
                           oversubscription=3)
    t_full = collectives.estimate_step(model, plan, full, level="flow")
    t_thin = collectives.estimate_step(model, plan, thin, level="flow")
    assert t_thin.breakdown["ep_communication"] > 1.5 * t_full.breakdown["ep_communication"]
    assert t_thin.time > t_full.time


def test_more_pipeline_stages_add_bubble():
    G = fabric.dgx_superpod(4)
    model = collectives.MODELS["llama3-8b"]
    few = collectives.estimate_step(model, llama8b_plan(tp=8, pp=1, dp=4), G, level="analytic")
    many = collectives.estimate_step(model, llama8b_plan(tp=8, pp=4, dp=1), G, level="analytic")
    assert few.breakdown["pipeline_bubble"] == 0
    assert many.breakdown["pipeline_bubble"] > 0


def test_recompute_costs_time_and_saves_memory():
    G = fabric.dgx_superpod(4)
    model = collectives.MODELS["llama3-8b"]
    none = collectives.estimate_step(model, llama8b_plan(recompute="none"), G, level="analytic")
    full = collectives.estimate_step(model, llama8b_plan(recompute="full"), G, level="analytic")
    assert full.time > none.time
    assert full.memory_per_gpu < none.memory_per_gpu


def test_fp8_is_faster_on_hopper_and_refused_on_ampere():
    model = collectives.MODELS["llama3-8b"]
    h100 = fabric.dgx_superpod(4)
    bf16 = collectives.estimate_step(model, llama8b_plan(), h100, level="analytic")
    fp8 = collectives.estimate_step(model, llama8b_plan(precision="fp8"), h100, level="analytic")
    assert fp8.time < bf16.time
    with pytest.raises(collectives.InvalidSpec, match="precision='fp8' needs FP8 tensor cores; A100"):
        collectives.estimate_step(model, llama8b_plan(precision="fp8"), fabric.dgx_superpod(4, gpu="A100"),
                                  level="analytic")


def test_fp8_linears_quantize_their_inputs_forward_and_output_gradients_backward(monkeypatch):
    # a dense GQA layer at tp=1: the FP8 linears read (per token) h (QKV), h (output
    # projection), h (fc1) and ffn (fc2) forward; backward the gradients of their outputs:
    # q + k + v, h, 2 ffn (SwiGLU's gate and up) and h; 4 bytes per element each (FP8_CAST_BYTES)
    from collectives.training import layer
    from collectives.training.communication import Communication
    from collectives.training.compute import DEFAULT_COMPUTE

    G = fabric.dgx_superpod(1)
    gpu, model = G.graph["gpu"], collectives.MODELS["llama3-8b"]
    plan = collectives.Parallelism(tp=1, dp=8, global_batch=8, precision="fp8")
    comm = Communication(G, "analytic", collectives.DEFAULT_PARAMS)
    with_casts = layer.layer_times(model, plan, gpu, comm, DEFAULT_COMPUTE, moe=False)
    monkeypatch.setattr(layer, "fp8_cast_time", lambda elements, gpu, params: 0.0)
    without = layer.layer_times(model, plan, gpu, comm, DEFAULT_COMPUTE, moe=False)
    h, ffn, tokens = model.hidden, model.ffn_hidden, model.seq_len
    q_k_v = h + 2 * model.kv_heads * h // model.heads
    assert with_casts.forward - without.forward == pytest.approx(4 * tokens * (3 * h + ffn) / gpu.hbm_bandwidth)
    assert with_casts.backward - without.backward == pytest.approx(
        4 * tokens * (q_k_v + 2 * h + 2 * ffn) / gpu.hbm_bandwidth)


def test_moe_runs_its_all_to_all():
    G = fabric.dgx_superpod(4)
    model = collectives.MODELS["mixtral-8x7b"]
    plan = collectives.Parallelism(tp=4, dp=8, ep=8, global_batch=64)
    est = collectives.estimate_step(model, plan, G, level="analytic")
    assert est.breakdown["ep_communication"] > 0


@pytest.mark.parametrize(
    "plan, message",
    [
        (dict(tp=8, dp=2, global_batch=64), "must equal the fabric's 32 GPUs"),
        (dict(tp=3, dp=1, global_batch=64), "tp=3 must divide"),
    ],
)
def test_a_plan_that_does_not_fit_the_fabric_is_named(plan, message):
    with pytest.raises(collectives.InvalidSpec, match=message):
        collectives.estimate_step(collectives.MODELS["llama3-8b"], collectives.Parallelism(**plan),
                                  fabric.dgx_superpod(4), level="analytic")


def test_bad_level_is_rejected():
    with pytest.raises(collectives.InvalidSpec, match="level='packet'"):
        collectives.estimate_step(collectives.MODELS["llama3-8b"], llama8b_plan(), fabric.dgx_superpod(4),
                                  level="packet")


def test_estimate_renders():
    est = collectives.estimate_step(collectives.MODELS["llama3-8b"], llama8b_plan(), fabric.dgx_superpod(4),
                                    level="analytic")
    assert "MFU" in str(est) and "<table>" in est._repr_html_()


def test_fp16_reduces_gradients_in_half_the_bytes_of_bf16():
    # Megatron-LM all-reduces bf16 gradients in fp32 (forced) and fp16 ones in fp16
    G = fabric.dgx_superpod(4, gpu="A100")
    model = collectives.MODELS["llama3-8b"]
    plan = dict(tp=8, dp=4, global_batch=16, zero=0, overlap_grad_reduce=False)
    bf16 = collectives.estimate_step(model, collectives.Parallelism(**plan), G, level="analytic")
    fp16 = collectives.estimate_step(model, collectives.Parallelism(**plan, precision="fp16"), G, level="analytic")
    assert fp16.breakdown["compute"] == pytest.approx(bf16.breakdown["compute"])
    assert 0.45 < fp16.breakdown["dp_communication"] / bf16.breakdown["dp_communication"] < 0.55
    assert fp16.memory_breakdown["gradients"] == pytest.approx(bf16.memory_breakdown["gradients"] / 2)


def test_a_larger_vocabulary_costs_its_cross_entropy_bytes():
    G = fabric.dgx_superpod(1, gpu="H100")
    base = collectives.MODELS["llama3-8b"]
    plan = collectives.Parallelism(tp=8, global_batch=8)
    small = collectives.estimate_step(base, plan, G, level="analytic")
    large = collectives.estimate_step(dataclasses.replace(base, vocab=2 * base.vocab), plan, G, level="analytic")
    extra = large.breakdown["compute"] - small.breakdown["compute"]
    # the logit GEMMs (forward and two backward) plus 52 bytes per logit through HBM, 8 micro-batches
    gpu = G.graph["gpu"]
    tokens, shard = 8 * base.seq_len, base.vocab // 8
    gemms = 3 * 2 * tokens * shard * base.hidden / (gpu.bf16_flops * gpu.matmul_efficiency
                                                     * collectives.training.compute.DEFAULT_COMPUTE.gemm_efficiency)
    memory = 52 * tokens * shard / gpu.hbm_bandwidth
    assert extra == pytest.approx(gemms + memory, rel=0.05)


def test_a_plan_that_does_not_fit_is_estimated_with_a_memory_warning():
    G = fabric.dgx_superpod(1)
    plan = collectives.Parallelism(dp=8, global_batch=8, zero=0)  # GPT-3 175B unsharded on 8 GPUs
    with pytest.warns(collectives.MemoryWarning, match=r"needs \d+\.\d GiB per GPU; H100 has 76\.1 GiB usable"):
        est = collectives.estimate_step(collectives.MODELS["gpt3-175b"], plan, G, level="analytic")
    assert not est.fits and est.time > 0


def test_a_plan_that_fits_gives_no_memory_warning(recwarn):
    est = collectives.estimate_step(collectives.MODELS["llama3-8b"], llama8b_plan(), fabric.dgx_superpod(4),
                                    level="analytic")
    assert est.fits
    assert not [w for w in recwarn if issubclass(w.category, collectives.MemoryWarning)]


def test_a_job_on_part_of_a_fabric_is_the_job_on_a_fabric_of_its_size():
    model, plan = collectives.MODELS["llama3-8b"], collectives.Parallelism(tp=8, dp=2, global_batch=32)
    alone = collectives.estimate_step(model, plan, fabric.dgx_superpod(2), level="flow")
    part = collectives.estimate_step(model, plan, fabric.dgx_superpod(4), level="flow", ranks=range(16, 32))
    assert part.time == pytest.approx(alone.time, rel=1e-9)
    assert part.memory_per_gpu == alone.memory_per_gpu


def test_a_job_on_part_of_two_nvl72_racks_pays_its_share_of_the_network():
    model = collectives.MODELS["llama3-70b"]
    plan = collectives.Parallelism(tp=4, pp=4, dp=8, global_batch=64)
    G = fabric.nvl72(2)
    job = [r for r in range(144) if r % 72 < 64]
    est = collectives.estimate_step(model, plan, G, level="analytic", ranks=job)
    network = fabric.bill_of_materials(G).network_watts
    assert est.energy == pytest.approx((G.graph["gpu"].power * 128 + network * 128 / 144) * est.time)


@pytest.mark.parametrize("ranks, message", [
    ([0, 0] + list(range(2, 16)), "ranks contains rank 0 twice"),
    (list(range(8)) + [40] * 8, "ranks contains rank 40, outside 0..31"),
    ([], "ranks is empty"),
    (list(range(8)), "tp*pp*dp*cp=16 must equal the 8 GPUs of ranks="),
])
def test_bad_job_ranks_are_refused(ranks, message):
    with pytest.raises(collectives.InvalidSpec, match=message.replace("*", r"\*").replace(".", r"\.")):
        collectives.estimate_step(collectives.MODELS["llama3-8b"], llama8b_plan(dp=2, global_batch=32),
                                  fabric.dgx_superpod(4), level="analytic", ranks=ranks)


def test_search_on_part_of_a_fabric_finds_what_a_fabric_of_its_size_finds():
    model = collectives.MODELS["llama3-8b"]
    part = collectives.search(model, fabric.dgx_superpod(4), global_batch=32, ranks=range(16), progress=False, top=5)
    alone = collectives.search(model, fabric.dgx_superpod(2), global_batch=32, progress=False, top=5)
    assert [(e.plan, e.time) for e in part] == [(e.plan, e.time) for e in alone]


@pytest.mark.parametrize("level", ["flow", "analytic"])
def test_groups_laid_out_differently_over_racks_run_their_own_algorithms(level):
    # two 64-GPU groups on two NVL72 racks: one inside rack 0, one across both (8 + 56). NCCL
    # picks an algorithm per communicator; one algorithm for both (NVLS has one step inside a
    # rack and two across) cannot be solved together, so each layout is priced on its own
    from collectives.training.communication import Communication

    comm = Communication(fabric.nvl72(2), level, collectives.DEFAULT_PARAMS)
    groups = np.arange(128).reshape(2, 64)
    both = comm.time("all_reduce", groups, 2**30, concurrent=True)
    alone = [comm.time("all_reduce", groups[i:i + 1].copy(), 2**30, concurrent=True) for i in range(2)]
    assert both == max(alone) and alone[1] > alone[0]


def test_an_estimate_names_bf16_main_gradients_only_when_asked_for():
    model, G = collectives.MODELS["llama3-8b"], fabric.dgx_superpod(2)
    default = collectives.estimate_step(model, llama8b_plan(dp=2, global_batch=32), G, level="analytic")
    half = collectives.estimate_step(model, llama8b_plan(dp=2, global_batch=32, grad_reduce_in_fp32=False), G,
                                     level="analytic")
    assert "grad_reduce_in_fp32" not in default.plan and half.plan["grad_reduce_in_fp32"] is False
    assert half.memory_breakdown["gradients"] == pytest.approx(default.memory_breakdown["gradients"] / 2)
