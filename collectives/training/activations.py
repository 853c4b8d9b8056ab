"""What one transformer layer keeps for backward: its activations, by recompute choice.

After Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models" (arXiv 2205.05198), generalised to grouped-query and latent attention, SwiGLU,
mixture-of-experts layers, flash attention, FP8 and torchtitan's per-op checkpointing. What
a whole plan keeps on each GPU is :mod:`collectives.training.memory`.

Examples
--------
>>> from collectives.training.presets import MODELS
>>> m = MODELS["gpt3-175b"]
>>> layer_activation_bytes(m, 1, 8, True, "selective") / (m.seq_len * m.hidden / 8)
34.0
"""

from fabric import checks

from collectives.errors import collectives_errors

# "op" is torchtitan's per-operator selective checkpointing (PyTorch selective activation
# checkpointing with its policy: keep the attention outputs and every other matmul output,
# recompute the rest), the others Megatron-LM's.
RECOMPUTE = ("none", "selective", "full", "op")

# Activations are stored in 16-bit (bf16/fp16), dropout masks in 1 byte per element, as in
# Korthikanti et al. 2022, section 4.1; the activation coefficients below fold these sizes in.
# FP8 training keeps the inputs of its FP8 GEMMs in 1 byte (see _activation_coefficients).
PRECISIONS = ("bf16", "fp16", "fp8")


def _activation_coefficients(model, kind, local_seq, flash_attention, fp8):
    """(replicated, tp_sharded, scores) multipliers of ``s b h`` bytes for one layer."""
    h, a = model.hidden, model.heads
    d = 1 if model.dropout else 0
    # FP8 GEMMs keep their inputs for the weight gradient as the 1-byte FP8 cast, not in 16 bits
    # (Transformer Engine Linear/LayerNormLinear save the quantised input; FP8 recipes of
    # Megatron-Core and NeMo) [mem: TE source, not found in a public document]: ``gemm_in``.
    gemm_in = 1 if fp8 else 2
    # Not split by TP without sequence parallelism: two norm inputs 4, QKV input, MLP input
    # (an MoE layer's is the router's, kept in 16 bits), a 1-byte dropout mask after
    # attention and one after the MLP.
    replicated = 4 + gemm_in + (2 if kind == "moe" else gemm_in) + 2 * d
    # Split by TP: Q 2, K and V 2 g/a each, attention output (projection input); in general
    # 2 bytes per element of the Q, K and V widths and the output's a v_dim. Latent attention
    # also keeps its latents (the up projections' inputs), replicated like the layer input.
    q, k, v = model.attention_widths()
    attention = 2 * (q + k + v) / h + gemm_in * a * model.v_dim / h
    if model.mla:
        replicated += 2 * ((model.q_lora_rank or 0) + model.kv_lora_rank + model.qk_rope_head_dim) / h
    if kind == "moe":
        # Each of top_k expert copies of a token: its dispatched input (the expert fc1 input),
        # fc1 output and activation output (the fc2 input): 2 glu f_e / h + f_e / h each.
        ffn = model.expert_ffn_hidden
        mlp = model.top_k * (gemm_in + (4 * model.glu - 2 + gemm_in) * ffn / h)
        # shared experts read the layer's MLP input (counted above) and keep their own fc1
        # output and activation output
        mlp += model.shared_experts * (4 * model.glu - 2 + gemm_in) * ffn / h
    else:
        # fc1 output (activation input) 2f/h per output and activation output (fc2 input):
        # GELU 2f/h + 2f/h; SwiGLU 2 x 2f/h (gate and up) + 2f/h, i.e. 4 glu f/h in 16 bits.
        mlp = (4 * model.glu - 2 + gemm_in) * model.ffn_hidden / h
    if flash_attention:
        # FlashAttention keeps no s x s matrix: backward recomputes the scores from Q, K, V
        # and the softmax statistics it saves, one fp32 log-sum-exp per head and token
        # (Dao et al. 2022, section 3.1; dropout is replayed from the RNG state, no mask).
        return replicated, attention + mlp, 4 * a / h
    # Attention scores a s^2 b: softmax output 2, dropout mask 1, dropout output 2 (5);
    # without dropout only the softmax output (2). Per s b h: (5 or 2) a s / h.
    scores = (5 if model.dropout else 2) * a * local_seq / h
    return replicated, attention + mlp, scores


def _op_checkpoint_coefficient(model, kind, sp, t, flash_attention):
    """Bytes per ``s b h`` one layer keeps under torchtitan's per-op checkpointing
    (``recompute="op"``): the layer input (2, the checkpoint's own input), the attention
    output (2) and its softmax statistics, and half of the matmul outputs in 16 bits
    (torchtitan saves every other ``mm``: of Q, K, V, O and the MLP's fc1/gate, up and
    down projections); norms, activations and the other matmuls are recomputed. Megatron
    layouts split the sharded part ``t`` ways (the input too with sequence parallelism)."""
    h, a = model.hidden, model.heads
    ffn = model.expert_ffn_hidden if kind == "moe" else model.ffn_hidden
    copies = model.top_k + model.shared_experts if kind == "moe" else 1
    f_wide = 2 if model.mlp == "swiglu" else 1  # gate and up, or fc1: outputs of ffn width
    # Q, K and V (2 + 2 g/a + 2 g/a for ordinary attention), O 2; per MLP copy its f-wide
    # outputs and the h-wide down projection
    q, k, v = model.attention_widths()
    outputs = 2 * (q + k + v) / h + 2 + copies * 2 * (f_wide * ffn / h + 1)
    sharded = 2 + (4 * a / h if flash_attention else 0.0) + outputs / 2
    return (2 + sharded) / t if sp else 2 + sharded / t


def layer_activation_bytes(model, micro_batch, tp, sequence_parallel, recompute, cp=1, *, kind=None,
                           flash_attention=False, precision="bf16"):
    """Activation bytes one layer keeps for backward, per micro-batch, on one GPU.

    Korthikanti et al. 2022 (Table 2), with ``s`` replaced by ``s / cp`` under context
    parallelism:

    ==========================  ===============================================
    no parallelism              ``s b h (34 + 5 a s / h)``
    tensor parallel (no SP)     ``s b h (10 + 24/t + 5 a s / (h t))``
    tensor + sequence parallel  ``s b h / t (34 + 5 a s / h)``
    selective recompute         the ``5 a s / h`` term dropped
    full recompute              ``2 s b h`` (``/ t`` with sequence parallelism)
    ==========================  ===============================================

    The paper's 34 is, in bytes per ``s b h`` (16-bit activations, 1-byte masks):
    attention 11 = QKV input 2 + Q and K 4 + V 2 + projection input 2 + dropout mask 1;
    MLP 19 = input 2 + GELU input 8 + GELU output 8 + dropout mask 1; two norm inputs 4;
    the 10 of the TP row are the parts outside the TP region (norm inputs 4, QKV and MLP
    inputs 2 + 2, the two dropout masks 2). The same derivation for other shapes gives
    ``34 -> 8 + 2 d + (4 + 4 g/a) + 4 glu f / h`` (``d`` = 1 with dropout): K and V
    shrink to ``g/a`` of Q with grouped-query attention; the MLP stores its ``f``-wide
    activation input and output, and SwiGLU's input is two ``f``-wide tensors (gate
    and up), so ``2f/h + 2f/h`` becomes ``4f/h + 2f/h = 4 glu f/h``. An MoE layer
    stores, for each of ``top_k`` expert copies of a token, its dispatched input (2) and
    that expert's MLP activations (``4 glu f_e / h``), split ``t`` ways like the dense
    MLP (router probabilities, ``s b experts``, are negligible). Without dropout the
    masks go (``d = 0``) and the scores term is ``2 a s / h`` (softmax output only).
    These generalisations are derived here, not taken from the paper; for GPT shapes
    with dropout they reproduce its 34 exactly.

    With ``flash_attention`` (the Megatron-Core, Transformer Engine and torchtitan default)
    no score matrix is kept whatever the recompute choice: the ``a s / h`` term becomes
    the softmax statistics, ``4 a / h`` (one fp32 value per head and token, split by TP).
    Without it, "none" keeps the materialised scores of the 2021 kernels. With
    ``precision="fp8"`` the inputs of the FP8 GEMMs (QKV, projection, MLP fc1 and fc2) are
    kept as 1-byte casts: ``34`` becomes ``27`` for GPT-3 with dropout.

    Parameters
    ----------
    micro_batch, tp, cp : int
        ``b``, ``t`` and the context-parallel size.
    sequence_parallel : bool
        Megatron-LM sequence parallelism (no effect at ``tp=1``).
    recompute : {"none", "selective", "full", "op"}
        Megatron-LM's choices, or torchtitan's per-op checkpointing (``"op"``).
    kind : {"dense", "moe"}, optional
        Layer type; default ``"moe"`` for an MoE model, else ``"dense"``.
    flash_attention : bool
        Fused attention that never writes the scores (default False: the paper's kernels).
    precision : {"bf16", "fp16", "fp8"}
        GEMM precision (fp8 keeps 1-byte GEMM inputs).

    Returns
    -------
    float
        Bytes.

    Examples
    --------
    >>> from collectives.training.presets import MODELS
    >>> m = MODELS["gpt3-175b"]
    >>> sbh = m.seq_len * 1 * m.hidden
    >>> layer_activation_bytes(m, 1, 8, True, "selective") == 34 * sbh / 8
    True
    >>> layer_activation_bytes(m, 1, 1, False, "none") == sbh * (34 + 5 * 96 * 2048 / 12288)
    True
    >>> layer_activation_bytes(m, 1, 1, False, "none", flash_attention=True) == sbh * (34 + 4 * 96 / 12288)
    True
    >>> layer_activation_bytes(m, 1, 1, False, "selective", precision="fp8") / sbh
    27.0
    """
    kind = model.layer_kind(kind)
    with collectives_errors():
        b = checks.require_int("micro_batch", micro_batch, minimum=1)
        t = checks.require_int("tp", tp, minimum=1)
        cp = checks.require_int("cp", cp, minimum=1)
        checks.require_bool("sequence_parallel", sequence_parallel)
        checks.require_choice("recompute", recompute, RECOMPUTE)
        checks.require_bool("flash_attention", flash_attention)
        checks.require_choice("precision", precision, PRECISIONS)
    local_seq = model.seq_len / cp
    sbh = local_seq * b * model.hidden
    sp = sequence_parallel and t > 1
    if recompute == "full":
        return 2 * sbh / (t if sp else 1)
    if recompute == "op":
        return sbh * _op_checkpoint_coefficient(model, kind, sp, t, flash_attention)
    replicated, sharded, scores = _activation_coefficients(model, kind, local_seq, flash_attention,
                                                           precision == "fp8")
    if recompute == "selective":
        # Megatron checkpoints the core attention: only its inputs (Q, K, V) are kept
        scores = 0.0
    if sp:
        return sbh * (replicated + sharded + scores) / t
    return sbh * (replicated + (sharded + scores) / t)
