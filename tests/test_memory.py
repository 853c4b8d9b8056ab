"""Activation memory and memory per GPU (collectives.training.memory).

Published numbers are restated here from their sources, and the paper formulas are
written out literally in the tests (not taken from the code under test), so that a
wrong coefficient in the model fails here.
"""

import dataclasses

import pytest

import fabric
from collectives.training.activations import layer_activation_bytes
from collectives.training.memory import memory_per_gpu, memory_per_stage
from collectives.training.model import Transformer, padded_vocab
from collectives.training.presets import MODELS
from collectives.training.plan import Parallelism
from collectives.data import read_rows
from training_cases import raises_exactly as _raises, tiny

H100 = fabric.GPUS["H100"]


# ---------------------------------------------------------------------------
# Activation memory: Korthikanti et al. 2022, Table 2, written out here
# ---------------------------------------------------------------------------

# GPT models of the paper's evaluation: (heads, hidden, layers); s = 2048, t = 8
KORTHIKANTI_MODELS = {
    "22B": (64, 6144, 48), "175B": (96, 12288, 96), "530B": (128, 20480, 105), "1T": (160, 25600, 128),
}


@pytest.mark.parametrize("size", KORTHIKANTI_MODELS)
@pytest.mark.parametrize("b", [1, 4])
def test_korthikanti_table_2(size, b):
    a, h, L = KORTHIKANTI_MODELS[size]
    s, t = 2048, 8
    m = Transformer(layers=L, hidden=h, heads=a, seq_len=s, vocab=51200)
    act = m.activation_bytes_per_layer
    sbh = s * b * h
    assert act(b, 1, False, "none") == pytest.approx(sbh * (34 + 5 * a * s / h), rel=1e-12)
    assert act(b, t, False, "none") == pytest.approx(sbh * (10 + 24 / t + 5 * a * s / (h * t)), rel=1e-12)
    assert act(b, t, True, "none") == pytest.approx(sbh / t * (34 + 5 * a * s / h), rel=1e-12)
    assert act(b, t, False, "selective") == pytest.approx(sbh * (10 + 24 / t), rel=1e-12)
    assert act(b, t, True, "selective") == pytest.approx(34 * sbh / t, rel=1e-12)
    assert act(b, t, False, "full") == pytest.approx(2 * sbh, rel=1e-12)
    assert act(b, t, True, "full") == pytest.approx(2 * sbh / t, rel=1e-12)
    # sequence parallelism has no effect without tensor parallelism
    assert act(b, 1, True, "none") == act(b, 1, False, "none")


def test_korthikanti_gpt3_numbers():
    # GPT-3 175B, s=2048, b=1, t=8: 5as/h = 5*96*2048/12288 = 80 > 34, so selective
    # recompute saves 80/(34+80) = 70% of activation memory.
    m = MODELS["gpt3-175b"]
    assert 5 * 96 * 2048 / 12288 == 80
    full_store = m.activation_bytes_per_layer(1, 8, True, "none")
    selective = m.activation_bytes_per_layer(1, 8, True, "selective")
    assert selective == 34 * 2048 * 12288 / 8 == 106_954_752
    assert full_store == 114 * 2048 * 12288 / 8
    assert 1 - selective / full_store == pytest.approx(80 / 114)


def test_context_parallel_divides_the_sequence():
    m = MODELS["gpt3-175b"]
    for recompute in ("none", "selective", "full"):
        short = dataclasses.replace(m, seq_len=m.seq_len // 4)
        assert m.activation_bytes_per_layer(2, 8, True, recompute, cp=4) == short.activation_bytes_per_layer(
            2, 8, True, recompute)


def test_activation_generalisation_for_gqa_and_swiglu():
    # derivation in the docstring: 8 + 2d + (4 + 4 g/a) + 4 glu f/h, without dropout d = 0
    m = MODELS["llama3-405b"]  # g/a = 1/16, f/h = 3.25, SwiGLU, no dropout
    sbh = 8192 * 16384
    assert m.activation_bytes_per_layer(1, 8, True, "selective") == pytest.approx(
        sbh / 8 * (8 + 4 + 4 / 16 + 4 * 1.5 * 3.25))
    with_dropout = dataclasses.replace(m, dropout=True)
    assert with_dropout.activation_bytes_per_layer(1, 8, True, "selective") == pytest.approx(
        sbh / 8 * (10 + 4 + 4 / 16 + 4 * 1.5 * 3.25))
    # no dropout: scores keep only the softmax output, 2 a s / h
    assert m.activation_bytes_per_layer(1, 1, False, "none") - m.activation_bytes_per_layer(
        1, 1, False, "selective") == pytest.approx(sbh * 2 * 128 * 8192 / 16384)


def test_moe_layer_activations():
    m = tiny(experts=4, top_k=2, expert_ffn_hidden=32, dropout=False)
    sbh = 32 * 64
    # replicated 8, attention 4 + 4 g/a = 8, each of top_k copies: input 2 + 4 f_e/h = 2
    assert m.activation_bytes_per_layer(1, 1, False, "selective", kind="moe") == sbh * (8 + 8 + 2 * (2 + 2))
    assert m.activation_bytes_per_layer(1, 1, False, "selective", kind="dense") == sbh * (8 + 8 + 16)


def test_activation_argument_errors():
    m = tiny()
    with _raises("recompute='some' must be one of 'none', 'selective', 'full', 'op'"):
        m.activation_bytes_per_layer(1, 1, False, "some")
    with _raises("micro_batch=0 must be >= 1"):
        m.activation_bytes_per_layer(0, 1, False, "full")
    with _raises("sequence_parallel=1 must be True or False"):
        m.activation_bytes_per_layer(1, 1, 1, "full")


# ---------------------------------------------------------------------------
# Memory per GPU
# ---------------------------------------------------------------------------


def test_parameters_per_gpu():
    m = MODELS["llama3-405b"]
    plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048)
    layer = 2 * 16384**2 + 2 * 16384 * 1024 + 3 * 16384 * 53248
    # 8 layers on the middle ranks outweigh 7 layers + the embedding on the first
    assert 8 * layer / 8 > 7 * layer / 8 + 128000 * 16384 / 8
    assert plan.parameters_per_gpu(m) == pytest.approx(8 * (layer / 8 + 2 * 16384))
    # one stage: everything, over tp
    whole = Parallelism(tp=1, global_batch=1).parameters_per_gpu(MODELS["llama3-8b"])
    assert whole == MODELS["llama3-8b"].parameters()  # vocab 128000 needs no padding at tp=1


def test_memory_breakdown_keys_and_total():
    mem = memory_per_gpu(MODELS["llama3-8b"], Parallelism(tp=2, pp=2, dp=2, global_batch=8))
    assert set(mem) == {"weights", "gradients", "optimizer", "activations", "total"}
    assert mem["total"] == pytest.approx(mem["weights"] + mem["gradients"] + mem["optimizer"] + mem["activations"])


def test_memory_states_by_hand_pp1():
    # tp=2, pp=1, dp=4: every parameter on one stage; h=64, V padded to 1024 at tp=2 (untied)
    m = tiny()
    plan = Parallelism(tp=2, dp=4, global_batch=4, zero=0)
    vocab = padded_vocab(m, 2)
    assert vocab == 1024
    layer_tp = (4 * 64 * 64 + 2 * 64 * 256) / 2 + 2 * 64  # attention and MLP split, norms replicated
    params = 4 * layer_tp + 2 * vocab * 64 / 2 + 64
    mem = memory_per_gpu(m, plan)
    assert mem["weights"] == pytest.approx(2 * params)
    assert mem["gradients"] == pytest.approx(4 * params)
    assert mem["optimizer"] == pytest.approx(12 * params)
    # ZeRO-1 (Megatron distributed optimizer): 6 + 12/d bytes per parameter
    z1 = memory_per_gpu(m, dataclasses.replace(plan, zero=1))
    assert z1["weights"] + z1["gradients"] + z1["optimizer"] == pytest.approx((6 + 12 / 4) * params)
    z2 = memory_per_gpu(m, dataclasses.replace(plan, zero=2))
    assert z2["weights"] + z2["gradients"] + z2["optimizer"] == pytest.approx((2 + 16 / 4) * params)
    # ZeRO-3 shards the weights too, and holds two gathered layers (current + prefetch) and
    # the unsharded fp32 gradients of two layers (just computed + being reduce-scattered)
    z3 = memory_per_gpu(m, dataclasses.replace(plan, zero=3))
    assert z3["weights"] == pytest.approx(2 * params / 4 + 2 * 2 * layer_tp)
    assert z3["gradients"] == pytest.approx(4 * params / 4 + 4 * 2 * layer_tp)
    assert z3["optimizer"] == pytest.approx(12 * params / 4)


def test_bf16_main_gradients_take_two_bytes_per_parameter():
    # grad_reduce_in_fp32=False (NeMo's FP8 performance recipes): 16-bit main gradients, so the
    # distributed optimizer's 6 + 12/d bytes per parameter become 4 + 12/d
    m = MODELS["llama3-8b"]
    plan = Parallelism(dp=8, global_batch=8, grad_reduce_in_fp32=False)
    mem = memory_per_gpu(m, plan)
    assert mem["gradients"] == pytest.approx(mem["weights"])
    fp32 = memory_per_gpu(m, dataclasses.replace(plan, grad_reduce_in_fp32=True))
    assert fp32["gradients"] == pytest.approx(2 * mem["gradients"])
    assert fp32["optimizer"] == mem["optimizer"] and fp32["activations"] == mem["activations"]


def test_megatron_distributed_optimizer_18_bytes():
    # Megatron-LM docs: bf16 params + fp32 grads: 18 B/param without, 6 + 12/d with the distributed optimizer
    m = MODELS["llama3-8b"]
    for zero, per_param in ((0, 18), (1, 6 + 12 / 8)):
        mem = memory_per_gpu(m, Parallelism(dp=8, global_batch=8, zero=zero))
        states = mem["weights"] + mem["gradients"] + mem["optimizer"]
        params_on_gpu = mem["weights"] / 2
        assert states == pytest.approx(per_param * params_on_gpu)
    assert params_on_gpu == padded_vocab(m, 1) * 4096 * 2 - m.vocab * 4096 * 2 + m.parameters()


def test_cp_shards_the_optimizer_with_dp():
    m = MODELS["llama3-8b"]
    a = memory_per_gpu(m, Parallelism(dp=4, cp=2, global_batch=4))
    b = memory_per_gpu(m, Parallelism(dp=8, global_batch=8))
    assert a["optimizer"] == pytest.approx(b["optimizer"])


def test_first_stage_holds_l_layers_of_activations():
    # Korthikanti et al. 2022 section 4.2.3: 1F1B's first stage stores p micro-batches of
    # L/p layers = L layers, plus the embedding dropout mask s b h p / t (section 4.3).
    a, h, L, s, t, p = 96, 12288, 96, 2048, 8, 8
    m = Transformer(layers=L, hidden=h, heads=a, seq_len=s, vocab=51200)
    plan = Parallelism(tp=t, pp=p, dp=1, global_batch=64)
    first = memory_per_stage(m, plan)[0]
    assert first["activations"] == pytest.approx(34 * s * h * L / t + s * h * p / t)
    # the last stage: one micro-batch, plus the output layer 4 s b h / t (1 + V / h)
    last = memory_per_stage(m, plan)[-1]
    assert last["activations"] == pytest.approx(34 * s * h * (L / p) / t + 4 * s * h / t * (1 + 51200 / h))


def test_interleaved_first_stage_memory_factor():
    # Korthikanti et al. 2022 section 4.2.3: interleaving multiplies the first stage's
    # activation memory by 1 + (p - 1) / (p v)
    a, h, L, s, t, p, v = 96, 12288, 96, 2048, 8, 4, 3
    m = Transformer(layers=L, hidden=h, heads=a, seq_len=s, vocab=51200, dropout=False)
    plan = Parallelism(tp=t, pp=p, virtual_stages=v, global_batch=64)
    first = memory_per_stage(m, plan)[0]
    per_layer = m.activation_bytes_per_layer(1, t, True, "selective")
    assert first["activations"] == pytest.approx(L * per_layer * (1 + (p - 1) / (p * v)))


def test_fewer_micro_batches_than_stages_hold_fewer():
    m = MODELS["gpt3-175b"]
    few = memory_per_stage(m, Parallelism(tp=8, pp=8, global_batch=2))[0]["activations"]
    many = memory_per_stage(m, Parallelism(tp=8, pp=8, global_batch=64))[0]["activations"]
    assert few == pytest.approx(many * 2 / 8)


def test_full_recompute_keeps_layer_inputs_plus_one_layer():
    m = MODELS["gpt3-175b"]
    plan = Parallelism(tp=8, pp=1, global_batch=1, recompute="full")
    sbh = 2048 * 12288
    mem = memory_per_gpu(m, plan)
    expected = 96 * 2 * sbh / 8 + sbh / 8 + 4 * sbh / 8 * (1 + padded_vocab(m, 8) / 12288) + 34 * sbh / 8
    assert mem["activations"] == pytest.approx(expected)


def test_memory_never_grows_with_more_sharding():
    # without pipelining: with pp > 1 FSDP keeps the stage gathered (torchtitan's default), so
    # zero=3 there holds more than zero=2 (test_fsdp_with_pipelining_keeps_the_stage_gathered)
    m = MODELS["llama3-70b"]
    base = dict(tp=8, pp=4, dp=4, global_batch=64)
    totals = [memory_per_gpu(m, Parallelism(**dict(base, pp=1, dp=16), zero=z))["total"] for z in range(4)]
    assert totals == sorted(totals, reverse=True)
    recompute = [memory_per_gpu(m, Parallelism(**base, recompute=r))["activations"]
                 for r in ("none", "selective", "full")]
    assert recompute == sorted(recompute, reverse=True)
    no_sp = memory_per_gpu(m, Parallelism(**base, sequence_parallel=False))["activations"]
    assert no_sp > memory_per_gpu(m, Parallelism(**base))["activations"]


def test_fp8_keeps_bf16_weights_and_adds_fp8_copies():
    m = MODELS["llama3-8b"]
    bf16 = memory_per_gpu(m, Parallelism(tp=8, global_batch=1))
    fp8 = memory_per_gpu(m, Parallelism(tp=8, global_batch=1, precision="fp8"))
    layer_gemm = 32 * (2 * 4096**2 + 2 * 4096 * 1024 + 3 * 4096 * 14336) / 8
    assert fp8["weights"] - bf16["weights"] == pytest.approx(2 * layer_gemm)
    assert fp8["optimizer"] == bf16["optimizer"]


def test_moe_layers_hold_their_dispatch_buffers():
    from collectives.training.memory import _dispatch_buffer_bytes

    moe = tiny(experts=4, top_k=2)
    plan = Parallelism(tp=2, dp=4, ep=4, global_batch=4)
    # send + receive, s b / tp tokens gathered over etp = tp: 32 tokens, 2 copies of 64 bf16 values
    assert _dispatch_buffer_bytes(moe, plan) == 2 * 32 * 2 * 64 * 2
    assert _dispatch_buffer_bytes(moe, dataclasses.replace(plan, etp=1)) == 2 * 16 * 2 * 64 * 2
    with_buffers = memory_per_gpu(moe, plan)["activations"]
    kept = 4 * layer_activation_bytes(moe, 1, 2, True, "selective", flash_attention=True)
    assert with_buffers >= kept + _dispatch_buffer_bytes(moe, plan)


def test_moe_memory_splits_experts_over_ep():
    m = MODELS["mixtral-8x7b"]
    ep1 = memory_per_gpu(m, Parallelism(tp=2, dp=8, global_batch=8))
    ep8 = memory_per_gpu(m, Parallelism(tp=2, dp=8, ep=8, global_batch=8))
    experts = 32 * 8 * 3 * 4096 * 14336 / 2  # per GPU at ep=1
    assert ep1["weights"] - ep8["weights"] == pytest.approx(2 * experts * (1 - 1 / 8))
    # expert optimizer state is sharded over dp*cp/ep = 1 rank at ep=8: unchanged per expert
    dense_part = ep8["optimizer"] - 12 * experts / 8
    assert dense_part == pytest.approx(ep1["optimizer"] - 12 * experts / 8)


def test_llama3_405b_meta_plan_fits_with_sharded_gradients():
    """Llama 3 405B on 16,384 H100s, TP 8, PP 16, DP 128, 8K sequences (Llama 3 paper, Table 4).

    Meta: "Our use of FSDP for Llama 3 shards optimizer states and gradients, but for model
    shards we do not reshard after forward computation" (zero=2 here) and "we could pre-train
    Llama 3 on sequences of 8K tokens without activation checkpointing" (with flash attention
    that stores what "selective" stores). Batch: 16M tokens = 2,048 sequences.
    """
    m = MODELS["llama3-405b"]
    plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048, recompute="selective", zero=2)
    plan.check_against(m, gpus=16384)
    mem = memory_per_gpu(m, plan)
    assert mem["total"] < H100.hbm_bytes
    assert mem["activations"] > 0.8 * mem["total"]  # activations dominate


def test_llama3_405b_zero1_pays_the_fp32_gradient_buffer():
    # With zero=1 (Megatron's distributed optimizer) the fp32 main-gradient buffer is not
    # sharded: 4 B per local parameter instead of 4/d, ~12.7 GB more on the worst stage.
    m = MODELS["llama3-405b"]
    plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048, zero=1)
    z1 = memory_per_gpu(m, plan)
    z2 = memory_per_gpu(m, dataclasses.replace(plan, zero=2))
    local_params = z1["weights"] / 2
    assert z1["total"] - z2["total"] == pytest.approx(4 * local_params * (1 - 1 / 128))
    assert z1["total"] < 80 * fabric.units.GiB  # within the 80 GiB an H100 physically has


def test_gpt3_on_eight_gpus_data_parallel_does_not_fit():
    mem = memory_per_gpu(MODELS["gpt3-175b"], Parallelism(tp=1, pp=1, dp=8, global_batch=8))
    assert mem["total"] > H100.hbm_bytes
    assert mem["weights"] == pytest.approx(2 * (MODELS["gpt3-175b"].parameters() + (50304 - 50257) * 12288))


def test_published_megatron_runs_fit():
    """Every run in training.csv trained, so it must fit in its GPU's HBM.

    SC'21 predates the distributed optimizer (zero=0); the Megatron-Core H100 runs use it (zero=1).
    Micro-batch 1 and no interleaving (not given by the sources).
    """
    rows = read_rows("training.csv")
    assert len(rows) == 19
    for r in rows:
        m = Transformer(layers=int(r["layers"]), hidden=int(r["hidden"]), heads=int(r["heads"]),
                        seq_len=int(r["seq_len"]), vocab=int(r["vocab"]))
        plan = Parallelism(tp=int(r["tp"]), pp=int(r["pp"]), dp=int(r["dp"]), global_batch=int(r["global_batch"]),
                           recompute=r["recompute"], sequence_parallel=r["sequence_parallel"] == "true",
                           zero=0 if r["source"] == "sc21" else 1)
        plan.check_against(m, gpus=int(r["gpus"]))
        assert memory_per_gpu(m, plan)["total"] < fabric.GPUS[r["gpu"]].hbm_bytes, r


def test_memory_checks_the_plan_against_the_model():
    with _raises("tp=3 must divide heads=8; tp=3 must divide kv_heads=8; tp=3 must divide ffn_hidden=256"):
        memory_per_gpu(tiny(), Parallelism(tp=3, global_batch=1, sequence_parallel=False))


def test_torchtitan_op_checkpointing_by_hand():
    # recompute="op": layer input 2, attention output 2 and its statistics 4a/h, and half of
    # the matmul outputs (Q 2, K and V 2g/a each, O 2, SwiGLU gate and up 2f/h each, down 2)
    m = tiny(mlp="swiglu", kv_heads=2, dropout=False)
    h, a, g, f = 64, 8, 2, 256
    outputs = 2 + 4 * g / a + 2 + 2 * (2 * f / h + 1)
    per_sbh = 2 + 2 + 4 * a / h + outputs / 2
    sbh = 32 * 1 * 64
    assert layer_activation_bytes(m, 1, 1, False, "op", flash_attention=True) == pytest.approx(sbh * per_sbh)
    assert layer_activation_bytes(m, 1, 2, True, "op", flash_attention=True) == pytest.approx(sbh * per_sbh / 2)


def test_fsdp_with_pipelining_keeps_the_stage_gathered():
    m = tiny(layers=8)
    flat = memory_per_gpu(m, Parallelism(pp=2, dp=4, global_batch=8, zero=3))
    deep = memory_per_gpu(m, Parallelism(pp=1, dp=8, global_batch=8, zero=3))
    assert flat["weights"] > deep["weights"] and flat["gradients"] > deep["gradients"]


def test_the_unfused_loss_keeps_three_and_a_half_times_the_logits():
    m = tiny()
    plan = Parallelism(dp=1, global_batch=1)
    fused = memory_per_gpu(m, plan)["activations"]
    unfused = memory_per_gpu(m, dataclasses.replace(plan, fused_cross_entropy=False))["activations"]
    # the last stage's s b = 32 tokens over the padded vocabulary, 14 bytes a logit instead of 4
    assert unfused - fused == pytest.approx((14 - 4) * 32 * padded_vocab(m, 1))


def _megatron_theoretical_memory(m, tp, pp, dp, vocab):
    """Megatron-LM's documented estimate (megatron/training/theoretical_memory_usage.py, with
    the distributed optimizer, sequence parallelism and selective recompute), written out:
    weights and optimizer ``(block / pp + embedding) / tp * (6 + 12 / dp)``; activations of the
    first stage ``s b h (18 + 4 f / h) L / tp`` plus the embedding's ``(8 s b + s b h) pp / tp``
    (1F1B, as many micro-batches as stages in flight); the output layer only when pp = 1."""
    h, L, f, s = m.hidden, m.layers, m.ffn_hidden, m.seq_len
    gated = 1.5 if m.mlp == "swiglu" else 1
    attention = 2 * h * h * (1 + m.kv_heads / m.heads)
    layer = 2 * h * (f * gated + 1) + attention  # RMSNorm: one weight vector per norm
    block = layer * L + h
    embedding = h * vocab
    weights_and_optimizer = (block / pp + embedding) / tp * (6 + 12 / dp)
    activations = (s * h * (18 + 4 * f / h) * L + 8 * s * pp + s * h * pp) / tp
    return weights_and_optimizer + activations


@pytest.mark.parametrize("name, tp, pp, dp", [("gpt3-175b", 8, 8, 16), ("llama3-70b", 8, 4, 32)])
def test_first_stage_memory_within_10_percent_of_megatrons_formula(name, tp, pp, dp):
    m = dataclasses.replace(MODELS[name], dropout=True)  # Megatron's 18 + 4f/h counts the dropout masks
    plan = Parallelism(tp=tp, pp=pp, dp=dp, global_batch=dp * 4 * pp, zero=1, recompute="selective")
    first = memory_per_stage(m, plan)[0]
    megatron = _megatron_theoretical_memory(m, tp, pp, dp, padded_vocab(m, tp))
    assert first["total"] == pytest.approx(megatron, rel=0.10)
