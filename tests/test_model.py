"""Transformer shapes, parallel plans and memory per GPU (collectives.training: model, plan, memory).

Published numbers are restated here from their sources, and the paper formulas are
written out literally in the tests (not taken from the code under test), so that a
wrong coefficient in the model fails here.
"""

import csv
import dataclasses
import re
from fractions import Fraction
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings, strategies as st

import fabric
from collectives.errors import InvalidSpec
from collectives.training.memory import memory_per_gpu, memory_per_stage
from collectives.training.model import MODELS, Transformer, padded_vocab
from collectives.training.plan import Parallelism

VALIDATION_DIR = Path(__file__).resolve().parents[2] / "shared" / "validation"
H100 = fabric.GPUS["H100"]


def _raises(message):
    """``pytest.raises`` for a collectives ``InvalidSpec`` whose whole message is ``message``."""
    return pytest.raises(InvalidSpec, match=rf"^{re.escape(message)}$")


def tiny(**kw):
    args = dict(layers=4, hidden=64, heads=8, seq_len=32, vocab=1000)
    args.update(kw)
    return Transformer(**args)


# ---------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------

# (preset, published total, tolerance, source)
PUBLISHED = [
    ("llama3-405b", 405e9, 0.01),  # Llama 3 paper: "405B parameters"
    ("llama3-70b", 70.6e9, 0.01),  # Meta model card / HF: 70.6B
    ("llama3-8b", 8.03e9, 0.01),  # Meta model card / HF: 8.03B
    ("gpt3-175b", 175e9, 0.01),  # Brown et al. 2020, Table 2.1: 175.0B
    ("mixtral-8x7b", 46.7e9, 0.02),  # Jiang et al. 2024: 47B total (HF: 46.7B)
]


@pytest.mark.parametrize("name, total, tol", PUBLISHED)
def test_parameter_counts_match_published_totals(name, total, tol):
    assert MODELS[name].parameters() == pytest.approx(total, rel=tol)


def test_mixtral_active_parameters():
    # Jiang et al. 2024: "13B active parameters" (12.9B in the model card)
    m = MODELS["mixtral-8x7b"]
    assert m.active_parameters() == pytest.approx(12.9e9, rel=0.02)
    assert m.parameters() == pytest.approx(46.7e9, rel=0.02)


def test_dense_models_have_all_parameters_active():
    for m in MODELS.values():
        if not m.is_moe:
            assert m.active_parameters() == m.parameters()


def test_parameter_count_by_hand():
    # h=64, a=8, g=2 -> kv_dim 16; SwiGLU f=96; V=1000 untied; L=4
    m = tiny(kv_heads=2, ffn_hidden=96, mlp="swiglu")
    attention = 2 * 64 * 64 + 2 * 64 * 16
    mlp = 3 * 64 * 96
    layer = attention + mlp + 2 * 64
    assert m.parameters() == 4 * layer + 2 * 1000 * 64 + 64
    assert dataclasses.replace(m, tied_embeddings=True).parameters() == 4 * layer + 1000 * 64 + 64


def test_moe_parameter_count_by_hand():
    # every other layer MoE (layers 0 and 2), 4 experts of f_e=32, top-2
    m = tiny(experts=4, top_k=2, expert_ffn_hidden=32, moe_every=2)
    attention = 4 * 64 * 64
    dense = attention + 2 * 64 * 256 + 2 * 64
    moe = attention + 4 * 2 * 64 * 32 + 64 * 4 + 2 * 64
    moe_active = attention + 2 * 2 * 64 * 32 + 64 * 4 + 2 * 64
    assert (m.moe_layers, m.dense_layers) == (2, 2)
    assert m.parameters() == 2 * dense + 2 * moe + 2 * 1000 * 64 + 64
    assert m.active_parameters() == 2 * dense + 2 * moe_active + 2 * 1000 * 64 + 64


def test_defaults_resolve_at_construction():
    m = tiny()
    assert (m.kv_heads, m.ffn_hidden, m.expert_ffn_hidden, m.head_dim, m.glu) == (8, 256, 256, 8, 1.0)
    assert tiny(mlp="swiglu").glu == 1.5
    assert tiny(ffn_hidden=100).expert_ffn_hidden == 100
    # replace() keeps resolved values unless they are passed again
    assert dataclasses.replace(m, hidden=128).ffn_hidden == 256
    assert dataclasses.replace(m, hidden=128, ffn_hidden=None).ffn_hidden == 512
    assert dataclasses.replace(m, heads=4, kv_heads=None).kv_heads == 4
    with _raises("kv_heads=8 must be <= 4"):
        dataclasses.replace(m, heads=4)
    assert tiny(kv_heads=None) == tiny(kv_heads=8)


def test_presets_are_named_and_frozen():
    for name, m in MODELS.items():
        assert m.name == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.layers = 1
    with pytest.raises(TypeError):
        MODELS["new"] = tiny()


def test_llama3_405b_shape_is_the_papers():
    m = MODELS["llama3-405b"]
    assert (m.layers, m.hidden, m.heads, m.kv_heads, m.ffn_hidden, m.vocab, m.seq_len, m.mlp) == (
        126, 16384, 128, 8, 53248, 128000, 8192, "swiglu")


# ---------------------------------------------------------------------------
# FLOPs
# ---------------------------------------------------------------------------


def design_formula(m):
    """DESIGN.md: 12 L h^2 (1 + g/a + s/h + (ffn/h) glu + V/(2 L h)), exact."""
    L, h, a, g, s, V, f = m.layers, m.hidden, m.heads, m.kv_heads, m.seq_len, m.vocab, m.ffn_hidden
    glu = Fraction(3, 2) if m.mlp == "swiglu" else 1
    return 12 * L * h**2 * (1 + Fraction(g, a) + Fraction(s, h) + Fraction(f, h) * glu + Fraction(V, 2 * L * h))


def megatron_per_token(L, h, s, V):
    """Megatron-LM (SC'21; Korthikanti et al. 2022): 72 B s L h^2 (1 + s/(6h) + V/(12 L h)) per iteration / (B s)."""
    return 72 * L * h**2 * (1 + Fraction(s, 6 * h) + Fraction(V, 12 * L * h))


@pytest.mark.parametrize("name", [n for n in MODELS if not MODELS[n].is_moe])
def test_flops_equal_the_design_formula(name):
    m = MODELS[name]
    assert m.flops_per_token() == design_formula(m)


def test_design_formula_is_megatrons_for_gpt_shapes():
    m = MODELS["gpt3-175b"]
    L, h, s, V = m.layers, m.hidden, m.seq_len, m.vocab
    # the algebra: 72 L h^2 + 12 L h s + 6 h V on both sides
    assert megatron_per_token(L, h, s, V) == 72 * L * h**2 + 12 * L * h * s + 6 * h * V
    assert design_formula(m) == megatron_per_token(L, h, s, V)
    assert m.flops_per_token() == megatron_per_token(L, h, s, V)


@settings(max_examples=200, deadline=None)
@given(
    L=st.integers(1, 200), a=st.integers(1, 64), d=st.integers(1, 256),
    s=st.integers(1, 2**17), V=st.integers(1, 300_000),
)
def test_design_formula_equals_megatron_for_any_gpt_shape(L, a, d, s, V):
    m = Transformer(layers=L, hidden=a * d, heads=a, seq_len=s, vocab=V)
    assert m.flops_per_token() == design_formula(m) == megatron_per_token(L, a * d, s, V)


def test_megatron_formula_matches_every_validation_row():
    path = VALIDATION_DIR / "training.csv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    rows = list(csv.DictReader(line for line in path.open() if not line.startswith("#")))
    assert rows
    for r in rows:
        L, h, s, V = int(r["layers"]), int(r["hidden"]), int(r["seq_len"]), int(r["vocab"])
        m = Transformer(layers=L, hidden=h, heads=int(r["heads"]), seq_len=s, vocab=V)
        assert m.flops_per_token() == megatron_per_token(L, h, s, V)


def test_flops_are_about_6n_for_large_models():
    m = MODELS["gpt3-175b"]
    assert m.flops_per_token() == pytest.approx(6 * m.parameters(), rel=0.05)


def test_flops_are_three_forward_passes_of_the_operator_breakdown():
    for m in list(MODELS.values()) + [tiny(experts=4, top_k=2, moe_every=2)]:
        forward = m.logits_forward_flops(1)
        for i in range(m.layers):
            forward += sum(m.layer_forward_flops(1, kind="moe" if m.is_moe_layer(i) else "dense").values())
        assert m.flops_per_token() == 3 * forward


def test_layer_forward_flops_by_hand():
    m = tiny(kv_heads=2, ffn_hidden=96, mlp="swiglu")  # h=64, kv_dim=16, s=32
    t = 10
    assert m.layer_forward_flops(t) == {
        "qkv": 2 * t * 64 * (64 + 32),
        "scores": 2 * t * 32 * 64,  # full s, causal not halved
        "context": 2 * t * 32 * 64,
        "output": 2 * t * 64 * 64,
        "mlp": 2 * t * 3 * 64 * 96,
        "router": 0,
    }
    assert m.logits_forward_flops(t) == 2 * t * 64 * 1000


def test_moe_flops_count_top_k_experts_and_the_router():
    moe = tiny(experts=8, top_k=2, expert_ffn_hidden=48, mlp="swiglu")
    f = moe.layer_forward_flops(5, kind="moe")
    assert f["mlp"] == 2 * 5 * 3 * 64 * 48 * 2
    assert f["router"] == 2 * 5 * 64 * 8
    # same as a dense model whose FFN is top_k * expert_ffn, plus the router
    dense = tiny(ffn_hidden=96, mlp="swiglu")
    assert moe.flops_per_token() == dense.flops_per_token() + 3 * moe.layers * 2 * 64 * 8


def test_layer_kind_errors():
    with _raises("kind='moe' needs experts > 1, got experts=1"):
        tiny().layer_forward_flops(1, kind="moe")
    with _raises("kind='mamba' must be one of 'dense', 'moe'"):
        tiny().layer_forward_flops(1, kind="mamba")


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
    with _raises("recompute='some' must be one of 'none', 'selective', 'full'"):
        m.activation_bytes_per_layer(1, 1, False, "some")
    with _raises("micro_batch=0 must be >= 1"):
        m.activation_bytes_per_layer(0, 1, False, "full")
    with _raises("sequence_parallel=1 must be True or False"):
        m.activation_bytes_per_layer(1, 1, 1, "full")


# ---------------------------------------------------------------------------
# Transformer validation
# ---------------------------------------------------------------------------

TRANSFORMER_ERRORS = [
    (dict(heads=128, hidden=256, kv_heads=7), "heads=128 must be divisible by kv_heads=7"),
    (dict(kv_heads=16), "kv_heads=16 must be <= 8"),
    (dict(kv_heads=0), "kv_heads=0 must be >= 1"),
    (dict(hidden=100), "hidden=100 must be divisible by heads=8"),
    (dict(layers=0), "layers=0 must be >= 1"),
    (dict(layers=2.0), "layers=2.0 must be an integer"),
    (dict(hidden=True), "hidden=True must be an integer"),
    (dict(heads=-1), "heads=-1 must be >= 1"),
    (dict(ffn_hidden=0), "ffn_hidden=0 must be >= 1"),
    (dict(mlp="relu"), "mlp='relu' must be one of 'gelu', 'swiglu'"),
    (dict(seq_len=0), "seq_len=0 must be >= 1"),
    (dict(vocab="50k"), "vocab='50k' must be an integer"),
    (dict(tied_embeddings=1), "tied_embeddings=1 must be True or False"),
    (dict(experts=0), "experts=0 must be >= 1"),
    (dict(top_k=2), "top_k=2 must be <= experts=1"),
    (dict(experts=4, top_k=0), "top_k=0 must be >= 1"),
    (dict(expert_ffn_hidden=-5), "expert_ffn_hidden=-5 must be >= 1"),
    (dict(moe_every=0), "moe_every=0 must be >= 1"),
    (dict(moe_every=5), "moe_every=5 must be <= layers=4"),
    (dict(dropout=None), "dropout=None must be True or False"),
    (dict(name=7), "name=7 must be a string or None"),
]


@pytest.mark.parametrize("kw, message", TRANSFORMER_ERRORS)
def test_transformer_errors(kw, message):
    with _raises(message):
        tiny(**kw)


def test_transformer_errors_are_value_errors_and_fabric_errors():
    with pytest.raises(ValueError):
        tiny(layers=0)
    with pytest.raises(fabric.InvalidSpec):
        tiny(layers=0)


def test_replace_validates_again():
    with _raises("heads=128 must be divisible by kv_heads=7"):
        dataclasses.replace(MODELS["llama3-405b"], kv_heads=7)


def test_transformer_is_keyword_only():
    with pytest.raises(TypeError):
        Transformer(4, 64, 8, seq_len=32, vocab=10)


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
    (dict(dp=8, ep=3, global_batch=8), "ep=3 must divide dp=8"),
    (dict(ep=2, global_batch=8), "ep=2 must divide dp=1"),
    (dict(recompute="partial", global_batch=8), "recompute='partial' must be one of 'none', 'selective', 'full'"),
    (dict(zero=4, global_batch=8), "zero=4 must be <= 3"),
    (dict(zero=-1, global_batch=8), "zero=-1 must be >= 0"),
    (dict(zero=True, global_batch=8), "zero=True must be an integer"),
    (dict(precision="fp32", global_batch=8), "precision='fp32' must be one of 'bf16', 'fp16', 'fp8'"),
    (dict(sequence_parallel="yes", global_batch=8), "sequence_parallel='yes' must be True or False"),
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
    # ZeRO-3 shards the weights too, and holds two gathered layers (current + prefetch)
    z3 = memory_per_gpu(m, dataclasses.replace(plan, zero=3))
    assert z3["weights"] == pytest.approx(2 * params / 4 + 2 * 2 * layer_tp)
    assert z3["gradients"] + z3["optimizer"] == pytest.approx(16 * params / 4)


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
    m = MODELS["llama3-70b"]
    base = dict(tp=8, pp=4, dp=4, global_batch=64)
    totals = [memory_per_gpu(m, Parallelism(**base, zero=z))["total"] for z in range(4)]
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
    """Every run in ../shared/validation/training.csv trained, so it must fit in its GPU's HBM.

    SC'21 predates the distributed optimizer (zero=0); the Megatron-Core H100 runs use it (zero=1).
    Micro-batch 1 and no interleaving (not given by the sources).
    """
    path = VALIDATION_DIR / "training.csv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    rows = list(csv.DictReader(line for line in path.open() if not line.startswith("#")))
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
