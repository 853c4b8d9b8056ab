"""One transformer layer's time on one GPU for one micro-batch: compute and exposed communication.

Compute from :mod:`collectives.training.compute` (GEMMs, attention, memory-bound kernels);
tensor-, context- and expert-parallel communication from
:class:`collectives.training.communication.Communication` on the plan's rank groups, with
what overlaps the GEMMs and attention next to it taken off.
"""

from dataclasses import dataclass

from collectives.training.communication import ACTIVATION_BYTES
from collectives.training.compute import (
    ACTIVATION_ELEMENTS,
    BACKWARD_ATTENTION,
    BACKWARD_GEMM,
    BACKWARD_MEMORY,
    ELEMENTWISE_KERNELS,
    NORM_RESIDUAL_ELEMENTS,
    attention_time,
    fp8_cast_time,
    gemm_time,
    memory_time,
    unfused_attention_time,
)
from collectives.training.plan import cp_hops, ep_groups, etp_ranks, tp_ranks

# Bytes per attention-output element that ring attention's merge of one step moves: the fp32
# running output read and written (8) and the step's bf16 output read (2).
CP_MERGE_BYTES = 10
# Memory-bound passes over the dispatched token copies in an MoE layer's forward: permute and
# unpermute (each reads and writes them).
PERMUTE_PASSES = 2


@dataclass(frozen=True)
class LayerTimes:
    """Seconds of one transformer layer on one GPU for one micro-batch."""

    forward: float  # compute + exposed TP/CP/EP communication, one microbatch
    backward: float
    tp: float  # exposed TP communication inside forward + backward
    cp: float
    ep: float


def layer_times(model, plan, gpu, comm, compute, moe):
    """Seconds of one transformer layer on one GPU for one micro-batch of a checked plan.

    Parameters
    ----------
    model : collectives.Transformer
    plan : collectives.Parallelism
    gpu : fabric.catalog GPU spec
    comm : collectives.training.communication.Communication
        Prices the plan's TP, CP and EP collectives on the fabric.
    compute : collectives.training.compute.ComputeParams
    moe : bool
        An MoE layer (experts, router, dispatch and combine) or a dense one.

    Returns
    -------
    LayerTimes

    Examples
    --------
    >>> import fabric, collectives
    >>> from collectives.training.communication import Communication
    >>> from collectives.training.compute import DEFAULT_COMPUTE
    >>> G = fabric.dgx_superpod(1)
    >>> plan = collectives.Parallelism(tp=8, global_batch=8)
    >>> t = layer_times(collectives.MODELS["llama3-8b"], plan, G.graph["gpu"],
    ...                 Communication(G, "analytic", collectives.DEFAULT_PARAMS), DEFAULT_COMPUTE, moe=False)
    >>> t.backward > t.forward > t.tp / 2 > 0
    True
    """
    tp, cp, b = plan.tp, plan.cp, plan.micro_batch
    s = model.seq_len
    h = model.hidden
    heads = model.heads
    d = (model.qk_dim + model.v_dim) / 2  # QK^T and AV widths (equal but for latent attention)
    T = b * s // cp  # tokens on this GPU's CP slice
    prec = plan.precision
    ffn = model.expert_ffn_hidden if moe else model.ffn_hidden
    glu = model.mlp == "swiglu"

    # every linear layer as (count, tokens, out, in): count GEMMs of (tokens x in) @ (in x out)
    qkv_shapes = [(1, T, out // tp if split else out, inp) for out, inp, split in model.attention_projections()]
    proj_shapes = [(1, T, h, heads * model.v_dim // tp)]
    etp = plan.etp if moe else tp  # the MLP's tensor-parallel size
    if moe:
        # Each local expert sees the tokens routed to it from the whole EP group: a GPU
        # dispatches its T/tp sequence-parallel tokens (gathered over its etp group), so an
        # expert gets T k ep etp / (experts tp) of them, and the stage's expert work is the
        # same whatever the folding (T k / tp tokens through a full expert per GPU).
        tokens = max(1, T * model.top_k * plan.ep * etp // (model.experts * tp))
        experts_here = model.experts // plan.ep
        up_shapes = [(experts_here, tokens, (2 if glu else 1) * ffn // etp, h)]
        down_shapes = [(experts_here, tokens, h, ffn // etp)]
        if model.shared_experts:  # on every token, split over TP like a dense MLP
            shared = model.shared_experts * ffn // tp
            up_shapes.append((1, T, (2 if glu else 1) * shared, h))
            down_shapes.append((1, T, h, shared))
        router = gemm_time(T, model.experts, h, gpu, prec, compute)
    else:
        up_shapes = [(1, T, (2 if glu else 1) * ffn // tp, h)]
        down_shapes = [(1, T, h, ffn // tp)]
        router = 0.0
    qkv, proj, up, down = (sum(count * gemm_time(m, n, k, gpu, prec, compute) for count, m, n, k in shapes)
                           for shapes in (qkv_shapes, proj_shapes, up_shapes, down_shapes))
    casts_fwd = casts_bwd = 0.0
    if prec == "fp8":  # each FP8 linear quantizes its input forward, its output gradient backward
        linears = qkv_shapes + proj_shapes + up_shapes + down_shapes
        casts_fwd = sum(count * fp8_cast_time(m * k, gpu, compute) for count, m, _, k in linears)
        casts_bwd = sum(count * fp8_cast_time(m * n, gpu, compute) for count, m, n, _ in linears)
    if plan.flash_attention:
        # with context parallelism, ring attention: cp kernels, one per KV block of s/cp keys
        attn = cp * attention_time(b, s // cp, s // cp, heads // tp, d, gpu, compute)
        if cp > 1:
            # each step after the first merges its partial output into the running one with
            # the softmax statistics (online softmax): read and write the fp32 accumulator
            # and read the step's output, 10 bytes per output element (TE's ring attention)
            attn += (cp - 1) * memory_time(T * h // tp * CP_MERGE_BYTES / 2, gpu)
    else:
        attn = unfused_attention_time(b, s // cp, s, heads // tp, d, gpu, prec, compute)
    hidden_split = tp if plan.sequence_parallel else 1
    elementwise = memory_time(T * (NORM_RESIDUAL_ELEMENTS * h / hidden_split + ACTIVATION_ELEMENTS[model.mlp] * ffn / tp), gpu)
    if moe:
        elementwise *= model.top_k
        # the token copies are permuted into expert order before the dispatch and back after
        # the combine: each a read and a write of every copy (Megatron-Core's permute and
        # unpermute kernels), the weighted sum of the top_k copies folded into the unpermute
        copies = T // tp * etp * model.top_k
        elementwise += memory_time(PERMUTE_PASSES * 2 * copies * h, gpu)
    elementwise += ELEMENTWISE_KERNELS * compute.kernel_overhead

    # Tensor parallel: with sequence parallelism an all-gather before and a reduce-scatter
    # after attention and MLP; without it, two all-reduces. Backward mirrors forward. An MoE
    # MLP gathers over its expert-TP group only (none at etp=1: each GPU dispatches its own
    # sequence-parallel tokens), unless shared experts, split over TP, need the TP gather.
    act = T * h * ACTIVATION_BYTES
    tp_group = tp_ranks(plan)
    mlp_group, mlp_act = (etp_ranks(plan), act * etp // tp) if moe and not model.shared_experts else (tp_group, act)
    if plan.sequence_parallel:
        pairs = [(comm.time("all_gather", tp_group, act), qkv), (comm.time("reduce_scatter", tp_group, act), proj),
                 (comm.time("all_gather", mlp_group, mlp_act), up),
                 (comm.time("reduce_scatter", mlp_group, mlp_act), down)]
    else:
        pairs = [(0.0, qkv), (comm.time("all_reduce", tp_group, act), proj), (0.0, up),
                 (comm.time("all_reduce", mlp_group, mlp_act), down)]
    if plan.tp_comm_overlap:  # Megatron's userbuffers overlap each collective with its GEMM
        tp_fwd = sum(max(0.0, c - g) for c, g in pairs)
        tp_bwd = sum(max(0.0, c - BACKWARD_GEMM * g) for c, g in pairs)
    else:
        tp_fwd = tp_bwd = sum(c for c, _ in pairs)

    # Context parallel (ring attention): K and V pass around the CP ring, overlapped with
    # the attention blocks; backward sends K, V and their gradients.
    cp_fwd = cp_bwd = 0.0
    if cp > 1:
        hop = cp_hop_time(model, plan, comm)
        cp_fwd = max(0.0, (cp - 1) * hop - attn)
        cp_bwd = max(0.0, 2 * (cp - 1) * hop - BACKWARD_ATTENTION * attn)

    # Expert parallel: dispatch and combine all-to-alls, twice more in backward.
    ep_fwd = ep_bwd = 0.0
    if moe and plan.ep > 1:
        dispatched = T // tp * etp * model.top_k * h * ACTIVATION_BYTES  # each GPU's token copies
        a2a = comm.time("all_to_all", ep_groups(plan), dispatched, concurrent=True)
        ep_fwd = ep_bwd = 2 * a2a

    gemms = qkv + proj + up + down + router
    forward = gemms + attn + elementwise + casts_fwd
    backward = BACKWARD_GEMM * gemms + BACKWARD_ATTENTION * attn + BACKWARD_MEMORY * elementwise + casts_bwd
    if plan.recompute == "full":
        backward += forward
    elif plan.recompute == "selective":
        backward += attn  # Megatron recomputes the core attention
    elif plan.recompute == "op":
        backward += gemms / 2 + elementwise  # torchtitan recomputes every other matmul and the elementwise ops
    return LayerTimes(
        forward=forward + tp_fwd + cp_fwd + ep_fwd,
        backward=backward + tp_bwd + cp_bwd + ep_bwd + (tp_fwd + cp_fwd + ep_fwd if plan.recompute == "full" else 0.0),
        tp=tp_fwd + tp_bwd,
        cp=cp_fwd + cp_bwd,
        ep=ep_fwd + ep_bwd,
    )


def cp_hop_time(model, plan, comm):
    """Seconds for every context-parallel rank to pass its K and V block to the next of its
    ring, all rings at once: the slowest hop sets the pace (a ring that leaves its node or its
    site waits for that hop)."""
    _, k_width, v_width = model.attention_widths()
    kv_bytes = plan.micro_batch * model.seq_len // plan.cp * (k_width + v_width) // plan.tp * ACTIVATION_BYTES
    hops = cp_hops(plan)
    return comm.send(hops if comm.sees_groups else hops[:plan.cp], kv_bytes)


def remembered_layer_times(model, plan, cluster, compute, moe):
    """:func:`layer_times`, remembered in ``cluster`` under what it reads of the plan: the
    plans of a search that differ only in pp, dp, interleaving or ZeRO stage run the same
    dense layers."""
    # its rank groups: a dense layer reads the first TP group and, with CP, every CP ring,
    # which enters through the time of one hop (the layouts with the same hop time share);
    # an MoE layer all its EP groups too
    if moe:
        layout = (plan.tp, plan.cp, plan.ep, plan.etp, plan.dp, plan.pp, plan.rank_order)
    elif plan.cp > 1:
        where = ("cp hop", model, plan.tp, plan.cp, plan.pp, plan.dp, plan.rank_order, plan.micro_batch)
        hop = cluster.layer_times.get(where)
        if hop is None:
            hop = cluster.layer_times[where] = cp_hop_time(model, plan, cluster.comm)
        layout = (plan.tp, plan.cp, hop)
    else:
        layout = (plan.tp, plan.cp)
    key = (model, compute, moe, layout, plan.micro_batch, plan.precision, plan.flash_attention,
           plan.sequence_parallel, plan.tp_comm_overlap, plan.recompute)
    times = cluster.layer_times.get(key)
    if times is None:
        times = cluster.layer_times[key] = layer_times(model, plan, cluster.gpu, cluster.comm, compute, moe)
    return times
