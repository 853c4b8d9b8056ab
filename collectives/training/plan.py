"""A Megatron-LM style parallel plan and the rank groups it makes.

:class:`Parallelism` (TP, PP, DP, CP, EP, micro-batching, interleaving, sequence
parallelism, recompute, ZeRO stage, precision) is validated alone at construction and
against a model and a GPU count by :meth:`Parallelism.check_against`. The functions below
it give a plan's rank groups in Megatron-LM's order (TP innermost, then CP, DP, PP
outermost), so TP groups sit inside a node.

Examples
--------
>>> from collectives.training.presets import MODELS
>>> plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048, zero=2)
>>> plan.check_against(MODELS["llama3-405b"], gpus=16384)
>>> tp_ranks(plan).tolist(), dp_ranks(plan)[:3].tolist()
([0, 1, 2, 3, 4, 5, 6, 7], [0, 8, 16])
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from fabric import checks
from fabric.schema import gpu_count

from collectives.array_memo import read_only
from collectives.errors import InvalidSpec, collectives_errors
from collectives.training.activations import PRECISIONS, RECOMPUTE
from collectives.training.memory import chunks_in_flight, parameters_per_gpu, rank_contents
from collectives.training.model import Transformer

ZERO_STAGES = (0, 1, 2, 3)
# How plan ranks are laid out, innermost first: Megatron-LM's default (PP outermost), and its
# --use-tp-pp-dp-mapping (DP outermost: each pipeline replica on consecutive GPUs, so across
# sites only data parallelism crosses; collectives.search uses it on fabrics of several sites).
MEGATRON_ORDER = "tp-cp-dp-pp"
DP_OUTER_ORDER = "tp-cp-pp-dp"
RANK_ORDERS = (MEGATRON_ORDER, DP_OUTER_ORDER)
_POSITIVE_INTS = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "global_batch", "virtual_stages")
_BOOLS = ("sequence_parallel", "flash_attention", "tp_comm_overlap", "overlap_grad_reduce", "overlap_param_gather",
          "fused_cross_entropy", "fp8_params")


def default_grad_reduce_in_fp32(precision):
    """Megatron-LM's default for :attr:`Parallelism.grad_reduce_in_fp32`: fp32 main gradients
    for bf16 (and fp8, whose other tensors are bf16), 16-bit ones for fp16.

    Examples
    --------
    >>> default_grad_reduce_in_fp32("bf16"), default_grad_reduce_in_fp32("fp16")
    (True, False)
    """
    return precision != "fp16"


def _gpu_count(gpus):
    if hasattr(gpus, "nodes") and hasattr(gpus, "graph"):
        return gpu_count(gpus)
    with collectives_errors():
        return checks.require_int("gpus", gpus, minimum=1)


@dataclass(frozen=True, kw_only=True)
class Parallelism:
    """A Megatron-LM style parallel plan, validated on its own at construction.

    Parameters
    ----------
    tp, pp, dp, cp : int
        Tensor, pipeline, data and context parallel sizes; ``tp*pp*dp*cp`` GPUs.
    ep, etp : int
        Expert-parallel and expert-tensor-parallel sizes of the MoE layers. As in
        Megatron-Core's MoE parallel folding (Liu et al. 2025, arXiv 2504.14960), the MoE
        layers lay a stage's ``tp * cp * dp`` GPUs out again as ``etp`` (innermost) x ``ep``
        x expert data parallel, so ``ep * etp`` must divide ``tp * cp * dp`` and ``ep`` may
        exceed ``dp``. ``etp=None`` means ``tp`` (Megatron-Core's default), which with
        ``cp=1`` makes expert groups of ``ep`` consecutive data-parallel replicas.
    micro_batch : int
        Sequences per micro-batch.
    global_batch : int
        Sequences per optimizer step; a multiple of ``dp * micro_batch``.
    virtual_stages : int
        Model chunks per pipeline rank (interleaved 1F1B); > 1 needs ``pp > 1``.
    sequence_parallel : bool
        Megatron-LM sequence parallelism (Korthikanti et al. 2022); no effect at ``tp=1``.
    recompute : {"none", "selective", "full", "op"}
        Activation recomputation: Megatron-LM's none, selective (core attention) or full
        (whole layers), or torchtitan's per-op checkpointing (every other matmul and the
        elementwise ops recomputed; :func:`collectives.training.activations.layer_activation_bytes`).
    zero : {0, 1, 2, 3}
        Sharding over data-parallel ranks: 0 none; 1 optimizer state (Megatron-LM's
        distributed optimizer); 2 also gradients; 3 also weights (FSDP).
    precision : {"bf16", "fp16", "fp8"}
        GEMM precision. fp16 and bf16 run at the same tensor-core rate.
    grad_reduce_in_fp32 : bool or None
        Keep the main gradients, and reduce them over data parallel, in fp32 (4 bytes) rather
        than in the 16-bit training type (2 bytes) (Megatron-Core and NeMo
        ``grad_reduce_in_fp32``; Megatron-LM ``--accumulate-allreduce-grads-in-fp32``). None is
        Megatron-LM's default: True for bf16 and fp8, whose bf16 gradients it accumulates in
        fp32, False for fp16 (:func:`collectives.training.memory.gradient_bytes`).
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
    fused_cross_entropy : bool
        Megatron-LM's vocab-parallel cross-entropy, in place on the fp32 logits (True), or
        PyTorch's cross_entropy over an fp32 copy of them (False, torchtitan), which holds
        3.5 times the logits' memory (:mod:`collectives.training.memory`).
    fp8_params : bool
        With ``precision="fp8"``, keep the GEMM weights in FP8 rather than BF16 plus an FP8
        copy (Megatron-Core ``--fp8-param-gather``; NeMo's ``bf16_with_fp8_mixed`` recipe sets
        it): the parameter all-gather then moves 1 byte per parameter.
    rank_order : {"tp-cp-dp-pp", "tp-cp-pp-dp"}
        How plan ranks map to GPUs, innermost first: Megatron-LM's default (PP outermost)
        or its ``--use-tp-pp-dp-mapping`` (DP outermost), which keeps each pipeline
        replica on consecutive GPUs (inside a site, when sites are joined).

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
    etp: Optional[int] = None
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
    fused_cross_entropy: bool = True
    fp8_params: bool = False
    grad_reduce_in_fp32: Optional[bool] = None
    rank_order: str = MEGATRON_ORDER

    def __post_init__(self):
        # A search builds tens of thousands of plans: exact types and ranges are checked in
        # one pass, and only a plan that fails it goes through the checks that name the field.
        values = vars(self)
        if not (all(type(values[f]) is int and values[f] >= 1 for f in _POSITIVE_INTS)
                and (self.etp is None or type(self.etp) is int and self.etp >= 1)
                and (self.grad_reduce_in_fp32 is None or type(self.grad_reduce_in_fp32) is bool)
                and all(type(values[f]) is bool for f in _BOOLS)
                and self.recompute in RECOMPUTE and type(self.zero) is int and self.zero in ZERO_STAGES
                and self.precision in PRECISIONS and self.rank_order in RANK_ORDERS):
            self._check_fields()
        per_step = self.dp * self.micro_batch
        if self.global_batch % per_step:
            raise InvalidSpec(f"global_batch={self.global_batch} must be divisible by dp*micro_batch={per_step}")
        if self.virtual_stages > 1 and self.pp == 1:
            raise InvalidSpec(f"virtual_stages={self.virtual_stages} needs pp > 1, got pp={self.pp}")
        if self.etp is None:  # resolved in place, as Megatron-Core does (dataclasses.replace keeps it)
            object.__setattr__(self, "etp", self.tp)
        if self.grad_reduce_in_fp32 is None:  # likewise Megatron-LM's default for the precision
            object.__setattr__(self, "grad_reduce_in_fp32", default_grad_reduce_in_fp32(self.precision))
        stage = self.tp * self.cp * self.dp
        if stage % (self.ep * self.etp):
            raise InvalidSpec(f"ep*etp={self.ep * self.etp} must divide tp*cp*dp={stage}: the MoE layers fold "
                              "a stage's tp x cp x dp ranks into etp x ep x expert data parallel")
        if self.fp8_params and self.precision != "fp8":
            raise InvalidSpec(f"fp8_params=True needs precision='fp8', got precision={self.precision!r}")

    def _check_fields(self):
        """Raise ``InvalidSpec`` naming the first field of a wrong type or out of range."""
        with collectives_errors():
            for field in _POSITIVE_INTS:
                checks.require_int(field, getattr(self, field), minimum=1)
            if self.etp is not None:
                checks.require_int("etp", self.etp, minimum=1)
            for field in _BOOLS:
                checks.require_bool(field, getattr(self, field))
            if self.grad_reduce_in_fp32 is not None:
                checks.require_bool("grad_reduce_in_fp32", self.grad_reduce_in_fp32)
            checks.require_choice("recompute", self.recompute, RECOMPUTE)
            checks.require_int("zero", self.zero, minimum=ZERO_STAGES[0], maximum=ZERO_STAGES[-1])
            checks.require_choice("precision", self.precision, PRECISIONS)
            checks.require_choice("rank_order", self.rank_order, RANK_ORDERS)

    @property
    def world_size(self):
        """GPUs the plan uses: ``tp * pp * dp * cp`` (``ep`` and ``etp`` fold into ``tp * cp * dp``)."""
        return self.tp * self.pp * self.dp * self.cp

    @property
    def expert_dp(self):
        """Expert data-parallel size: ``tp * cp * dp / (ep * etp)``, over which expert weights
        are replicated (and their optimizer state sharded)."""
        return self.tp * self.cp * self.dp // (self.ep * self.etp)

    @property
    def micro_batches(self):
        """Micro-batches per optimizer step per data-parallel rank: ``global_batch / (dp * micro_batch)``."""
        return self.global_batch // (self.dp * self.micro_batch)

    def problems(self, model, gpus=None, *, of=None):
        """What does not fit between this plan, ``model`` and ``gpus``: a list of messages.

        See :meth:`check_against`, which raises them. An empty list means the plan fits.

        Examples
        --------
        >>> from collectives.training.presets import MODELS
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
        if model.moe_layers and model.expert_ffn_hidden % self.etp:
            out.append(f"etp={self.etp} must divide expert_ffn_hidden={model.expert_ffn_hidden}")
        shared = model.shared_experts * model.expert_ffn_hidden
        if model.moe_layers and shared % tp:
            out.append(f"tp={tp} must divide the shared experts' width {shared}")
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
                out.append(f"tp*pp*dp*cp={self.world_size} must equal "
                           + (f"the fabric's {n} GPUs" if of is None else f"the {n} GPUs of {of}"))
        return out

    def check_against(self, model, gpus=None, *, of=None):
        """Raise ``InvalidSpec`` naming everything that does not fit ``model`` and ``gpus``.

        Checks: ``tp`` divides ``heads``, ``kv_heads`` (Megatron-LM requires
        ``num_query_groups % tp == 0``; it does not replicate KV heads), ``ffn_hidden`` and
        ``expert_ffn_hidden``; ``ep`` divides ``experts``; with ``cp > 1`` ``seq_len`` is a
        multiple of ``2*cp`` (Megatron-LM's load-balanced CP); with sequence parallelism
        ``seq_len`` is a multiple of ``tp*cp``; ``pp*virtual_stages <= layers`` (an uneven
        split is allowed, see :meth:`layers_per_stage`); ``tp*pp*dp*cp`` equals the GPU
        count. The vocabulary is never rejected: it is padded (:func:`~collectives.training.model.padded_vocab`).

        Parameters
        ----------
        model : Transformer
        gpus : int or networkx.DiGraph, optional
            A GPU count, or a fabric whose ``kind == "gpu"`` nodes are counted.
        of : str, optional
            What the GPU count is of, when not the whole fabric (``"ranks="``), for the message.

        Raises
        ------
        InvalidSpec
            All problems, joined by ``"; "``.

        Examples
        --------
        >>> from collectives.training.presets import MODELS
        >>> plan = Parallelism(tp=8, pp=16, dp=64, global_batch=2048)
        >>> plan.check_against(MODELS["llama3-405b"], gpus=2048)
        Traceback (most recent call last):
        ...
        collectives.errors.InvalidSpec: tp*pp*dp*cp=8192 must equal the fabric's 2048 GPUs
        """
        problems = self.problems(model, gpus, of=of)
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
        >>> from collectives.training.presets import MODELS
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
        >>> from collectives.training.presets import MODELS
        >>> plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048)
        >>> round(plan.parameters_per_gpu(MODELS["llama3-405b"]) / 1e9, 2)
        3.19
        """
        self.check_against(model)
        return parameters_per_gpu(rank_contents(model, self))

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
        with collectives_errors():
            checks.require_int("rank", rank, minimum=0, maximum=self.pp - 1)
        return int(chunks_in_flight(self, rank))


# ---------------------------------------------------------------------------
# Rank groups
# ---------------------------------------------------------------------------


def layout(plan):
    """Global ranks indexed [pp, dp, cp, tp], laid out in the plan's ``rank_order`` (Megatron-LM's
    by default: TP innermost, PP outermost)."""
    return _layout(plan.pp, plan.dp, plan.cp, plan.tp, plan.rank_order)


@lru_cache(maxsize=64)
def _layout(pp, dp, cp, tp, order):
    if order == MEGATRON_ORDER:
        return _ranks(pp, dp, cp, tp)
    return read_only(np.arange(pp * dp * cp * tp).reshape(dp, pp, cp, tp).transpose(1, 0, 2, 3))


@lru_cache(maxsize=64)
def _ranks(*shape):
    """A read-only ``arange`` of ``shape`` (a search asks for the same few shapes thousands of times)."""
    return read_only(np.arange(np.prod(shape)).reshape(shape))


def tp_ranks(plan):
    """The first tensor-parallel group (all are alike: inside one NVLink domain)."""
    return layout(plan)[0, 0, 0, :]


def cp_groups(plan):
    """Every context-parallel group, one row per (pipeline stage, DP rank, TP rank)."""
    return _cp_groups(plan.pp, plan.dp, plan.cp, plan.tp, plan.rank_order)


@lru_cache(maxsize=16)
def _cp_groups(pp, dp, cp, tp, order):
    return read_only(_layout(pp, dp, cp, tp, order).transpose(0, 1, 3, 2).reshape(-1, cp))


def cp_hops(plan):
    """(sender, receiver) rows of every context-parallel rank to the next of its ring (the
    last to the first), the rings in :func:`cp_groups` order (read-only, one per shape).

    Examples
    --------
    >>> cp_hops(Parallelism(tp=4, cp=3, global_batch=1))[:3].tolist()
    [[0, 4], [4, 8], [8, 0]]
    """
    return _cp_hops(plan.pp, plan.dp, plan.cp, plan.tp, plan.rank_order)


@lru_cache(maxsize=16)
def _cp_hops(pp, dp, cp, tp, order):
    rings = _cp_groups(pp, dp, cp, tp, order)
    return read_only(np.stack([rings.ravel(), np.roll(rings, -1, axis=1).ravel()], axis=1))


def dp_ranks(plan):
    """The first data-parallel group."""
    return layout(plan)[0, :, 0, 0]


def dp_groups(plan):
    """Every data-parallel group, one row per (pipeline stage, CP rank, TP rank); one
    read-only array per shape, which :class:`collectives.training.communication.Communication`
    recognises again without reading it."""
    return _dp_groups(plan.pp, plan.dp, plan.cp, plan.tp, plan.rank_order)


@lru_cache(maxsize=16)
def _dp_groups(pp, dp, cp, tp, order):
    return read_only(_layout(pp, dp, cp, tp, order).transpose(0, 2, 3, 1).reshape(-1, dp))


def expert_layout(plan):
    """Global ranks indexed [pp, expert dp, ep, etp]: the MoE layers' folding of each stage's
    ``tp * cp * dp`` ranks, taken in (dp, cp, tp) order (Megatron-Core: expert TP innermost,
    then EP, then expert DP)."""
    return layout(plan).reshape(plan.pp, plan.expert_dp, plan.ep, plan.etp)


def ep_groups(plan):
    """Every expert-parallel group, one row per (stage, expert DP rank, expert TP rank).

    Examples
    --------
    >>> ep_groups(Parallelism(tp=4, cp=2, dp=8, ep=8, etp=1, global_batch=8))[0].tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
    >>> ep_groups(Parallelism(tp=2, dp=4, ep=2, global_batch=4))[0].tolist()   # etp = tp
    [0, 2]
    """
    return _ep_groups(plan.pp, plan.dp, plan.cp, plan.tp, plan.expert_dp, plan.ep, plan.etp, plan.rank_order)


@lru_cache(maxsize=16)
def _ep_groups(pp, dp, cp, tp, expert_dp, ep, etp, order):
    folded = _layout(pp, dp, cp, tp, order).reshape(pp, expert_dp, ep, etp)
    return read_only(folded.transpose(0, 1, 3, 2).reshape(-1, ep))


def etp_ranks(plan):
    """The first expert-tensor-parallel group."""
    return expert_layout(plan)[0, 0, 0, :]


def pp_pairs(plan):
    """(sender, receiver) rows: every rank of every stage to the same slot of the next
    (read-only, one array per shape)."""
    return _pp_pairs(plan.pp, plan.dp, plan.cp, plan.tp, plan.rank_order)


@lru_cache(maxsize=16)
def _pp_pairs(pp, dp, cp, tp, order):
    ranks = _layout(pp, dp, cp, tp, order)
    return read_only(np.stack([ranks[:-1].ravel(), ranks[1:].ravel()], axis=1))
