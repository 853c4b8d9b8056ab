"""Transformer shapes, parallelism plans, and the memory a plan needs per GPU.

Three things live here, all pure arithmetic (no fabric, no timing):

- :class:`Transformer`: a decoder-only transformer (dense or mixture-of-experts), with
  parameter counts, model FLOPs and the per-layer activation memory of Korthikanti et al.
  2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv 2205.05198).
- :class:`Parallelism`: a Megatron-LM style plan (TP, PP, DP, CP, EP, micro-batching,
  interleaving, sequence parallelism, recompute, ZeRO stage, precision), validated alone at
  construction and against a model and a GPU count by :meth:`Parallelism.check_against`.
- :func:`memory_per_gpu` / :func:`memory_per_stage`: weights, gradients, optimizer state and
  activations per GPU, stage by stage.

Conventions: ``s`` sequence length, ``b`` micro-batch, ``h`` hidden size, ``a`` attention
heads, ``g`` KV heads (query groups), ``f`` FFN size, ``V`` vocabulary, ``L`` layers, ``t``
tensor-parallel size, ``p`` pipeline-parallel size, ``v`` virtual stages per pipeline rank,
``m`` micro-batches per step. Bytes and FLOPs are plain numbers (SI, no prefixes).

Examples
--------
>>> from collectives.model import MODELS, Parallelism, memory_per_gpu
>>> model = MODELS["llama3-405b"]
>>> round(model.parameters() / 1e9, 1)
405.8
>>> plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048, zero=2)
>>> plan.check_against(model, gpus=16384)
>>> mem = memory_per_gpu(model, plan)
>>> round(mem["total"] / 1e9, 1)
70.7
"""

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Optional

import numpy as np

from fabric import checks
from fabric import errors as fabric_errors
from fabric.schema import gpu_count

from collectives.errors import InvalidSpec

MLPS = ("gelu", "swiglu")
RECOMPUTE = ("none", "selective", "full")
PRECISIONS = ("bf16", "fp16", "fp8")
ZERO_STAGES = (0, 1, 2, 3)

# Activations are stored in 16-bit (bf16/fp16), dropout masks in 1 byte per element, as in
# Korthikanti et al. 2022, section 4.1; the activation coefficients below fold these sizes in.
# FP8 training is counted the same (Transformer Engine keeps some GEMM inputs in FP8: less).
ACTIVATION_BYTES = 2
# Megatron-LM pads the vocabulary to a multiple of make_vocab_size_divisible_by (default 128)
# times the tensor-parallel size (megatron/training/tokenizer: _vocab_size_with_padding).
MAKE_VOCAB_SIZE_DIVISIBLE_BY = 128
# Bytes per parameter of the Megatron-LM distributed-optimizer path with bf16 parameters and
# fp32 gradients (Megatron-LM docs, "Distributed optimizer": 18 bytes/param unsharded,
# 6 + 12/d sharded): bf16 parameter 2, fp32 main gradient 4, Adam fp32 master parameter 4 +
# first moment 4 + second moment 4 = 12. The 12 is ZeRO's K = 12 (Rajbhandari et al. 2020,
# "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", section 3.1, whose
# 16 bytes/param = 2 + 2 + 12 assume fp16 gradients; Megatron keeps gradients in fp32).
WEIGHT_BYTES = 2
GRADIENT_BYTES = 4
OPTIMIZER_BYTES = 12
# fp16 training keeps main gradients (and reduces them) in fp16 unless
# --accumulate-allreduce-grads-in-fp32 is given; bf16 forces fp32 (Megatron-LM
# arguments.py: "bfloat16 requires gradient accumulation and all-reduce to be done in fp32").
# Llama 3 likewise reduce-scatters gradients in FP32 (Llama 3 report, section 3.3.2).
FP16_GRADIENT_BYTES = 2
# FP8 training (Transformer Engine) keeps the bf16 weights above and caches, per GEMM weight,
# an FP8 copy and its transpose (Hopper FP8 GEMMs take only TN operands) across micro-batches:
# 1 + 1 byte per transformer-layer GEMM parameter. Embedding and output layer stay in bf16.
# [mem: Transformer Engine Float8Tensor transpose cache; not found in a public document]
FP8_WEIGHT_COPY_BYTES = 2


@contextmanager
def _collectives_errors():
    """Re-raise ``fabric`` ``InvalidSpec`` (from ``fabric.checks``) as ``collectives`` ones."""
    try:
        yield
    except fabric_errors.InvalidSpec as exc:
        if isinstance(exc, InvalidSpec):
            raise
        raise InvalidSpec(str(exc)) from None


def _require_bool(field, value):
    if not isinstance(value, bool):
        raise InvalidSpec(f"{field}={value!r} must be True or False")
    return value


def _optional_int(field, value, *, minimum=1, maximum=None):
    if value is None:
        return None
    return checks.require_int(field, value, minimum=minimum, maximum=maximum)


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Transformer:
    """A decoder-only transformer, dense or mixture-of-experts.

    Parameters
    ----------
    layers, hidden, heads : int
        ``L``, ``h``, ``a``. ``hidden`` must be divisible by ``heads`` (head size ``h/a``).
    kv_heads : int, optional
        ``g``, key/value heads (query groups) for grouped-query attention; None means
        ``heads`` (multi-head attention). Must divide ``heads``.
    ffn_hidden : int, optional
        ``f``, the MLP's inner size; None means ``4 * hidden``.

        ``kv_heads``, ``ffn_hidden`` and ``expert_ffn_hidden`` given as None are resolved
        at construction (as Megatron-LM's ``TransformerConfig`` does), so the attributes
        always hold numbers. ``dataclasses.replace`` keeps resolved values: to re-derive
        ``ffn_hidden`` from a new ``hidden``, pass ``ffn_hidden=None`` too.
    mlp : {"gelu", "swiglu"}
        GELU MLP (two matrices h x f) or SwiGLU (three: gate, up, down).
    seq_len, vocab : int
        Training sequence length ``s`` and vocabulary ``V`` (unpadded; see
        :func:`padded_vocab`).
    tied_embeddings : bool
        Whether the output head shares the input embedding matrix.
    experts, top_k : int
        Experts per MoE layer (1 = dense) and experts each token is routed to.
    expert_ffn_hidden : int, optional
        Each expert's inner size; None means ``ffn_hidden``. Unused by dense models.
    moe_every : int
        With ``experts > 1``, layer ``i`` (0-based) is an MoE layer when
        ``i % moe_every == 0``, Megatron-LM's ``--moe-layer-freq`` pattern; the others are
        dense.
    dropout : bool
        Whether the model trains with dropout (GPT-2/3 style). It only changes activation
        memory: dropout stores 1-byte masks (and, in attention, the dropped-out scores).
        Llama 3 and Mixtral train without dropout. Not in the design contract; default True
        reproduces Korthikanti et al.'s coefficients.
    name : str, optional

    Notes
    -----
    Parameter counts ignore biases and learned position embeddings (GPT-3: 2048 x 12288 =
    25M), as Megatron-LM's FLOP formula does; norms count ``h`` weights each (RMSNorm; a
    LayerNorm's ``h`` biases are ignored too).

    Examples
    --------
    >>> gpt = Transformer(layers=96, hidden=12288, heads=96, seq_len=2048, vocab=50257,
    ...                   tied_embeddings=True)
    >>> gpt.ffn_hidden, gpt.kv_heads, gpt.expert_ffn_hidden
    (49152, 96, 49152)
    >>> round(gpt.parameters() / 1e9, 1)
    174.6
    >>> Transformer(layers=2, hidden=256, heads=128, kv_heads=7, seq_len=8, vocab=10)
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: heads=128 must be divisible by kv_heads=7
    """

    layers: int
    hidden: int
    heads: int
    kv_heads: Optional[int] = None
    ffn_hidden: Optional[int] = None
    mlp: str = "gelu"
    seq_len: int
    vocab: int
    tied_embeddings: bool = False
    experts: int = 1
    top_k: int = 1
    expert_ffn_hidden: Optional[int] = None
    moe_every: int = 1
    dropout: bool = True
    name: Optional[str] = None

    def __post_init__(self):
        with _collectives_errors():
            checks.require_int("layers", self.layers, minimum=1)
            checks.require_int("hidden", self.hidden, minimum=1)
            checks.require_int("heads", self.heads, minimum=1)
            if self.hidden % self.heads:
                raise InvalidSpec(f"hidden={self.hidden} must be divisible by heads={self.heads}")
            _optional_int("kv_heads", self.kv_heads, maximum=self.heads)
            if self.kv_heads is not None and self.heads % self.kv_heads:
                raise InvalidSpec(f"heads={self.heads} must be divisible by kv_heads={self.kv_heads}")
            _optional_int("ffn_hidden", self.ffn_hidden)
            checks.require_choice("mlp", self.mlp, MLPS)
            checks.require_int("seq_len", self.seq_len, minimum=1)
            checks.require_int("vocab", self.vocab, minimum=1)
            _require_bool("tied_embeddings", self.tied_embeddings)
            checks.require_int("experts", self.experts, minimum=1)
            checks.require_int("top_k", self.top_k, minimum=1)
            if self.top_k > self.experts:
                raise InvalidSpec(f"top_k={self.top_k} must be <= experts={self.experts}")
            _optional_int("expert_ffn_hidden", self.expert_ffn_hidden)
            checks.require_int("moe_every", self.moe_every, minimum=1)
            if self.moe_every > self.layers:
                raise InvalidSpec(f"moe_every={self.moe_every} must be <= layers={self.layers}")
            _require_bool("dropout", self.dropout)
            if self.name is not None and not isinstance(self.name, str):
                raise InvalidSpec(f"name={self.name!r} must be a string or None")
        # Resolve the defaults in place, as Megatron-LM's TransformerConfig does, so every
        # reader sees numbers. dataclasses.replace() keeps resolved values: replacing
        # ``hidden`` keeps the old ``ffn_hidden`` unless it is passed (or passed as None).
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", self.heads)
        if self.ffn_hidden is None:
            object.__setattr__(self, "ffn_hidden", 4 * self.hidden)
        if self.expert_ffn_hidden is None:
            object.__setattr__(self, "expert_ffn_hidden", self.ffn_hidden)

    # -- resolved shapes ------------------------------------------------------

    @property
    def head_dim(self):
        """``h / a``."""
        return self.hidden // self.heads

    @property
    def kv_dim(self):
        """Width of K (and of V): ``g * h / a``."""
        return self.kv_heads * self.head_dim

    @property
    def glu(self):
        """1.5 for SwiGLU (three matrices instead of two), else 1 (DESIGN.md's MFU formula)."""
        return 1.5 if self.mlp == "swiglu" else 1.0

    @property
    def is_moe(self):
        """True when the model has MoE layers (``experts > 1``)."""
        return self.experts > 1

    def is_moe_layer(self, index):
        """Whether layer ``index`` (0-based) is an MoE layer (Megatron's ``--moe-layer-freq``).

        Examples
        --------
        >>> m = Transformer(layers=4, hidden=64, heads=4, seq_len=8, vocab=10, experts=4,
        ...                 top_k=2, moe_every=2)
        >>> [m.is_moe_layer(i) for i in range(4)]
        [True, False, True, False]
        """
        return self.is_moe and index % self.moe_every == 0

    def moe_layers_in(self, start, stop):
        """How many of layers ``start .. stop-1`` are MoE layers.

        Examples
        --------
        >>> m = Transformer(layers=8, hidden=64, heads=4, seq_len=8, vocab=10, experts=4,
        ...                 top_k=2, moe_every=3)
        >>> m.moe_layers_in(0, 8), m.moe_layers_in(1, 6)
        (3, 1)
        """
        if not self.is_moe or stop <= start:
            return 0
        k = self.moe_every
        return -(-stop // k) - -(-start // k)

    @property
    def moe_layers(self):
        """Number of MoE layers (0 for a dense model)."""
        if not self.is_moe:
            return 0
        return (self.layers - 1) // self.moe_every + 1

    @property
    def dense_layers(self):
        """Number of dense (non-MoE) layers."""
        return self.layers - self.moe_layers

    def _kind(self, kind):
        if kind is None:
            return "moe" if self.is_moe else "dense"
        with _collectives_errors():
            checks.require_choice("kind", kind, ("dense", "moe"))
        if kind == "moe" and not self.is_moe:
            raise InvalidSpec(f"kind='moe' needs experts > 1, got experts={self.experts}")
        return kind

    # -- parameters -------------------------------------------------------------

    @property
    def _mlp_matrices(self):
        return 3 if self.mlp == "swiglu" else 2

    def _attention_parameters(self):
        # Q and O: h x h each; K and V: h x (g h / a) each.
        return 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_dim

    def _mlp_parameters(self, ffn):
        return self._mlp_matrices * self.hidden * ffn

    def _router_parameters(self):
        return self.hidden * self.experts

    def _layer_parameters(self, kind, experts):
        attention = self._attention_parameters()
        norms = 2 * self.hidden
        if kind == "moe":
            experts_mlp = experts * self._mlp_parameters(self.expert_ffn_hidden)
            return attention + norms + experts_mlp + self._router_parameters()
        return attention + norms + self._mlp_parameters(self.ffn_hidden)

    def _embedding_parameters(self):
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    def parameters(self):
        """Total parameter count.

        Embedding ``V h``; an untied output head another ``V h``; per layer attention
        ``2 h^2`` (Q, O) ``+ 2 h (g h / a)`` (K, V), MLP ``2 h f`` (GELU) or ``3 h f``
        (SwiGLU), MoE layers ``experts`` MLPs plus a router ``h * experts``, two norms ``2 h``;
        a final norm ``h``. Biases and position embeddings are ignored.

        Examples
        --------
        >>> round(MODELS["llama3-8b"].parameters() / 1e9, 2)
        8.03
        >>> round(MODELS["mixtral-8x7b"].parameters() / 1e9, 1)
        46.7
        """
        return (
            self.dense_layers * self._layer_parameters("dense", self.experts)
            + self.moe_layers * self._layer_parameters("moe", self.experts)
            + self._embedding_parameters()
            + self.hidden
        )

    def active_parameters(self):
        """Parameters one token passes through: ``top_k`` experts per MoE layer, not all.

        The router counts in full. Equals :meth:`parameters` for dense models.

        Examples
        --------
        >>> round(MODELS["mixtral-8x7b"].active_parameters() / 1e9, 1)
        12.9
        """
        return (
            self.dense_layers * self._layer_parameters("dense", self.top_k)
            + self.moe_layers * self._layer_parameters("moe", self.top_k)
            + self._embedding_parameters()
            + self.hidden
        )

    # -- FLOPs ------------------------------------------------------------------

    def layer_forward_flops(self, tokens, *, kind=None):
        """Forward FLOPs of one layer over ``tokens`` tokens, by operator.

        A matrix multiply ``(m x k) @ (k x n)`` counts ``2 m k n``. Attention uses the full
        sequence ``s`` for every token: the causal mask is not halved, as Megatron-LM's
        FLOP formula (Narayanan et al. SC'21, eq. 3) counts it, even though causal kernels
        skip the upper triangle. Norms, softmax, activations and residual adds are not
        counted (they are not matrix multiplies).

        Parameters
        ----------
        tokens : int
            Tokens processed (e.g. ``micro_batch * seq_len``).
        kind : {"dense", "moe"}, optional
            Layer type; default ``"moe"`` for an MoE model, else ``"dense"``.

        Returns
        -------
        dict
            ``qkv`` (``2 t h (h + 2 g h / a)``), ``scores`` (Q K^T, ``2 t s h``), ``context``
            (scores x V, ``2 t s h``), ``output`` (projection, ``2 t h^2``), ``mlp`` (``2 t h f``
            per matrix; MoE: ``top_k`` experts of ``expert_ffn_hidden``), ``router``
            (``2 t h experts``, 0 for dense layers).

        Examples
        --------
        >>> m = Transformer(layers=1, hidden=4, heads=2, seq_len=8, vocab=10)
        >>> m.layer_forward_flops(1)
        {'qkv': 96, 'scores': 64, 'context': 64, 'output': 32, 'mlp': 256, 'router': 0}
        """
        kind = self._kind(kind)
        h, s = self.hidden, self.seq_len
        if kind == "moe":
            mlp = 2 * tokens * self._mlp_matrices * h * self.expert_ffn_hidden * self.top_k
            router = 2 * tokens * h * self.experts
        else:
            mlp = 2 * tokens * self._mlp_matrices * h * self.ffn_hidden
            router = 0
        return {
            "qkv": 2 * tokens * h * (h + 2 * self.kv_dim),
            "scores": 2 * tokens * s * h,
            "context": 2 * tokens * s * h,
            "output": 2 * tokens * h * h,
            "mlp": mlp,
            "router": router,
        }

    def logits_forward_flops(self, tokens):
        """Forward FLOPs of the output projection to the vocabulary: ``2 tokens h V``.

        Uses the unpadded vocabulary, as Megatron-LM's formula does (the padded GEMM does
        ``padded_vocab / vocab`` more).

        Examples
        --------
        >>> MODELS["gpt3-175b"].logits_forward_flops(1)
        1235116032
        """
        return 2 * tokens * self.hidden * self.vocab

    def flops_per_token(self):
        """Model FLOPs per token for forward + backward, without recompute (the MFU numerator).

        Three times the forward FLOPs of every layer and the logits (backward = 2 x forward).
        For a dense model this is exactly DESIGN.md's
        ``12 L h^2 (1 + g/a + s/h + (f/h) glu + V/(2 L h))``, which for GPT (g = a, f = 4h,
        GELU) is Megatron-LM's ``72 B s L h^2 (1 + s/(6h) + V/(12 L h))`` per iteration
        divided by the ``B s`` tokens (Narayanan et al. SC'21; Korthikanti et al. 2022).
        MoE layers count ``top_k`` experts of ``expert_ffn_hidden`` and the router.

        Examples
        --------
        >>> m = MODELS["gpt3-175b"]
        >>> L, h, s, V = m.layers, m.hidden, m.seq_len, m.vocab
        >>> m.flops_per_token() == 72 * L * h**2 + 12 * L * h * s + 6 * h * V
        True
        """
        forward = self.logits_forward_flops(1)
        if self.dense_layers:
            forward += self.dense_layers * sum(self.layer_forward_flops(1, kind="dense").values())
        if self.moe_layers:
            forward += self.moe_layers * sum(self.layer_forward_flops(1, kind="moe").values())
        return 3 * forward

    # -- activations ------------------------------------------------------------

    def _activation_coefficients(self, kind, local_seq):
        """(replicated, tp_sharded, scores) multipliers of ``s b h`` bytes for one layer."""
        h, a, g = self.hidden, self.heads, self.kv_heads
        d = 1 if self.dropout else 0
        # Not split by TP without sequence parallelism: two norm inputs 4, QKV input 2, MLP
        # input 2, a 1-byte dropout mask after attention and one after the MLP.
        replicated = 8 + 2 * d
        # Split by TP: Q 2, K and V 2 g/a each, attention output (projection input) 2.
        attention = 4 + 4 * g / a
        if kind == "moe":
            # Each of top_k expert copies of a token: its dispatched input 2, fc1 output and
            # activation input/output 4 glu f_e / h.
            mlp = self.top_k * (2 + 4 * self.glu * self.expert_ffn_hidden / h)
        else:
            # fc1 output (activation input) 2f/h per output and activation output 2f/h:
            # GELU 2f/h + 2f/h; SwiGLU 2 x 2f/h (gate and up) + 2f/h, i.e. 4 glu f/h.
            mlp = 4 * self.glu * self.ffn_hidden / h
        # Attention scores a s^2 b: softmax output 2, dropout mask 1, dropout output 2 (5);
        # without dropout only the softmax output (2). Per s b h: (5 or 2) a s / h.
        scores = (5 if self.dropout else 2) * a * local_seq / h
        return replicated, attention + mlp, scores

    def activation_bytes_per_layer(self, micro_batch, tp, sequence_parallel, recompute, cp=1, *, kind=None):
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
        with dropout they reproduce its 34 exactly. "none" assumes attention scores are
        materialised (no flash attention); with flash attention use "selective".

        Parameters
        ----------
        micro_batch, tp, cp : int
            ``b``, ``t`` and the context-parallel size.
        sequence_parallel : bool
            Megatron-LM sequence parallelism (no effect at ``tp=1``).
        recompute : {"none", "selective", "full"}
        kind : {"dense", "moe"}, optional
            Layer type; default ``"moe"`` for an MoE model, else ``"dense"``.

        Returns
        -------
        float
            Bytes.

        Examples
        --------
        >>> m = MODELS["gpt3-175b"]
        >>> sbh = m.seq_len * 1 * m.hidden
        >>> m.activation_bytes_per_layer(1, 8, True, "selective") == 34 * sbh / 8
        True
        >>> m.activation_bytes_per_layer(1, 1, False, "none") == sbh * (34 + 5 * 96 * 2048 / 12288)
        True
        """
        kind = self._kind(kind)
        with _collectives_errors():
            b = checks.require_int("micro_batch", micro_batch, minimum=1)
            t = checks.require_int("tp", tp, minimum=1)
            cp = checks.require_int("cp", cp, minimum=1)
            _require_bool("sequence_parallel", sequence_parallel)
            checks.require_choice("recompute", recompute, RECOMPUTE)
        local_seq = self.seq_len / cp
        sbh = local_seq * b * self.hidden
        sp = sequence_parallel and t > 1
        if recompute == "full":
            return 2 * sbh / (t if sp else 1)
        replicated, sharded, scores = self._activation_coefficients(kind, local_seq)
        if recompute == "selective":
            scores = 0.0
        if sp:
            return sbh * (replicated + sharded + scores) / t
        return sbh * (replicated + (sharded + scores) / t)


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------

MODELS = MappingProxyType(
    {
        # Brown et al. 2020 (GPT-3), Table 2.1: 96 layers, d_model 12288, 96 heads of 128,
        # context 2048; GPT-2 BPE vocabulary 50,257 (Radford et al. 2019), output head tied
        # to the embedding as in GPT-2. Dropout as in GPT-2 and Megatron-LM's GPT-3 example.
        "gpt3-175b": Transformer(
            layers=96, hidden=12288, heads=96, seq_len=2048, vocab=50257, mlp="gelu",
            tied_embeddings=True, dropout=True, name="gpt3-175b",
        ),
        # Llama 3 paper ("The Llama 3 Herd of Models", 2024), Table 3: 32 layers, model dim
        # 4096, FFN 14,336, 32 heads, 8 KV heads, vocabulary 128,000 (the released tokenizer
        # has 128,256 with reserved special tokens); 8K sequences (section 3.4.1); untied;
        # SwiGLU; no dropout (released config: attention_dropout 0.0).
        "llama3-8b": Transformer(
            layers=32, hidden=4096, heads=32, kv_heads=8, ffn_hidden=14336, mlp="swiglu",
            seq_len=8192, vocab=128000, dropout=False, name="llama3-8b",
        ),
        # Llama 3 paper, Table 3: 80 layers, model dim 8192, FFN 28,672, 64 heads, 8 KV heads.
        "llama3-70b": Transformer(
            layers=80, hidden=8192, heads=64, kv_heads=8, ffn_hidden=28672, mlp="swiglu",
            seq_len=8192, vocab=128000, dropout=False, name="llama3-70b",
        ),
        # Llama 3 paper, Table 3: 126 layers, model dim 16,384, FFN 53,248, 128 heads, 8 KV
        # heads, vocabulary 128,000; trained on 8,192-token sequences before long-context
        # training (Table 4, section 3.4).
        "llama3-405b": Transformer(
            layers=126, hidden=16384, heads=128, kv_heads=8, ffn_hidden=53248, mlp="swiglu",
            seq_len=8192, vocab=128000, dropout=False, name="llama3-405b",
        ),
        # Jiang et al. 2024 ("Mixtral of Experts"), Table 1: dim 4096, 32 layers, 32 heads of
        # 128, 8 KV heads, hidden_dim 14,336, vocabulary 32,000, 8 experts, top-2, every
        # layer MoE. The paper gives a 32K context but no training sequence length; 4,096 is
        # our choice (Mistral 7B's attention window, and the length Megatron/NeMo Mixtral
        # recipes train at).
        "mixtral-8x7b": Transformer(
            layers=32, hidden=4096, heads=32, kv_heads=8, ffn_hidden=14336, mlp="swiglu",
            seq_len=4096, vocab=32000, experts=8, top_k=2, dropout=False, name="mixtral-8x7b",
        ),
    }
)


def padded_vocab(model, tp):
    """The vocabulary Megatron-LM allocates: ``vocab`` rounded up to a multiple of ``128 * tp``.

    Never rejects a vocabulary: padding is what Megatron-LM does instead
    (``_vocab_size_with_padding``, ``--make-vocab-size-divisible-by 128``).

    Parameters
    ----------
    model : Transformer or int
        A model, or a vocabulary size.
    tp : int
        Tensor-parallel size.

    Examples
    --------
    >>> padded_vocab(MODELS["gpt3-175b"], 4)
    50688
    >>> padded_vocab(128000, 8)
    128000
    """
    vocab = model.vocab if isinstance(model, Transformer) else model
    with _collectives_errors():
        checks.require_int("vocab", vocab, minimum=1)
        checks.require_int("tp", tp, minimum=1)
    return _padded(vocab, tp)


def _padded(vocab, tp):
    """:func:`padded_vocab` of values already validated (model fields, plan fields)."""
    multiple = MAKE_VOCAB_SIZE_DIVISIBLE_BY * tp
    return -(-vocab // multiple) * multiple


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------


def _gpu_count(gpus):
    if hasattr(gpus, "nodes") and hasattr(gpus, "graph"):
        return gpu_count(gpus)
    with _collectives_errors():
        return checks.require_int("gpus", gpus, minimum=1)


@dataclass(frozen=True, kw_only=True)
class Parallelism:
    """A Megatron-LM style parallel plan, validated on its own at construction.

    Parameters
    ----------
    tp, pp, dp, cp : int
        Tensor, pipeline, data and context parallel sizes; ``tp*pp*dp*cp`` GPUs.
    ep : int
        Expert-parallel size, carved out of the data-parallel ranks as in Megatron-LM
        (experts are spread over ``ep`` of the ``dp`` replicas); must divide ``dp``.
    micro_batch : int
        Sequences per micro-batch.
    global_batch : int
        Sequences per optimizer step; a multiple of ``dp * micro_batch``.
    virtual_stages : int
        Model chunks per pipeline rank (interleaved 1F1B); > 1 needs ``pp > 1``.
    sequence_parallel : bool
        Megatron-LM sequence parallelism (Korthikanti et al. 2022); no effect at ``tp=1``.
    recompute : {"none", "selective", "full"}
        Activation recomputation.
    zero : {0, 1, 2, 3}
        Sharding over data-parallel ranks: 0 none; 1 optimizer state (Megatron-LM's
        distributed optimizer); 2 also gradients; 3 also weights (FSDP).
    precision : {"bf16", "fp16", "fp8"}
        GEMM precision. fp16 and bf16 run at the same tensor-core rate; fp16 keeps and
        reduces gradients in fp16 (2 bytes), the others in fp32 (:func:`gradient_bytes`).
    flash_attention : bool
        Fused attention that never writes the score matrix to HBM (FlashAttention, Dao
        et al. 2022; Transformer Engine's fused attention). False is the 2021 Megatron-LM
        kernel: scores, softmax and dropout materialised.
    tp_comm_overlap : bool
        Overlap tensor-parallel collectives with the GEMMs next to them (Megatron-LM
        ``--tp-comm-overlap``).
    overlap_grad_reduce, overlap_param_gather : bool
        Overlap the data-parallel gradient reduce-scatter with the last backward pass and
        the parameter all-gather with the first forward pass (Megatron-LM
        ``--overlap-grad-reduce --overlap-param-gather``, on in current recipes).

    Examples
    --------
    >>> plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048)
    >>> plan.world_size, plan.micro_batches
    (16384, 16)
    >>> Parallelism(dp=64, global_batch=100)
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: global_batch=100 must be divisible by dp*micro_batch=64
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    micro_batch: int = 1
    global_batch: int
    virtual_stages: int = 1
    sequence_parallel: bool = True
    recompute: str = "selective"
    zero: int = 1
    precision: str = "bf16"
    flash_attention: bool = True
    tp_comm_overlap: bool = False
    overlap_grad_reduce: bool = True
    overlap_param_gather: bool = True

    def __post_init__(self):
        with _collectives_errors():
            for field in ("tp", "pp", "dp", "cp", "ep", "micro_batch", "global_batch", "virtual_stages"):
                checks.require_int(field, getattr(self, field), minimum=1)
            for field in ("sequence_parallel", "flash_attention", "tp_comm_overlap", "overlap_grad_reduce",
                          "overlap_param_gather"):
                _require_bool(field, getattr(self, field))
            checks.require_choice("recompute", self.recompute, RECOMPUTE)
            checks.require_int("zero", self.zero, minimum=ZERO_STAGES[0], maximum=ZERO_STAGES[-1])
            checks.require_choice("precision", self.precision, PRECISIONS)
        per_step = self.dp * self.micro_batch
        if self.global_batch % per_step:
            raise InvalidSpec(f"global_batch={self.global_batch} must be divisible by dp*micro_batch={per_step}")
        if self.virtual_stages > 1 and self.pp == 1:
            raise InvalidSpec(f"virtual_stages={self.virtual_stages} needs pp > 1, got pp={self.pp}")
        if self.dp % self.ep:
            raise InvalidSpec(f"ep={self.ep} must divide dp={self.dp}")

    @property
    def world_size(self):
        """GPUs the plan uses: ``tp * pp * dp * cp`` (``ep`` lies inside ``dp``)."""
        return self.tp * self.pp * self.dp * self.cp

    @property
    def micro_batches(self):
        """Micro-batches per optimizer step per data-parallel rank: ``global_batch / (dp * micro_batch)``."""
        return self.global_batch // (self.dp * self.micro_batch)

    def problems(self, model, gpus=None):
        """What does not fit between this plan, ``model`` and ``gpus``: a list of messages.

        See :meth:`check_against`, which raises them. An empty list means the plan fits.

        Examples
        --------
        >>> plan = Parallelism(tp=3, dp=2, global_batch=2)
        >>> for problem in plan.problems(MODELS["llama3-405b"], gpus=8):
        ...     print(problem)
        tp=3 must divide heads=128
        tp=3 must divide kv_heads=8
        tp=3 must divide ffn_hidden=53248
        seq_len=8192 must be divisible by tp*cp=3 with sequence_parallel
        tp*pp*dp*cp=6 must equal the fabric's 8 GPUs
        >>> plan.problems(Transformer(layers=2, hidden=96, heads=3, seq_len=6, vocab=10), gpus=6)
        []
        """
        if not isinstance(model, Transformer):
            raise InvalidSpec(f"model={model!r} must be a Transformer")
        out = []
        tp, cp = self.tp, self.cp
        # Megatron-LM divides heads, query groups and FFN sizes evenly over TP ranks
        # (megatron/core/transformer: divide(...); TransformerConfig requires
        # num_query_groups % tensor_model_parallel_size == 0; KV heads are not replicated).
        if model.heads % tp:
            out.append(f"tp={tp} must divide heads={model.heads}")
        if model.kv_heads % tp:
            out.append(f"tp={tp} must divide kv_heads={model.kv_heads}")
        if model.dense_layers and model.ffn_hidden % tp:
            out.append(f"tp={tp} must divide ffn_hidden={model.ffn_hidden}")
        if model.moe_layers and model.expert_ffn_hidden % tp:
            out.append(f"tp={tp} must divide expert_ffn_hidden={model.expert_ffn_hidden}")
        if model.experts % self.ep:
            out.append(f"ep={self.ep} must divide experts={model.experts}")
        # Megatron-LM context parallelism splits each sequence into 2*cp chunks for causal
        # load balancing (rank i holds chunks i and 2cp-1-i).
        if cp > 1 and model.seq_len % (2 * cp):
            out.append(f"seq_len={model.seq_len} must be divisible by 2*cp={2 * cp}")
        # Sequence parallelism splits each rank's sequence over the TP ranks.
        if self.sequence_parallel and tp > 1 and model.seq_len % (tp * cp):
            out.append(f"seq_len={model.seq_len} must be divisible by tp*cp={tp * cp} with sequence_parallel")
        stages = self.pp * self.virtual_stages
        if stages > model.layers:
            out.append(f"pp*virtual_stages={stages} must be <= layers={model.layers}")
        if gpus is not None:
            n = _gpu_count(gpus)
            if self.world_size != n:
                out.append(f"tp*pp*dp*cp={self.world_size} must equal the fabric's {n} GPUs")
        return out

    def check_against(self, model, gpus=None):
        """Raise ``InvalidSpec`` naming everything that does not fit ``model`` and ``gpus``.

        Checks: ``tp`` divides ``heads``, ``kv_heads`` (Megatron-LM requires
        ``num_query_groups % tp == 0``; it does not replicate KV heads), ``ffn_hidden`` and
        ``expert_ffn_hidden``; ``ep`` divides ``experts``; with ``cp > 1`` ``seq_len`` is a
        multiple of ``2*cp`` (Megatron-LM's load-balanced CP); with sequence parallelism
        ``seq_len`` is a multiple of ``tp*cp``; ``pp*virtual_stages <= layers`` (an uneven
        split is allowed, see :meth:`layers_per_stage`); ``tp*pp*dp*cp`` equals the GPU
        count. The vocabulary is never rejected: it is padded (:func:`padded_vocab`).

        Parameters
        ----------
        model : Transformer
        gpus : int or networkx.DiGraph, optional
            A GPU count, or a fabric whose ``kind == "gpu"`` nodes are counted.

        Raises
        ------
        InvalidSpec
            All problems, joined by ``"; "``.

        Examples
        --------
        >>> plan = Parallelism(tp=8, pp=16, dp=64, global_batch=2048)
        >>> plan.check_against(MODELS["llama3-405b"], gpus=2048)
        Traceback (most recent call last):
        ...
        collectives.errors.InvalidSpec: tp*pp*dp*cp=8192 must equal the fabric's 2048 GPUs
        """
        problems = self.problems(model, gpus)
        if problems:
            raise InvalidSpec("; ".join(problems))

    def layers_per_stage(self, model):
        """Layers of each (virtual) pipeline stage, in pipeline order: ``pp * virtual_stages`` counts.

        Virtual stage ``k * pp + r`` is model chunk ``k`` of pipeline rank ``r`` (Megatron-LM's
        interleaved order). Megatron-LM requires ``layers`` divisible by ``pp * v`` unless
        ``--decoder-first/last-pipeline-num-layers`` are given; we allow any split with at
        least one layer per stage: an even split, the remainder one layer each to the middle
        stages (stage 1 onwards), then to the last stage, and to the first stage only when
        every other stage already has one more. The first stage holds the embedding and
        the most in-flight micro-batches and the last one the output layer and loss, which
        is why the Llama 3 paper (section 3.3.2) takes a layer off each: 126 layers over 16
        stages give 7, 8 x 14, 7, Meta's layout. The slowest stage sets the pace.

        Examples
        --------
        >>> plan = Parallelism(pp=16, dp=1, global_batch=16)
        >>> plan.layers_per_stage(MODELS["llama3-405b"])
        [7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7]
        >>> Parallelism(pp=2, global_batch=2).layers_per_stage(Transformer(
        ...     layers=5, hidden=8, heads=1, seq_len=8, vocab=8))
        [2, 3]
        """
        stages = self.pp * self.virtual_stages
        if stages > model.layers:
            raise InvalidSpec(f"pp*virtual_stages={stages} must be <= layers={model.layers}")
        base, remainder = divmod(model.layers, stages)
        counts = [base] * stages
        order = list(range(1, stages - 1)) + ([stages - 1, 0] if stages > 1 else [0])
        for stage in order[:remainder]:
            counts[stage] += 1
        return counts

    def parameters_per_gpu(self, model):
        """Parameters held by one GPU of the most loaded pipeline rank, before ZeRO sharding.

        Its layers' attention and MLP weights split ``tp`` ways (``experts / ep`` experts
        per MoE layer), norms and routers whole, the embedding on the first rank and the
        output head (or Megatron's copy of a tied embedding) on the last, both with the
        padded vocabulary. This is what a data-parallel gradient reduction moves per GPU.

        Examples
        --------
        >>> plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048)
        >>> round(plan.parameters_per_gpu(MODELS["llama3-405b"]) / 1e9, 2)
        3.19
        """
        self.check_against(model)
        return _parameters_per_gpu(_rank_contents(model, self))

    def in_flight(self, rank):
        """Micro-batch chunks whose activations pipeline rank ``rank`` holds at its peak.

        A "chunk" is one micro-batch through one of the rank's ``virtual_stages`` model
        chunks. Non-interleaved 1F1B: ``min(pp - rank, m)`` (rank 0 holds ``pp``
        micro-batches; Narayanan et al. SC'21). Interleaved (Megatron-LM
        ``forward_backward_pipelining_with_interleaving``): warm-up
        ``2 (pp - rank - 1) + (v - 1) pp`` chunks plus the one in 1F1B, at most ``m v``, and
        all ``m v`` when ``m == pp`` (Megatron runs all forwards first then). For rank 0
        this is ``v pp + pp - 1`` chunks of ``L / (pp v)`` layers, i.e. ``L (1 + (pp - 1) /
        (pp v))`` layers, Korthikanti et al. 2022 section 4.2.3.

        Examples
        --------
        >>> plan = Parallelism(pp=4, virtual_stages=2, global_batch=8)
        >>> [plan.in_flight(r) for r in range(4)]
        [11, 9, 7, 5]
        """
        with _collectives_errors():
            checks.require_int("rank", rank, minimum=0, maximum=self.pp - 1)
        return int(self._in_flight(rank))

    def _in_flight(self, rank):
        """:meth:`in_flight` of ranks known to be valid (an int or an array of them)."""
        pp, v, m = self.pp, self.virtual_stages, self.micro_batches
        if pp == 1:
            return np.ones_like(rank)
        if v == 1:
            return np.minimum(pp - rank, m)
        if m == pp:
            return np.full_like(rank, m * v)
        return np.minimum(2 * (pp - rank - 1) + (v - 1) * pp + 1, m * v)


# ---------------------------------------------------------------------------
# Memory per GPU
# ---------------------------------------------------------------------------


def _embedding_activation_bytes(model, plan):
    """Embedding dropout mask (1 byte per element), Korthikanti et al. section 4.3: ``s b h``."""
    if not model.dropout:
        return 0.0
    sbh = model.seq_len / plan.cp * plan.micro_batch * model.hidden
    return sbh / (plan.tp if plan.sequence_parallel else 1)


def _output_activation_bytes(model, plan, vocab):
    """Final norm input 2sbh, output-GEMM input 2sbh, fp32 logits for the loss 4sbV/t.

    Korthikanti et al. 2022 section 4.3: ``4 s b h / t (1 + V / h)`` with sequence
    parallelism; without it the two ``h``-wide tensors are not split.
    """
    sb = model.seq_len / plan.cp * plan.micro_batch
    split = plan.tp if plan.sequence_parallel else 1
    return 4 * sb * model.hidden / split + 4 * sb * vocab / plan.tp


def _rank_contents(model, plan):
    """Per pipeline rank: layers by kind and local parameters (after TP/PP/EP, before ZeRO);
    read-only, shared by plans with the same model, tp, pp, virtual stages and ep (a
    search meets each a few hundred times)."""
    key = (model, plan.tp, plan.pp, plan.virtual_stages, plan.ep)
    contents = _CONTENTS.get(key)
    if contents is None:
        if len(_CONTENTS) >= 4096:
            _CONTENTS.clear()
        contents = _CONTENTS[key] = _count_rank_contents(model, plan)
    return contents


_CONTENTS = {}


@dataclass(frozen=True, eq=False)
class _RankContents:
    """Per pipeline rank (arrays indexed by rank): layers by kind and local parameters.

    ``dense`` parameters are sharded by ZeRO over ``dp * cp``, ``expert`` ones over
    ``dp * cp / ep``; ``gemm`` are the layer matrix weights (FP8 copies); ``largest_layer``
    the biggest layer's local parameters (ZeRO-3 gathers).
    """

    dense_layers: np.ndarray
    moe_layers: np.ndarray
    dense: np.ndarray
    expert: np.ndarray
    gemm: np.ndarray
    largest_layer: np.ndarray


def _count_rank_contents(model, plan):
    """:func:`_rank_contents`, counted."""
    tp, pp, v = plan.tp, plan.pp, plan.virtual_stages
    h = model.hidden
    vocab = _padded(model.vocab, tp)
    counts = plan.layers_per_stage(model)
    starts = [sum(counts[:i]) for i in range(len(counts))]
    attention = model._attention_parameters() / tp
    dense_mlp = model._mlp_parameters(model.ffn_hidden) / tp
    expert_mlp = model.experts // plan.ep * model._mlp_parameters(model.expert_ffn_hidden) / tp
    norms = 2 * h  # replicated over TP ranks
    router = model._router_parameters()  # replicated over TP ranks
    last_chunk = pp * v - 1
    fields = {name: np.zeros(pp) for name in ("dense_layers", "moe_layers", "dense", "expert", "gemm", "largest_layer")}
    for rank in range(pp):
        c = dict.fromkeys(fields, 0.0)
        for k in range(v):
            chunk = k * pp + rank
            moe = model.moe_layers_in(starts[chunk], starts[chunk] + counts[chunk])
            dense = counts[chunk] - moe
            c["moe_layers"] += moe
            c["dense_layers"] += dense
            c["dense"] += moe * (attention + norms + router) + dense * (attention + norms + dense_mlp)
            c["expert"] += moe * expert_mlp
            c["gemm"] += moe * (attention + expert_mlp) + dense * (attention + dense_mlp)
            if moe:
                c["largest_layer"] = max(c["largest_layer"], attention + norms + router + expert_mlp)
            if dense:
                c["largest_layer"] = max(c["largest_layer"], attention + norms + dense_mlp)
            if chunk == 0:
                c["dense"] += vocab * h / tp
            if chunk == last_chunk:
                c["dense"] += h  # final norm
                if not model.tied_embeddings or pp * v > 1:
                    # untied head, or Megatron's copy of a tied embedding on the last stage
                    c["dense"] += vocab * h / tp
        for name, value in c.items():
            fields[name][rank] = value
    for values in fields.values():
        values.flags.writeable = False  # shared by every plan with these contents
    return _RankContents(**fields)


def gradient_bytes(precision):
    """Bytes per gradient, in memory and in the data-parallel reduction, for ``precision``.

    Examples
    --------
    >>> gradient_bytes("bf16"), gradient_bytes("fp16")
    (4, 2)
    """
    return FP16_GRADIENT_BYTES if precision == "fp16" else GRADIENT_BYTES


@lru_cache(maxsize=4096)
def _parameters_per_gpu(contents):
    """The most loaded rank's parameters, from :func:`_rank_contents`."""
    return float((contents.dense + contents.expert).max())


def memory_per_stage(model, plan):
    """Memory per GPU on each pipeline rank, in bytes: a list of ``pp`` breakdowns.

    See :func:`memory_per_gpu` for what is counted; each dict also has ``stage`` (the
    pipeline rank) and ``layers`` (layers on it).

    Examples
    --------
    >>> plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048, zero=2)
    >>> stages = memory_per_stage(MODELS["llama3-405b"], plan)
    >>> [s["layers"] for s in stages][:3], max(stages, key=lambda s: s["total"])["stage"]
    ([7, 8, 8], 1)
    """
    plan.check_against(model)
    return _memory_per_stage(model, plan, _rank_contents(model, plan))


@lru_cache(maxsize=4096)
def _layer_activations(model, micro_batch, tp, sequence_parallel, recompute, cp, kind):
    """:meth:`Transformer.activation_bytes_per_layer`, remembered (a search asks for a few
    dozen distinct values tens of thousands of times)."""
    return model.activation_bytes_per_layer(micro_batch, tp, sequence_parallel, recompute, cp, kind=kind)


def _memory_per_stage(model, plan, contents):
    """:func:`memory_per_stage` of a checked plan, from its :func:`_rank_contents`."""
    memory = _stage_memory(model, plan, contents)
    layers = contents.dense_layers + contents.moe_layers
    return [{"stage": rank, "layers": int(layers[rank]), **{key: float(values[rank]) for key, values in memory.items()}}
            for rank in range(plan.pp)]


def _worst_memory(model, plan, contents):
    """:func:`memory_per_gpu` of a checked plan, from its :func:`_rank_contents`."""
    memory = _stage_memory(model, plan, contents)
    worst = int(memory["total"].argmax())  # the first of equals
    return {key: float(values[worst]) for key, values in memory.items()}


def _stage_memory(model, plan, contents):
    """Weights, gradients, optimizer, activations and total bytes per GPU: arrays by rank.

    The state and the activations each depend on a few of the plan's fields; a search
    meets each combination many times, so both are remembered.
    """
    weights, gradients, optimizer, state = _state_bytes(contents, plan.dp * plan.cp, plan.ep, plan.zero,
                                                        plan.precision)
    key = (model, contents, plan.micro_batch, plan.sequence_parallel, plan.recompute, plan.cp, plan.micro_batches)
    activations = _ACTIVATIONS.get(key)
    if activations is None:
        if len(_ACTIVATIONS) >= 8192:
            _ACTIVATIONS.clear()
        activations = _ACTIVATIONS[key] = _activation_bytes(model, plan, contents)
    return {
        "weights": weights,
        "gradients": gradients,
        "optimizer": optimizer,
        "activations": activations,
        "total": state + activations,
    }


_ACTIVATIONS = {}


@lru_cache(maxsize=8192)
def _state_bytes(contents, shard, ep, zero, precision):
    """Weights, gradients, optimizer state and their sum per rank, read-only arrays;
    ``shard`` is ``dp * cp``, over which Megatron-LM shards dense parameters (expert ones
    over ``shard / ep``, the expert data-parallel group)."""
    params = contents.dense + contents.expert
    sharded = contents.dense / shard + contents.expert / (shard // ep)
    weights = WEIGHT_BYTES * params
    gradients = gradient_bytes(precision) * (sharded if zero >= 2 else params)
    optimizer = OPTIMIZER_BYTES * (sharded if zero >= 1 else params)
    if zero >= 3:
        # sharded weights plus the gathered layer being computed and the prefetched next one
        weights = WEIGHT_BYTES * (sharded + 2 * contents.largest_layer)
    if precision == "fp8":
        weights = weights + FP8_WEIGHT_COPY_BYTES * contents.gemm
    state = weights + gradients + optimizer
    for values in (weights, gradients, optimizer, state):
        values.flags.writeable = False
    return weights, gradients, optimizer, state


def _activation_bytes(model, plan, contents):
    """Activation bytes per rank at its peak of micro-batches in flight, a read-only array."""
    tp, pp, v = plan.tp, plan.pp, plan.virtual_stages

    def per_layer(recompute, kind):
        return _layer_activations(model, plan.micro_batch, tp, plan.sequence_parallel, recompute, plan.cp, kind)

    units = plan._in_flight(np.arange(pp))
    layer_act = contents.dense_layers * per_layer(plan.recompute, "dense")
    if model.is_moe:
        layer_act = layer_act + contents.moe_layers * per_layer(plan.recompute, "moe")
    activations = units * layer_act / v
    activations[0] += units[0] / v * _embedding_activation_bytes(model, plan)
    activations[-1] += _output_activation_bytes(model, plan, _padded(model.vocab, tp))
    if plan.recompute == "full":
        # during backward one layer is rematerialised (flash attention: no scores)
        rematerialised = np.where(contents.dense_layers > 0, per_layer("selective", "dense"), 0.0)
        if model.is_moe:
            rematerialised = np.maximum(rematerialised, np.where(contents.moe_layers > 0, per_layer("selective", "moe"), 0.0))
        activations += rematerialised
    activations.flags.writeable = False
    return activations


def memory_per_gpu(model, plan):
    """Bytes per GPU on the most loaded pipeline rank: weights, gradients, optimizer, activations.

    Parameters and state, per GPU (Megatron-LM distributed-optimizer accounting,
    "6 + 12/d" bytes per parameter with bf16 parameters and fp32 gradients; ZeRO,
    Rajbhandari et al. 2020, for the stages):

    ===========  ====================  ==================================================
    weights      2 B/param             ``/ d`` with ``zero=3`` (plus two gathered layers:
                                       the current one and the prefetched next); FP8 adds
                                       2 B per layer GEMM parameter (FP8 copy and its
                                       transpose) and keeps the bf16 weights
    gradients    4 B/param (fp32)      ``/ d`` with ``zero >= 2``
    optimizer    12 B/param            fp32 master + Adam moments, ``/ d`` with
                                       ``zero >= 1``
    ===========  ====================  ==================================================

    ``d`` is ``dp * cp`` for dense parameters (Megatron-LM shards the distributed
    optimizer over the data-parallel group including CP) and ``dp * cp / ep`` for expert
    parameters. A rank's parameters are its layers' (attention and MLP split ``tp`` ways,
    norms and routers replicated; ``experts / ep`` experts per MoE layer, split ``tp`` ways
    as Megatron-LM's default expert tensor parallelism), plus on the first stage the
    embedding (padded vocabulary, split ``tp`` ways), and on the last the final norm and
    the output head (untied, or Megatron's copy of a tied embedding when ``pp > 1``).

    Activations: :meth:`Transformer.activation_bytes_per_layer` for each layer of the rank,
    times the micro-batches it holds at its peak (:meth:`Parallelism.in_flight`: ``pp`` on
    the first rank of a 1F1B pipeline, ``pp (1 + (pp-1)/(pp v))`` layer-equivalents with
    interleaving, Korthikanti et al. 2022 section 4.2.3); plus the embedding dropout mask on
    the first rank and, on the last rank, the output layer's inputs and fp32 logits for one
    micro-batch (Korthikanti et al. section 4.3, ``4 s b h / t (1 + V / h)``); with full
    recompute, plus one layer's (selective-level) activations being recomputed.

    Not counted: CUDA context and NCCL buffers (~1-2 GB), allocator fragmentation,
    temporary buffers (logit gradients, communication staging), token ids and the
    flash-attention softmax statistics. Treat ``total`` as a floor.

    Returns
    -------
    dict
        ``weights``, ``gradients``, ``optimizer``, ``activations``, ``total`` (bytes) of
        the pipeline rank with the largest total.

    Examples
    --------
    >>> gpt = MODELS["gpt3-175b"]
    >>> mem = memory_per_gpu(gpt, Parallelism(tp=1, pp=1, dp=8, global_batch=8))
    >>> mem["weights"] > 80e9
    True
    >>> sorted(mem)
    ['activations', 'gradients', 'optimizer', 'total', 'weights']
    """
    plan.check_against(model)
    return _worst_memory(model, plan, _rank_contents(model, plan))
