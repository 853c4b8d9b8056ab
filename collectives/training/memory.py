"""What a parallel plan keeps on each GPU: weights, gradients, optimizer state, activations.

- :func:`rank_contents`: the layers and local parameters of each pipeline rank;
- :func:`memory_per_gpu` / :func:`memory_per_stage`: bytes per GPU, stage by stage, with
  each layer's activations from :mod:`collectives.training.activations`;
- :func:`usable_memory`: what of a GPU's HBM a plan can fill.

Conventions as in :mod:`collectives.training.model`; ``p`` pipeline-parallel size, ``v``
virtual stages per pipeline rank, ``m`` micro-batches per step.

Examples
--------
>>> import collectives
>>> model = collectives.MODELS["llama3-405b"]
>>> plan = collectives.Parallelism(tp=8, pp=16, dp=128, global_batch=2048, zero=2)
>>> mem = memory_per_gpu(model, plan)
>>> round(mem["total"] / 1e9, 1)
70.7
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from collectives.training.activations import layer_activation_bytes
from collectives.training.model import padded

# Bytes per logit the loss holds at its peak (see _output_activation_bytes).
FUSED_LOSS_BYTES = 4
UNFUSED_LOSS_BYTES = 14

# What a GPU's HBM holds besides the model (fits = total <= usable_memory(gpu)):
# - the CUDA context of a PyTorch process with its kernels and the cuBLAS/cuDNN workspaces
#   (CUDA 11.7+ lazy module loading) [estimate: 0.3-0.9 GB reported for H100 processes];
# - NCCL's buffers: NCCL_BUFFSIZE 4 MiB per channel and peer for the Simple protocol, plus
#   the LL and LL128 ones (NCCL documentation, environment variables), over up to 32
#   channels and the few communicators (TP, CP, DP, PP, EP) of a step [estimate];
# - what the PyTorch caching allocator loses to fragmentation, as a share of HBM [estimate].
CUDA_CONTEXT_BYTES = 0.5 * 2**30
NCCL_BUFFER_BYTES = 1.0 * 2**30
ALLOCATOR_RESERVE = 0.03
# Bytes per parameter of the Megatron-LM distributed-optimizer path with bf16 parameters and
# fp32 gradients (Megatron-LM docs, "Distributed optimizer": 18 bytes/param unsharded,
# 6 + 12/d sharded): bf16 parameter 2, fp32 main gradient 4, Adam fp32 master parameter 4 +
# first moment 4 + second moment 4 = 12. The 12 is ZeRO's K = 12 (Rajbhandari et al. 2020,
# "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", section 3.1, whose
# 16 bytes/param = 2 + 2 + 12 assume fp16 gradients; Megatron keeps gradients in fp32).
WEIGHT_BYTES = 2
GRADIENT_BYTES = 4
OPTIMIZER_BYTES = 12
# Main gradients kept and reduced in the 16-bit type (grad_reduce_in_fp32=False): Megatron-LM's
# default for fp16 unless --accumulate-allreduce-grads-in-fp32 is given; bf16 forces fp32
# (Megatron-LM arguments.py: "bfloat16 requires gradient accumulation and all-reduce to be done
# in fp32"), as NeMo's bf16_mixed recipe does (grad_reduce_in_fp32=True), whose FP8
# performance scripts turn it off. Llama 3 reduce-scatters gradients in FP32 (Llama 3 report,
# section 3.3.2).
HALF_GRADIENT_BYTES = 2
# FP8 training (Transformer Engine) keeps the bf16 weights above and caches, per GEMM weight,
# an FP8 copy and its transpose (Hopper FP8 GEMMs take only TN operands) across micro-batches:
# 1 + 1 byte per transformer-layer GEMM parameter. Embedding and output layer stay in bf16.
# [mem: Transformer Engine Float8Tensor transpose cache; not found in a public document]
# With FP8 parameters (fp8_params) the GEMM weight itself is the 1-byte FP8 tensor and its
# transpose the other byte: 2 bytes per GEMM parameter in all, as bf16 weights alone.
FP8_WEIGHT_COPY_BYTES = 2


def chunks_in_flight(plan, rank):
    """Micro-batch chunks pipeline rank ``rank`` (an int or an array of ranks, known to be valid)
    holds at its peak; :meth:`collectives.Parallelism.in_flight` explains the counts."""
    pp, v, m = plan.pp, plan.virtual_stages, plan.micro_batches
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
    """Final norm input 2sbh, output-GEMM input 2sbh, and the logits the loss keeps.

    Korthikanti et al. 2022 section 4.3: ``4 s b h / t (1 + V / h)`` with sequence
    parallelism (Megatron's vocab-parallel cross-entropy keeps the fp32 logits and works
    on them in place); without it the two ``h``-wide tensors are not split. With
    ``fused_cross_entropy=False`` (PyTorch's cross_entropy on an fp32 copy, torchtitan) the
    bf16 logits 2, their fp32 copy 4 and its log-softmax 4 are kept and backward adds the
    fp32 gradient 4: ``14 s b V / t``.
    """
    sb = model.seq_len / plan.cp * plan.micro_batch
    split = plan.tp if plan.sequence_parallel else 1
    per_logit = FUSED_LOSS_BYTES if plan.fused_cross_entropy else UNFUSED_LOSS_BYTES
    return 4 * sb * model.hidden / split + per_logit * sb * vocab / plan.tp


def rank_contents(model, plan):
    """Per pipeline rank: layers by kind and local parameters (after TP/PP/EP, before ZeRO);
    read-only, shared by plans with the same model, tp, pp, virtual stages, ep and etp (a
    search meets each a few hundred times)."""
    key = (model, plan.tp, plan.pp, plan.virtual_stages, plan.ep, plan.etp)
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

    ``dense`` parameters are sharded by ZeRO over ``dp * cp``, ``expert`` ones over the
    expert data-parallel group (``tp * cp * dp / (ep * etp)``); ``gemm`` are the layer matrix
    weights (FP8 copies); ``largest_layer`` the biggest layer's local parameters (ZeRO-3
    gathers).
    """

    dense_layers: np.ndarray
    moe_layers: np.ndarray
    dense: np.ndarray
    expert: np.ndarray
    gemm: np.ndarray
    largest_layer: np.ndarray


def _count_rank_contents(model, plan):
    """:func:`rank_contents`, counted."""
    tp, pp, v = plan.tp, plan.pp, plan.virtual_stages
    h = model.hidden
    vocab = padded(model.vocab, tp)
    counts = plan.layers_per_stage(model)
    starts = [sum(counts[:i]) for i in range(len(counts))]
    attention = model.attention_parameters() / tp
    dense_mlp = model.mlp_parameters(model.ffn_hidden) / tp
    expert_mlp = model.experts // plan.ep * model.mlp_parameters(model.expert_ffn_hidden) / plan.etp
    shared_mlp = model.shared_experts * model.mlp_parameters(model.expert_ffn_hidden) / tp  # split like a dense MLP
    norms = 2 * h  # replicated over TP ranks
    router = model.router_parameters()  # replicated over TP ranks
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
            c["dense"] += moe * (attention + norms + router + shared_mlp) + dense * (attention + norms + dense_mlp)
            c["expert"] += moe * expert_mlp
            c["gemm"] += moe * (attention + shared_mlp + expert_mlp) + dense * (attention + dense_mlp)
            if moe:
                c["largest_layer"] = max(c["largest_layer"], attention + norms + router + shared_mlp + expert_mlp)
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


def gradient_bytes(grad_reduce_in_fp32):
    """Bytes per main gradient, in memory and in the data-parallel reduction: fp32 or 16-bit
    (:attr:`collectives.Parallelism.grad_reduce_in_fp32`).

    Examples
    --------
    >>> from collectives import Parallelism
    >>> [gradient_bytes(Parallelism(global_batch=1, precision=p).grad_reduce_in_fp32) for p in ("bf16", "fp16")]
    [4, 2]
    """
    return GRADIENT_BYTES if grad_reduce_in_fp32 else HALF_GRADIENT_BYTES


@lru_cache(maxsize=4096)
def parameters_per_gpu(contents):
    """The most loaded rank's parameters, from :func:`rank_contents`."""
    return float((contents.dense + contents.expert).max())


def usable_memory(gpu):
    """Bytes of ``gpu``'s HBM a plan can fill: less the CUDA context, NCCL's buffers and the
    allocator's fragmentation (:data:`CUDA_CONTEXT_BYTES`, :data:`NCCL_BUFFER_BYTES`,
    :data:`ALLOCATOR_RESERVE`).

    Examples
    --------
    >>> import fabric
    >>> round(usable_memory(fabric.GPUS["H100"]) / 2**30, 1)
    76.1
    """
    return gpu.hbm_bytes * (1 - ALLOCATOR_RESERVE) - CUDA_CONTEXT_BYTES - NCCL_BUFFER_BYTES


def memory_per_stage(model, plan):
    """Memory per GPU on each pipeline rank, in bytes: a list of ``pp`` breakdowns.

    See :func:`memory_per_gpu` for what is counted; each dict also has ``stage`` (the
    pipeline rank) and ``layers`` (layers on it).

    Examples
    --------
    >>> from collectives import MODELS, Parallelism
    >>> plan = Parallelism(tp=8, pp=16, dp=128, global_batch=2048, zero=2)
    >>> stages = memory_per_stage(MODELS["llama3-405b"], plan)
    >>> [s["layers"] for s in stages][:3], max(stages, key=lambda s: s["total"])["stage"]
    ([7, 8, 8], 1)
    """
    plan.check_against(model)
    return _memory_per_stage(model, plan, rank_contents(model, plan))


@lru_cache(maxsize=4096)
def _layer_activations(model, micro_batch, tp, sequence_parallel, recompute, cp, kind, flash_attention, precision):
    """:func:`~collectives.training.activations.layer_activation_bytes`, remembered (a search asks for a few
    dozen distinct values tens of thousands of times)."""
    return layer_activation_bytes(model, micro_batch, tp, sequence_parallel, recompute, cp, kind=kind,
                                  flash_attention=flash_attention, precision=precision)


def _memory_per_stage(model, plan, contents):
    """:func:`memory_per_stage` of a checked plan, from its :func:`rank_contents`."""
    memory = _stage_memory(model, plan, contents)
    layers = contents.dense_layers + contents.moe_layers
    return [{"stage": rank, "layers": int(layers[rank]), **{key: float(values[rank]) for key, values in memory.items()}}
            for rank in range(plan.pp)]


def worst_memory(model, plan, contents):
    """:func:`memory_per_gpu` of a checked plan, from its :func:`rank_contents`."""
    memory = _stage_memory(model, plan, contents)
    worst = int(memory["total"].argmax())  # the first of equals
    return {key: float(values[worst]) for key, values in memory.items()}


def _stage_memory(model, plan, contents):
    """Weights, gradients, optimizer, activations and total bytes per GPU: arrays by rank.

    The state and the activations each depend on a few of the plan's fields; a search
    meets each combination many times, so both are remembered.
    """
    weights, gradients, optimizer, state = _state_bytes(contents, plan.dp * plan.cp, plan.expert_dp, plan.zero,
                                                        plan.precision, plan.fp8_params, plan.pp > 1,
                                                        gradient_bytes(plan.grad_reduce_in_fp32))
    key = (model, contents, plan.micro_batch, plan.sequence_parallel, plan.recompute, plan.cp, plan.micro_batches,
           plan.flash_attention, plan.precision, plan.fused_cross_entropy)
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
def _state_bytes(contents, shard, expert_shard, zero, precision, fp8_params, pipelined, grad_bytes):
    """Weights, gradients, optimizer state and their sum per rank, read-only arrays;
    ``shard`` is ``dp * cp``, over which Megatron-LM shards dense parameters, and
    ``expert_shard`` the expert data-parallel size, over which it shards expert ones;
    ``pipelined``: the plan has ``pp > 1``; ``grad_bytes``: per main gradient."""
    params = contents.dense + contents.expert
    sharded = contents.dense / shard + contents.expert / expert_shard
    weights = WEIGHT_BYTES * params
    gradients = grad_bytes * (sharded if zero >= 2 else params)
    optimizer = OPTIMIZER_BYTES * (sharded if zero >= 1 else params)
    if zero >= 3 and pipelined:
        # FSDP with pipeline parallelism keeps a stage's gathered weights from its first
        # micro-batch to its last and accumulates their 16-bit gradients unsharded, to avoid an
        # all-gather per micro-batch (torchtitan's default: no resharding after forward when
        # PP is on); the fp32 gradient shard is reduce-scattered once
        weights = WEIGHT_BYTES * params
        gradients = gradients + WEIGHT_BYTES * params
    elif zero >= 3:
        # sharded weights plus the gathered layer being computed and the prefetched next one;
        # backward also holds the unsharded gradients of the layer just computed and of the
        # one being reduce-scattered (FSDP's reduce-scatter of each layer's gradients)
        weights = WEIGHT_BYTES * (sharded + 2 * contents.largest_layer)
        gradients = gradients + grad_bytes * 2 * contents.largest_layer
    if precision == "fp8" and not fp8_params:
        # the FP8 copies exist for the weights a GPU holds whole: all of its layers', or with
        # ZeRO-3 the two gathered layers' only
        whole = 2 * contents.largest_layer if zero >= 3 and not pipelined else contents.gemm
        weights = weights + FP8_WEIGHT_COPY_BYTES * whole
    state = weights + gradients + optimizer
    for values in (weights, gradients, optimizer, state):
        values.flags.writeable = False
    return weights, gradients, optimizer, state


def _dispatch_buffer_bytes(model, plan):
    """Send and receive buffers of one MoE layer's dispatch: each GPU's ``T / tp`` tokens
    (gathered over its ``etp`` group) times ``top_k`` copies of ``h`` 16-bit values, twice.
    Megatron-Core pads them to the capacity factor when one is set; not modelled (dropless)."""
    tokens = model.seq_len / plan.cp * plan.micro_batch / plan.tp * plan.etp
    return 2 * tokens * model.top_k * model.hidden * 2


def _activation_bytes(model, plan, contents):
    """Activation bytes per rank at its peak of micro-batches in flight, a read-only array."""
    tp, pp, v = plan.tp, plan.pp, plan.virtual_stages

    def per_layer(recompute, kind):
        return _layer_activations(model, plan.micro_batch, tp, plan.sequence_parallel, recompute, plan.cp, kind,
                                  plan.flash_attention, plan.precision)

    units = chunks_in_flight(plan, np.arange(pp))
    layer_act = contents.dense_layers * per_layer(plan.recompute, "dense")
    if model.is_moe:
        layer_act = layer_act + contents.moe_layers * per_layer(plan.recompute, "moe")
    activations = units * layer_act / v
    if model.is_moe:
        # while an MoE layer runs, its all-to-all send and receive buffers (the dispatched
        # token copies, Megatron-Core's alltoall dispatcher) exist besides what is kept
        activations = activations + np.where(contents.moe_layers > 0, _dispatch_buffer_bytes(model, plan), 0.0)
    activations[0] += units[0] / v * _embedding_activation_bytes(model, plan)
    activations[-1] += _output_activation_bytes(model, plan, padded(model.vocab, tp))
    if plan.recompute == "full":
        # during backward one layer is rematerialised (its scores recomputed block by block)
        rematerialised = np.where(contents.dense_layers > 0, per_layer("selective", "dense"), 0.0)
        if model.is_moe:
            moe = np.where(contents.moe_layers > 0, per_layer("selective", "moe"), 0.0)
            rematerialised = np.maximum(rematerialised, moe)
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
    gradients    4 B/param (fp32)      ``/ d`` with ``zero >= 2``; 2 B with
                                       ``grad_reduce_in_fp32=False``
    optimizer    12 B/param            fp32 master + Adam moments, ``/ d`` with
                                       ``zero >= 1``
    ===========  ====================  ==================================================

    ``d`` is ``dp * cp`` for dense parameters (Megatron-LM shards the distributed
    optimizer over the data-parallel group including CP) and the expert data-parallel size
    ``tp * cp * dp / (ep * etp)`` for expert parameters. A rank's parameters are its layers'
    (attention and MLP split ``tp`` ways, norms and routers replicated; ``experts / ep``
    experts per MoE layer, split ``etp`` ways, Megatron-Core's parallel folding), plus on the first stage the
    embedding (padded vocabulary, split ``tp`` ways), and on the last the final norm and
    the output head (untied, or Megatron's copy of a tied embedding when ``pp > 1``).

    Activations: :func:`~collectives.training.activations.layer_activation_bytes` for each
    layer of the rank,
    times the micro-batches it holds at its peak (:meth:`collectives.Parallelism.in_flight`: ``pp`` on
    the first rank of a 1F1B pipeline, ``pp (1 + (pp-1)/(pp v))`` layer-equivalents with
    interleaving, Korthikanti et al. 2022 section 4.2.3); plus the embedding dropout mask on
    the first rank and, on the last rank, the output layer's inputs and fp32 logits for one
    micro-batch (Korthikanti et al. section 4.3, ``4 s b h / t (1 + V / h)``); with full
    recompute, plus one layer's (selective-level) activations being recomputed.

    Not counted here: the CUDA context, NCCL buffers and allocator fragmentation (they
    are taken off the HBM by :func:`usable_memory`), temporary buffers (logit gradients,
    communication staging) and token ids. Treat ``total`` as a floor.

    Returns
    -------
    dict
        ``weights``, ``gradients``, ``optimizer``, ``activations``, ``total`` (bytes) of
        the pipeline rank with the largest total.

    Examples
    --------
    >>> from collectives import MODELS, Parallelism
    >>> gpt = MODELS["gpt3-175b"]
    >>> mem = memory_per_gpu(gpt, Parallelism(tp=1, pp=1, dp=8, global_batch=8))
    >>> mem["weights"] > 80e9
    True
    >>> sorted(mem)
    ['activations', 'gradients', 'optimizer', 'total', 'weights']
    """
    plan.check_against(model)
    return worst_memory(model, plan, rank_contents(model, plan))