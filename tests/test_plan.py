"""Parallel plans alone and against a model and a GPU count (collectives.training.plan).

Published numbers are restated here from their sources, and the paper formulas are
written out literally in the tests (not taken from the code under test), so that a
wrong coefficient in the model fails here.
"""

import dataclasses

import networkx as nx
import pytest
from hypothesis import given, settings, strategies as st

import fabric
from collectives.training.model import padded_vocab
from collectives.training.presets import MODELS
from collectives.training.plan import Parallelism, ep_groups
from training_cases import raises_exactly as _raises, tiny

H100 = fabric.GPUS["H100"]


# ---------------------------------------------------------------------------
# Parallelism: validation of the plan alone
# ---------------------------------------------------------------------------

PLAN_ERRORS = [
    (dict(dp=64, global_batch=100), "global_batch=100 must be divisible by dp*micro_batch=64"),
    (dict(dp=8, micro_batch=4, global_batch=48), "global_batch=48 must be divisible by dp*micro_batch=32"),
    (dict(tp=0, global_batch=8), "tp=0 must be >= 1"),
    (dict(pp=1.5, global_batch=8), "pp=1.5 must be an integer"),
    (dict(cp=-2, global_batch=8), "cp=-2 must be >= 1"),
    (dict(global_batch=0), "global_batch=0 must be >= 1"),
    (dict(micro_batch=0, global_batch=8), "micro_batch=0 must be >= 1"),
    (dict(virtual_stages=0, global_batch=8), "virtual_stages=0 must be >= 1"),
    (dict(virtual_stages=2, global_batch=8), "virtual_stages=2 needs pp > 1, got pp=1"),
    (dict(dp=8, ep=3, global_batch=8), "ep*etp=3 must divide tp*cp*dp=8: the MoE layers fold a stage's tp x cp x dp ranks into etp x ep x expert data parallel"),
    (dict(ep=2, global_batch=8), "ep*etp=2 must divide tp*cp*dp=1: the MoE layers fold a stage's tp x cp x dp ranks into etp x ep x expert data parallel"),
    (dict(tp=2, dp=4, ep=8, global_batch=8), "ep*etp=16 must divide tp*cp*dp=8: the MoE layers fold a stage's tp x cp x dp ranks into etp x ep x expert data parallel"),
    (dict(etp=0, global_batch=8), "etp=0 must be >= 1"),
    (dict(recompute="partial", global_batch=8), "recompute='partial' must be one of 'none', 'selective', 'full', 'op'"),
    (dict(zero=4, global_batch=8), "zero=4 must be <= 3"),
    (dict(zero=-1, global_batch=8), "zero=-1 must be >= 0"),
    (dict(zero=True, global_batch=8), "zero=True must be an integer"),
    (dict(precision="fp32", global_batch=8), "precision='fp32' must be one of 'bf16', 'fp16', 'fp8'"),
    (dict(sequence_parallel="yes", global_batch=8), "sequence_parallel='yes' must be True or False"),
    (dict(grad_reduce_in_fp32=1, global_batch=8), "grad_reduce_in_fp32=1 must be True or False"),
]


@pytest.mark.parametrize("kw, message", PLAN_ERRORS)
def test_plan_errors(kw, message):
    with _raises(message):
        Parallelism(**kw)


def test_plan_needs_global_batch_and_keywords():
    with pytest.raises(TypeError):
        Parallelism(tp=8)
    with pytest.raises(TypeError):
        Parallelism(8, 16, 128, global_batch=2048)


def test_plan_properties_and_defaults():
    plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048)
    assert (plan.world_size, plan.micro_batches) == (16384, 16)
    assert (plan.cp, plan.ep, plan.micro_batch, plan.virtual_stages) == (1, 1, 1, 1)
    assert (plan.sequence_parallel, plan.recompute, plan.zero, plan.precision) == (True, "selective", 1, "bf16")
    assert Parallelism(tp=2, cp=4, dp=3, micro_batch=2, global_batch=12).world_size == 24
    assert Parallelism(tp=2, cp=4, dp=3, micro_batch=2, global_batch=12).micro_batches == 2
    # main gradients in fp32 unless fp16 (Megatron-LM's default), or as given
    assert [Parallelism(global_batch=1, precision=p).grad_reduce_in_fp32 for p in ("bf16", "fp8", "fp16")] == \
        [True, True, False]
    assert not Parallelism(global_batch=1, grad_reduce_in_fp32=False).grad_reduce_in_fp32
    # sequence parallelism at tp=1 is allowed (no effect)
    Parallelism(tp=1, sequence_parallel=True, global_batch=1)


# ---------------------------------------------------------------------------
# Parallelism against a model and a GPU count
# ---------------------------------------------------------------------------

CHECK_ERRORS = [
    ("llama3-405b", dict(tp=3, global_batch=1, sequence_parallel=False),
     "tp=3 must divide heads=128; tp=3 must divide kv_heads=8; tp=3 must divide ffn_hidden=53248"),
    ("llama3-405b", dict(tp=16, global_batch=1), "tp=16 must divide kv_heads=8"),
    ("mixtral-8x7b", dict(dp=3, ep=3, global_batch=3), "ep=3 must divide experts=8"),
    ("gpt3-175b", dict(dp=2, ep=2, global_batch=2), "ep=2 must divide experts=1"),
    ("gpt3-175b", dict(cp=3, global_batch=1), "seq_len=2048 must be divisible by 2*cp=6"),
    ("gpt3-175b", dict(tp=3, global_batch=1), "seq_len=2048 must be divisible by tp*cp=3 with sequence_parallel"),
    ("llama3-405b", dict(pp=16, virtual_stages=8, global_batch=16), "pp*virtual_stages=128 must be <= layers=126"),
]


@pytest.mark.parametrize("name, kw, message", CHECK_ERRORS)
def test_check_against_errors(name, kw, message):
    with _raises(message):
        Parallelism(**kw).check_against(MODELS[name])


def test_check_against_gpu_count():
    plan = Parallelism(tp=8, pp=16, dp=8, global_batch=16)
    with _raises("tp*pp*dp*cp=1024 must equal the fabric's 2048 GPUs"):
        plan.check_against(MODELS["llama3-405b"], gpus=2048)
    plan.check_against(MODELS["llama3-405b"], gpus=1024)
    with _raises("gpus=0 must be >= 1"):
        plan.check_against(MODELS["llama3-405b"], gpus=0)


def test_check_against_counts_a_fabrics_gpus():
    G = fabric.dgx_superpod(2, gpu="H100")  # 16 GPUs
    Parallelism(tp=8, dp=2, global_batch=2).check_against(MODELS["llama3-8b"], gpus=G)
    with _raises("tp*pp*dp*cp=8 must equal the fabric's 16 GPUs"):
        Parallelism(tp=8, global_batch=2).check_against(MODELS["llama3-8b"], gpus=G)
    toy = nx.DiGraph()
    toy.add_nodes_from([("g0", {"kind": "gpu"}), ("s0", {"kind": "switch"})])
    Parallelism(global_batch=1).check_against(MODELS["llama3-8b"], gpus=toy)


def test_check_against_rejects_a_non_model():
    with _raises("model='llama' must be a Transformer"):
        Parallelism(global_batch=1).check_against("llama")


def test_meta_405b_plans_are_valid():
    # Llama 3 paper, Table 4: 8K and 16K GPUs at seq 8192, 16K GPUs with CP 16 at 131,072.
    m = MODELS["llama3-405b"]
    Parallelism(tp=8, pp=16, dp=64, global_batch=2048).check_against(m, gpus=8192)
    Parallelism(tp=8, pp=16, dp=128, global_batch=2048).check_against(m, gpus=16384)
    Parallelism(tp=8, cp=16, pp=16, dp=8, global_batch=128).check_against(
        dataclasses.replace(m, seq_len=131072), gpus=16384)


def test_uneven_layer_split_is_allowed():
    # 126 layers are not divisible by pp=16; Megatron-LM would need first/last-stage layer options
    Parallelism(tp=8, pp=16, dp=128, global_batch=2048).check_against(MODELS["llama3-405b"], gpus=16384)


# ---------------------------------------------------------------------------
# Vocabulary padding and layer split
# ---------------------------------------------------------------------------


def test_padded_vocab():
    assert padded_vocab(MODELS["gpt3-175b"], 4) == 50688  # 99 x 512
    assert padded_vocab(MODELS["gpt3-175b"], 1) == 50304  # Megatron's well-known GPT-2 padding
    assert padded_vocab(MODELS["gpt3-175b"], 8) == 51200
    assert padded_vocab(MODELS["llama3-405b"], 8) == 128000  # already a multiple of 1024
    assert padded_vocab(32000, 3) == 32256
    with _raises("tp=0 must be >= 1"):
        padded_vocab(32000, 0)


@settings(max_examples=200, deadline=None)
@given(vocab=st.integers(1, 10**6), tp=st.integers(1, 64))
def test_padded_vocab_is_the_next_multiple(vocab, tp):
    p = padded_vocab(vocab, tp)
    assert p % (128 * tp) == 0 and vocab <= p < vocab + 128 * tp


def test_layers_per_stage():
    m = MODELS["llama3-405b"]
    # Llama 3 paper section 3.3.2: one layer fewer on the first and the last stage
    assert Parallelism(pp=16, global_batch=16).layers_per_stage(m) == [7] + [8] * 14 + [7]
    assert Parallelism(pp=2, global_batch=1).layers_per_stage(m) == [63, 63]
    assert Parallelism(pp=4, global_batch=1).layers_per_stage(tiny(layers=6)) == [1, 2, 2, 1]
    assert Parallelism(pp=4, global_batch=1).layers_per_stage(tiny(layers=7)) == [1, 2, 2, 2]
    assert Parallelism(pp=4, global_batch=1).layers_per_stage(tiny(layers=5)) == [1, 2, 1, 1]
    assert Parallelism(pp=1, global_batch=1).layers_per_stage(m) == [126]
    # virtual stages: pp * v chunks in pipeline order
    chunks = Parallelism(pp=4, virtual_stages=2, global_batch=4).layers_per_stage(tiny(layers=12))
    assert chunks == [1, 2, 2, 2, 2, 1, 1, 1]
    with _raises("pp*virtual_stages=8 must be <= layers=4"):
        Parallelism(pp=4, virtual_stages=2, global_batch=4).layers_per_stage(tiny())


@settings(max_examples=200, deadline=None)
@given(layers=st.integers(1, 200), pp=st.integers(1, 32), v=st.integers(1, 4))
def test_layer_split_properties(layers, pp, v):
    if pp * v > layers or (v > 1 and pp == 1):
        return
    counts = Parallelism(pp=pp, virtual_stages=v, global_batch=1).layers_per_stage(tiny(layers=layers))
    assert len(counts) == pp * v and sum(counts) == layers
    assert max(counts) - min(counts) <= 1 and min(counts) >= 1
    # the first stage never holds more layers than the others
    assert counts[0] == min(counts)


def test_experts_fold_over_tp_cp_dp_as_megatron_core():
    # DeepSeek-V3 on 1,024 H100: tp2 pp16 dp32 with ep64 and etp1 (dgxc-benchmarking)
    plan = Parallelism(tp=2, pp=16, dp=32, ep=64, etp=1, global_batch=8192)
    assert plan.expert_dp == 1
    groups = ep_groups(plan)
    assert groups.shape == (16, 64) and groups[0].tolist() == list(range(64))
    assert groups[1].tolist() == list(range(64, 128))  # the next pipeline stage
    # etp defaults to tp; with cp=1 expert groups are ep consecutive data-parallel replicas
    plan = Parallelism(tp=4, dp=8, ep=4, global_batch=8)
    assert plan.etp == 4 and plan.expert_dp == 2
    assert ep_groups(plan)[0].tolist() == [0, 4, 8, 12]
    assert sorted(ep_groups(plan).ravel().tolist()) == list(range(32))
