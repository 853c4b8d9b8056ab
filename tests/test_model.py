"""Transformer shapes, parameter and FLOP counts (collectives.training.model).

Published numbers are restated here from their sources, and the paper formulas are
written out literally in the tests (not taken from the code under test), so that a
wrong coefficient in the model fails here.
"""

import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

import fabric
from collectives.training.model import Transformer
from collectives.training.presets import MODELS
from collectives.data import read_rows
from training_cases import raises_exactly as _raises, tiny

H100 = fabric.GPUS["H100"]


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
    rows = read_rows("training.csv")
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


def test_deepseek_v3_has_its_published_parameter_counts():
    # DeepSeek-V3 report (arXiv 2412.19437): 671B total parameters, 37B activated per token
    # (the multi-token-prediction module is not counted here)
    m = MODELS["deepseek-v3"]
    assert m.parameters() / 1e9 == pytest.approx(671, rel=0.005)
    assert m.active_parameters() / 1e9 == pytest.approx(37, rel=0.02)
    assert (m.moe_layers, m.dense_layers) == (58, 3)


def test_latent_attention_parameters_are_megatrons_formula():
    # megatron/training/theoretical_memory_usage.py, multi_latent_attention (norm weights left out):
    # q_lora (h + a (qk + rope)) + kv_lora (h + a (qk + v)) + h rope + a v h
    m = MODELS["deepseek-v3"]
    h, a, qk, rope, v, ql, kvl = 7168, 128, 128, 64, 128, 1536, 512
    assert m.attention_parameters() == ql * (h + a * (qk + rope)) + kvl * (h + a * (qk + v)) + h * rope + a * v * h
    flops = m.layer_forward_flops(1, kind="moe")
    assert flops["scores"] == 2 * m.seq_len * a * (qk + rope) and flops["context"] == 2 * m.seq_len * a * v


def test_latent_attention_needs_its_dimensions():
    with _raises("kv_lora_rank=512 (latent attention) needs qk_head_dim and v_head_dim, got None and None"):
        tiny(kv_lora_rank=512)
    with _raises("q_lora_rank, qk_head_dim and v_head_dim describe latent attention: give kv_lora_rank too"):
        tiny(qk_head_dim=16)
