"""A decoder-only transformer (dense or mixture-of-experts): shapes, parameters and FLOPs.

:class:`Transformer` holds a model's shape, resolved at construction, and counts its
parameters and model FLOPs (the MFU numerator, Narayanan et al. SC'21); :func:`padded_vocab`
is the vocabulary Megatron-LM allocates. Published shapes are
:data:`collectives.training.presets.MODELS`. Pure arithmetic: no plan, no fabric, no timing.
What a plan keeps in memory is :mod:`collectives.training.memory`.

Conventions: ``s`` sequence length, ``b`` micro-batch, ``h`` hidden size, ``a`` attention
heads, ``g`` KV heads (query groups), ``f`` FFN size, ``V`` vocabulary, ``L`` layers, ``t``
tensor-parallel size. Bytes and FLOPs are plain numbers (SI, no prefixes).

Examples
--------
>>> from collectives.training.presets import MODELS
>>> model = MODELS["llama3-405b"]
>>> round(model.parameters() / 1e9, 1)
405.8
>>> round(model.flops_per_token() / 1e12, 2)
2.63
"""

from dataclasses import dataclass
from typing import Optional

from fabric import checks

from collectives.errors import InvalidSpec, collectives_errors

MLPS = ("gelu", "swiglu")

# Megatron-LM pads the vocabulary to a multiple of make_vocab_size_divisible_by (default 128)
# times the tensor-parallel size (megatron/training/tokenizer: _vocab_size_with_padding).
MAKE_VOCAB_SIZE_DIVISIBLE_BY = 128


def _optional_int(field, value, *, minimum=1, maximum=None):
    if value is None:
        return None
    return checks.require_int(field, value, minimum=minimum, maximum=maximum)


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
        ``(i - first_dense_layers) % moe_every == 0``, Megatron-LM's ``--moe-layer-freq``
        pattern; the others are dense.
    first_dense_layers : int
        Leading layers that are dense whatever ``moe_every`` says (DeepSeek-V3's
        ``first_k_dense_replace``); they use ``ffn_hidden``.
    shared_experts : int
        Experts of ``expert_ffn_hidden`` every token of an MoE layer passes through besides
        its ``top_k`` routed ones (DeepSeek's shared experts; Megatron-Core
        ``--moe-shared-expert-intermediate-size`` is ``shared_experts * expert_ffn_hidden``).
        They are split over TP like a dense MLP.
    kv_lora_rank, q_lora_rank, qk_head_dim, qk_rope_head_dim, v_head_dim : int, optional
        Multi-head latent attention (DeepSeek-V2/V3; Megatron-Core ``--multi-latent-attention``)
        when ``kv_lora_rank`` is set: keys and values come from a ``kv_lora_rank``-wide latent
        (plus a shared ``qk_rope_head_dim``-wide rotary key), queries from a ``q_lora_rank``-wide
        one (None: straight from the hidden state); each head's query and key are
        ``qk_head_dim + qk_rope_head_dim`` wide and its value ``v_head_dim``. Needs
        ``kv_heads == heads``. Unset: ordinary (grouped-query) attention of ``h / a``-wide heads.
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
    first_dense_layers: int = 0
    shared_experts: int = 0
    kv_lora_rank: Optional[int] = None
    q_lora_rank: Optional[int] = None
    qk_head_dim: Optional[int] = None
    qk_rope_head_dim: int = 0
    v_head_dim: Optional[int] = None
    dropout: bool = True
    name: Optional[str] = None

    def __post_init__(self):
        with collectives_errors():
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
            checks.require_bool("tied_embeddings", self.tied_embeddings)
            checks.require_int("experts", self.experts, minimum=1)
            checks.require_int("top_k", self.top_k, minimum=1)
            if self.top_k > self.experts:
                raise InvalidSpec(f"top_k={self.top_k} must be <= experts={self.experts}")
            _optional_int("expert_ffn_hidden", self.expert_ffn_hidden)
            checks.require_int("moe_every", self.moe_every, minimum=1)
            if self.moe_every > self.layers:
                raise InvalidSpec(f"moe_every={self.moe_every} must be <= layers={self.layers}")
            checks.require_int("first_dense_layers", self.first_dense_layers, minimum=0, maximum=self.layers - 1)
            checks.require_int("shared_experts", self.shared_experts, minimum=0)
            if self.shared_experts and not self.is_moe:
                raise InvalidSpec(f"shared_experts={self.shared_experts} needs experts > 1, got experts={self.experts}")
            for field in ("kv_lora_rank", "q_lora_rank", "qk_head_dim", "v_head_dim"):
                _optional_int(field, getattr(self, field))
            checks.require_int("qk_rope_head_dim", self.qk_rope_head_dim, minimum=0)
            if self.kv_lora_rank is not None:
                if self.qk_head_dim is None or self.v_head_dim is None:
                    raise InvalidSpec(f"kv_lora_rank={self.kv_lora_rank} (latent attention) needs qk_head_dim and "
                                      f"v_head_dim, got {self.qk_head_dim} and {self.v_head_dim}")
                if self.kv_heads not in (None, self.heads):
                    raise InvalidSpec(f"kv_lora_rank={self.kv_lora_rank} (latent attention) needs kv_heads=heads="
                                      f"{self.heads}, got kv_heads={self.kv_heads}")
            elif self.q_lora_rank is not None or self.qk_head_dim is not None or self.v_head_dim is not None:
                raise InvalidSpec("q_lora_rank, qk_head_dim and v_head_dim describe latent attention: give "
                                  "kv_lora_rank too")
            checks.require_bool("dropout", self.dropout)
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
    def mla(self):
        """Whether attention is multi-head latent attention (``kv_lora_rank`` set)."""
        return self.kv_lora_rank is not None

    @property
    def qk_dim(self):
        """Width of one head's query and key: ``h / a``, or with latent attention
        ``qk_head_dim + qk_rope_head_dim``."""
        return self.qk_head_dim + self.qk_rope_head_dim if self.mla else self.head_dim

    @property
    def v_dim(self):
        """Width of one head's value (and of its share of the attention output)."""
        return self.v_head_dim if self.mla else self.head_dim

    def attention_widths(self):
        """(Q, K, V) widths per token: ``a qk_dim``, ``g qk_dim``, ``g v_dim``.

        Examples
        --------
        >>> from collectives.training.presets import MODELS
        >>> MODELS["llama3-8b"].attention_widths()
        (4096, 1024, 1024)
        >>> MODELS["deepseek-v3"].attention_widths()
        (24576, 24576, 16384)
        """
        return self.heads * self.qk_dim, self.kv_heads * self.qk_dim, self.kv_heads * self.v_dim

    def attention_projections(self):
        """The attention's input projections as ``(out, in)`` GEMM shapes per token, and
        which of them tensor parallelism splits (``(out, in, split)``); the output projection
        is ``(h, a v_dim)``, split.

        Examples
        --------
        >>> from collectives.training.presets import MODELS
        >>> MODELS["llama3-8b"].attention_projections()
        [(6144, 4096, True)]
        >>> [shape for shape in MODELS["deepseek-v3"].attention_projections()]
        [(1536, 7168, False), (24576, 1536, True), (576, 7168, False), (32768, 512, True)]
        """
        h = self.hidden
        q, k, v = self.attention_widths()
        if not self.mla:
            return [(q + k + v, h, True)]
        # Megatron-Core MLA: the down projections are replicated over TP, the up ones split
        query = [(self.q_lora_rank, h, False), (q, self.q_lora_rank, True)] if self.q_lora_rank else [(q, h, True)]
        latent = self.kv_lora_rank + self.qk_rope_head_dim
        return query + [(latent, h, False), (self.heads * (self.qk_head_dim + self.v_head_dim), self.kv_lora_rank,
                                             True)]

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
        first = self.first_dense_layers
        return self.is_moe and index >= first and (index - first) % self.moe_every == 0

    def moe_layers_in(self, start, stop):
        """How many of layers ``start .. stop-1`` are MoE layers.

        Examples
        --------
        >>> m = Transformer(layers=8, hidden=64, heads=4, seq_len=8, vocab=10, experts=4,
        ...                 top_k=2, moe_every=3)
        >>> m.moe_layers_in(0, 8), m.moe_layers_in(1, 6)
        (3, 1)
        """
        first = self.first_dense_layers
        start, stop = max(start, first) - first, stop - first
        if not self.is_moe or stop <= start:
            return 0
        k = self.moe_every
        return -(-stop // k) - -(-start // k)

    @property
    def moe_layers(self):
        """Number of MoE layers (0 for a dense model)."""
        return self.moe_layers_in(0, self.layers)

    @property
    def dense_layers(self):
        """Number of dense (non-MoE) layers."""
        return self.layers - self.moe_layers

    def layer_kind(self, kind=None):
        """``kind`` checked against this model; None means ``"moe"`` for an MoE model, else ``"dense"``.

        Examples
        --------
        >>> from collectives.training.presets import MODELS
        >>> MODELS["mixtral-8x7b"].layer_kind(), MODELS["llama3-8b"].layer_kind()
        ('moe', 'dense')
        """
        if kind is None:
            return "moe" if self.is_moe else "dense"
        with collectives_errors():
            checks.require_choice("kind", kind, ("dense", "moe"))
        if kind == "moe" and not self.is_moe:
            raise InvalidSpec(f"kind='moe' needs experts > 1, got experts={self.experts}")
        return kind

    # -- parameters -------------------------------------------------------------

    @property
    def _mlp_matrices(self):
        return 3 if self.mlp == "swiglu" else 2

    def attention_parameters(self):
        """One layer's attention weights: Q and O ``h x h`` each, K and V ``h x (g h / a)`` each;
        with latent attention its down and up projections and the output ``a v_dim x h``."""
        projections = sum(out * inp for out, inp, _ in self.attention_projections())
        return projections + self.hidden * self.heads * self.v_dim

    def mlp_parameters(self, ffn):
        """Weights of one MLP of inner size ``ffn``: two ``h x ffn`` matrices (GELU) or three (SwiGLU)."""
        return self._mlp_matrices * self.hidden * ffn

    def router_parameters(self):
        """A router's ``h x experts`` weights."""
        return self.hidden * self.experts

    def _layer_parameters(self, kind, experts):
        attention = self.attention_parameters()
        norms = 2 * self.hidden
        if kind == "moe":
            experts_mlp = (experts + self.shared_experts) * self.mlp_parameters(self.expert_ffn_hidden)
            return attention + norms + experts_mlp + self.router_parameters()
        return attention + norms + self.mlp_parameters(self.ffn_hidden)

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
        >>> from collectives.training.presets import MODELS
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
        """Parameters one token passes through: ``top_k`` routed experts (and the shared ones)
        per MoE layer, not all.

        The router counts in full. Equals :meth:`parameters` for dense models.

        Examples
        --------
        >>> from collectives.training.presets import MODELS
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
            per matrix; MoE: ``top_k`` plus the shared experts of ``expert_ffn_hidden``), ``router``
            (``2 t h experts``, 0 for dense layers).

        Examples
        --------
        >>> m = Transformer(layers=1, hidden=4, heads=2, seq_len=8, vocab=10)
        >>> m.layer_forward_flops(1)
        {'qkv': 96, 'scores': 64, 'context': 64, 'output': 32, 'mlp': 256, 'router': 0}
        """
        kind = self.layer_kind(kind)
        h, s = self.hidden, self.seq_len
        if kind == "moe":
            mlp = 2 * tokens * self._mlp_matrices * h * self.expert_ffn_hidden * (self.top_k + self.shared_experts)
            router = 2 * tokens * h * self.experts
        else:
            mlp = 2 * tokens * self._mlp_matrices * h * self.ffn_hidden
            router = 0
        return {
            "qkv": 2 * tokens * sum(out * inp for out, inp, _ in self.attention_projections()),
            "scores": 2 * tokens * s * self.heads * self.qk_dim,
            "context": 2 * tokens * s * self.heads * self.v_dim,
            "output": 2 * tokens * self.heads * self.v_dim * h,
            "mlp": mlp,
            "router": router,
        }

    def logits_forward_flops(self, tokens):
        """Forward FLOPs of the output projection to the vocabulary: ``2 tokens h V``.

        Uses the unpadded vocabulary, as Megatron-LM's formula does (the padded GEMM does
        ``padded_vocab / vocab`` more).

        Examples
        --------
        >>> from collectives.training.presets import MODELS
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
        MoE layers count ``top_k`` and the shared experts of ``expert_ffn_hidden`` and the router.

        Examples
        --------
        >>> from collectives.training.presets import MODELS
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

    def activation_bytes_per_layer(self, micro_batch, tp, sequence_parallel, recompute, cp=1, *, kind=None,
                                   flash_attention=False, precision="bf16"):
        """Activation bytes one layer keeps for backward, per micro-batch, on one GPU.

        See :func:`collectives.training.activations.layer_activation_bytes`, which this calls.

        Examples
        --------
        >>> from collectives.training.presets import MODELS
        >>> m = MODELS["gpt3-175b"]
        >>> m.activation_bytes_per_layer(1, 8, True, "selective") == 34 * m.seq_len * m.hidden / 8
        True
        """
        from collectives.training.activations import layer_activation_bytes  # which builds on this module

        return layer_activation_bytes(self, micro_batch, tp, sequence_parallel, recompute, cp, kind=kind,
                                      flash_attention=flash_attention, precision=precision)


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
    >>> from collectives.training.presets import MODELS
    >>> padded_vocab(MODELS["gpt3-175b"], 4)
    50688
    >>> padded_vocab(128000, 8)
    128000
    """
    vocab = model.vocab if isinstance(model, Transformer) else model
    with collectives_errors():
        checks.require_int("vocab", vocab, minimum=1)
        checks.require_int("tp", tp, minimum=1)
    return padded(vocab, tp)


def padded(vocab, tp):
    """:func:`padded_vocab` of values already validated (model fields, plan fields)."""
    multiple = MAKE_VOCAB_SIZE_DIVISIBLE_BY * tp
    return -(-vocab // multiple) * multiple


# ---------------------------------------------------------------------------
# The plan
