"""Time of the compute in a transformer layer on one GPU: GEMMs, attention, memory-bound ops.

GEMMs run at ``gemm_efficiency`` of the GPU's maximum achievable matmul rate (a measured
fraction of the dense peak, per GPU, in :data:`fabric.GPUS`), never faster than their operands
stream from HBM (a roofline), plus a fixed ``kernel_overhead`` per kernel (launch,
wave-quantisation tail and synchronisation), which is what makes small GEMMs and fast
GPUs less efficient. Attention runs FlashAttention-style (scores never reach HBM) at
``attention_efficiency`` of the BF16 peak, causal masks halving its work. Norms,
residual adds, dropout and activations are memory-bound: their bytes over HBM bandwidth,
plus the overhead of their kernels.

``attention_efficiency`` is a published figure (FlashAttention-2 on H100 reaches ~35% of
peak; Shah et al. 2024, FlashAttention-3, section 1); ``gemm_efficiency`` and
``kernel_overhead`` are fitted once to
the package data's published runs on A100, H100 and H200 together
(:mod:`collectives.training.calibration`); the byte counts below are derived, not fitted.

Examples
--------
>>> from fabric import GPUS
>>> t = gemm_time(8192, 8192, 8192, GPUS["H100"], "bf16", DEFAULT_COMPUTE)
>>> 0.5 < 2 * 8192**3 / t / GPUS["H100"].bf16_flops < 0.9
True
"""

from dataclasses import dataclass

from fabric.checks import require_non_negative, require_positive

from collectives.errors import InvalidSpec

BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}

# Bytes moved per token per layer by memory-bound operators in the forward pass, in units
# of 2-byte elements, counted from Megatron-LM's layer: two LayerNorms (read + write h
# each: 4h), two residual adds (read 2h, write h each: 6h), two dropouts (read + write h,
# plus a 1-byte mask: ~5h) -> 15h on the hidden size; the MLP activation reads and writes
# the FFN width (GELU 2 ffn; SwiGLU reads gate and up, writes one: 3 ffn).
NORM_RESIDUAL_ELEMENTS = 15
ACTIVATION_ELEMENTS = {"gelu": 2, "swiglu": 3}
# Memory-bound kernels per layer forward in Megatron-LM's fused implementation: two
# LayerNorms, two bias-dropout-residual adds, the bias-activation, rotary or softmax
# bookkeeping and the two sequence-parallel layout copies: about 8.
ELEMENTWISE_KERNELS = 8
# Backward passes move about twice the forward bytes (read saved input and output grad,
# write input grad) and do twice the GEMM FLOPs (input and weight gradients).
BACKWARD_GEMM = 2.0
BACKWARD_MEMORY = 2.0
# FlashAttention-2's backward runs five matmuls to the forward's two (Dao 2023).
BACKWARD_ATTENTION = 2.5
# Megatron-LM's vocab-parallel cross-entropy (megatron/core/tensor_parallel/cross_entropy.py,
# unfused, fp32), bytes per logit of this GPU's vocabulary shard and kernels. Forward: the
# bf16 logits cast to fp32 (read 2, write 4), max (read 4), subtract it in place (4 + 4),
# exp in place (4 + 4), sum (4), normalise in place (4 + 4) -> 38 B in 6 kernels. Backward:
# the saved softmax scaled by the output gradient (4 + 4), cast back to bf16 (4 + 2) -> 14 B
# in 2 kernels.
CROSS_ENTROPY_BYTES = {"forward": 38, "backward": 14}
CROSS_ENTROPY_KERNELS = {"forward": 6, "backward": 2}
# An FP8 GEMM reads FP8 operands, so each linear layer quantizes the bf16 tensor entering it:
# its input in the forward, its output gradient in the backward. Hopper's FP8 tensor cores take
# one operand layout only, so a row-wise and a column-wise (transposed) FP8 copy are both
# written, the second for the other backward GEMM (Transformer Engine documentation,
# "Performance considerations", handling transposes; Blackwell's MXFP8 likewise keeps both,
# scaled along different axes): read 2 B, write 1 + 1 B per element. The amax that sets the
# scale is fused into the cast (delayed scaling); the weights are cast once per step and reused
# by every micro-batch (Transformer Engine's weight caching), so neither is counted. This cost
# is why TE reports FP8 linear layers ~1.4-1.6x faster than BF16 "with quantization" where the
# pre-quantized GEMMs alone are ~2x (TE documentation, "GEMM speedups across precisions").
FP8_CAST_BYTES = 4


@dataclass(frozen=True, kw_only=True)
class ComputeParams:
    """Fitted efficiency of the compute model.

    Attributes
    ----------
    gemm_efficiency : float
        Fraction of the GPU's maximum achievable matmul rate
        (:attr:`fabric.catalog.GPUSpec.matmul_efficiency` of the dense peak) that the
        training GEMMs reach on average.
    kernel_overhead : float
        Seconds every kernel costs beyond its work.
    attention_efficiency : float
        Fraction of BF16 dense peak FlashAttention reaches on the causal work of long
        sequences: ~35% for FlashAttention-2 on H100 (Shah et al. 2024), 50-73% on A100
        (Dao 2023); the Hopper figure is the default since current training runs on Hopper.
    attention_half_keys : float
        Keys per kernel at which FlashAttention runs at half that rate: its rate is
        ``attention_efficiency * L / (L + attention_half_keys)`` for ``L`` keys, so short
        blocks (ring attention's ``s / cp`` per step) run well below peak. FlashAttention-2's
        forward+backward on A100 (head dim 128, causal) rises from ~90 TFLOP/s at 512
        tokens to ~190 at 16k (Dao 2023, Figure 5), which this curve follows with 512
        [mem: read off the paper's figure].
    """

    # fitted together to the 36 published runs on A100, H100 and H200 (calibration.fit):
    # python -m collectives.training.calibration
    gemm_efficiency: float = 0.758
    # fitted, same run: 0 within the data's resolution once the cross-entropy bytes and the
    # per-GPU achievable matmul rate are modelled
    kernel_overhead: float = 0.0
    attention_efficiency: float = 0.35
    attention_half_keys: float = 512.0

    def __post_init__(self):
        for name in ("gemm_efficiency", "attention_efficiency"):
            require_positive(name, getattr(self, name))
        require_non_negative("kernel_overhead", self.kernel_overhead)
        require_non_negative("attention_half_keys", self.attention_half_keys)
        for name in ("gemm_efficiency", "attention_efficiency"):
            if getattr(self, name) > 1:
                raise InvalidSpec(f"{name}={getattr(self, name)} must be <= 1")


DEFAULT_COMPUTE = ComputeParams()


def checked_compute(compute):
    """``compute``, or :data:`DEFAULT_COMPUTE` for None; ``InvalidSpec`` for anything else
    than a :class:`ComputeParams`.

    Examples
    --------
    >>> checked_compute(None) is DEFAULT_COMPUTE
    True
    >>> checked_compute({"gemm_efficiency": 0.7})
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: compute={'gemm_efficiency': 0.7} must be a collectives.ComputeParams or None
    """
    if compute is None:
        return DEFAULT_COMPUTE
    if not isinstance(compute, ComputeParams):
        raise InvalidSpec(f"compute={compute!r:.80} must be a collectives.ComputeParams or None")
    return compute


def peak_flops(gpu, precision):
    """Dense peak FLOP/s of ``gpu`` at ``precision`` ("bf16", "fp16" or "fp8")."""
    if precision in ("bf16", "fp16"):
        # FP16 and BF16 tensor-core rates are equal on every GPU in fabric.GPUS (datasheets)
        return gpu.bf16_flops
    if precision == "fp8":
        if gpu.fp8_flops is None:
            raise InvalidSpec(f"precision='fp8' needs FP8 tensor cores; {gpu.name} has none")
        return gpu.fp8_flops
    raise InvalidSpec(f"precision={precision!r} must be one of 'bf16', 'fp16', 'fp8'")


def gemm_time(m, n, k, gpu, precision, params):
    """Seconds for an (m x k) @ (k x n) GEMM: ``gemm_efficiency`` of the GPU's achievable
    matmul rate (:attr:`fabric.catalog.GPUSpec.matmul_efficiency` of the dense peak, or
    ``fp8_matmul_efficiency`` for FP8 where it is measured)."""
    measured = gpu.fp8_matmul_efficiency if precision == "fp8" else None
    achievable = peak_flops(gpu, precision) * (measured or gpu.matmul_efficiency)
    compute = 2.0 * m * n * k / (achievable * params.gemm_efficiency)
    memory = BYTES[precision] * (m * k + k * n + m * n) / gpu.hbm_bandwidth
    return max(compute, memory) + params.kernel_overhead


def attention_time(batch, queries, keys, heads, head_dim, gpu, params, causal=True):
    """Seconds of one FlashAttention forward kernel: QK^T and AV over ``queries`` x ``keys``,
    at ``attention_efficiency`` of the BF16 peak scaled by ``keys / (keys + attention_half_keys)``.

    Examples
    --------
    >>> from fabric import GPUS
    >>> whole = attention_time(1, 512, 8192, 8, 128, GPUS["H100"], DEFAULT_COMPUTE)
    >>> blocks = 16 * attention_time(1, 512, 512, 8, 128, GPUS["H100"], DEFAULT_COMPUTE)
    >>> round(blocks / whole, 2)        # the same work in 16 blocks of 512 keys (ring attention, cp16)
    1.88
    """
    flops = 4.0 * batch * queries * keys * heads * head_dim * (0.5 if causal else 1.0)
    efficiency = params.attention_efficiency * keys / (keys + params.attention_half_keys)
    return flops / (gpu.bf16_flops * efficiency) + params.kernel_overhead


# Bytes per attention-score element in the unfused (2021 Megatron-LM) forward: write the
# QK^T scores (2), softmax read and write (4), dropout read, write and a 1-byte mask (5),
# read by the AV product (2).
UNFUSED_SCORE_BYTES = 13


def unfused_attention_time(batch, queries, keys, heads, head_dim, gpu, precision, params):
    """Seconds of attention with the score matrix in HBM: two batched GEMMs per head plus
    softmax and dropout streaming the scores (no causal saving: the mask is applied)."""
    per_head = gemm_time(queries, keys, head_dim, gpu, precision, params) - params.kernel_overhead
    gemms = 2 * (batch * heads * per_head + params.kernel_overhead)  # one batched GEMM each
    scores = batch * heads * queries * keys
    return gemms + memory_time(scores * UNFUSED_SCORE_BYTES / 2, gpu) + 2 * params.kernel_overhead


def cross_entropy_time(tokens, vocab_shard, gpu, params, *, backward=False):
    """Seconds of the fp32 softmax cross-entropy over ``tokens`` x ``vocab_shard`` logits
    (memory-bound: :data:`CROSS_ENTROPY_BYTES` per logit through HBM).

    Examples
    --------
    >>> from fabric import GPUS
    >>> t = cross_entropy_time(8192, 128256, GPUS["H100"], DEFAULT_COMPUTE)
    >>> round(t * 1e3, 1)                     # 8,192 tokens of a 128k vocabulary: ~40 GB
    11.9
    """
    part = "backward" if backward else "forward"
    return (CROSS_ENTROPY_BYTES[part] * tokens * vocab_shard / gpu.hbm_bandwidth
            + CROSS_ENTROPY_KERNELS[part] * params.kernel_overhead)


def fp8_cast_time(elements, gpu, params):
    """Seconds to quantize ``elements`` bf16 values into row-wise and column-wise FP8 copies
    (:data:`FP8_CAST_BYTES` each through HBM) in one kernel.

    Examples
    --------
    >>> from fabric import GPUS
    >>> t = fp8_cast_time(8192 * 8192, GPUS["H100"], DEFAULT_COMPUTE)
    >>> round(t * 1e6)                         # 64M activations: 268 MB through 3.35 TB/s
    80
    """
    return FP8_CAST_BYTES * elements / gpu.hbm_bandwidth + params.kernel_overhead


def memory_time(elements, gpu):
    """Seconds to stream ``elements`` 2-byte values through HBM."""
    return 2.0 * elements / gpu.hbm_bandwidth
