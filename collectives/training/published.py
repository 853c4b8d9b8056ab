"""Published training runs, rebuilt as a model, a plan and a fabric each.

Two files of the project's package data (:mod:`collectives.data`, with their sources in
their headers):

- ``training.csv``: Narayanan et al. SC'21 Table 1 (Selene, DGX A100) and the Megatron-LM
  README weak-scaling table (DGX H100), throughput only;
- ``training_runs.csv`` (and ``training_runs_added.csv``, more rows of its sources the project
  added): runs with their full plans (NVIDIA dgxc-benchmarking on DGX H100
  and GB200 NVL72, torchtitan on H100 and H200, BLOOM-176B), dense and MoE.

:func:`published_runs` turns every row into a :class:`PublishedRun`. What a source leaves
open is filled with the defaults of the framework that ran it (:data:`FRAMEWORKS`), never
per row. A row whose setting the library cannot express yet keeps its measurement and says
why in ``unsupported``, so a report shows it rather than dropping it.

Examples
--------
>>> runs = published_runs()
>>> len(runs) >= 40, sorted({r.file for r in runs})
(True, ['training.csv', 'training_runs.csv', 'training_runs_added.csv'])
>>> run = next(r for r in runs if r.case == "llama31_70b_h100_2048_fp8")
>>> run.plan.precision, run.plan.tp, run.gpus, run.unsupported
('fp8', 4, 2048, '')
"""

import re
from dataclasses import dataclass, replace
from functools import partial

import fabric
from fabric.catalog import SwitchSpec
from fabric.units import GiB, Gbps, ns

from collectives.data import read_rows
from collectives.training.model import Transformer
from collectives.training.plan import Parallelism
from collectives.training.presets import MODELS


# What each framework did where a source does not say, as of the runs' dates:
# - Megatron-Core / NeMo (dgxc-benchmarking recipes): Transformer Engine fused (flash)
#   attention, --tp-comm-overlap, --overlap-grad-reduce, --overlap-param-gather (the recipes'
#   defaults, NeMo 24.x-25.x);
# - torchtitan: FlashAttention through PyTorch SDPA; the loss is PyTorch's cross_entropy on an
#   fp32 copy of the logits (its train.py: pred.float()); FSDP2 prefetches the next layer's
#   all-gather and overlaps reduce-scatter with backward; TP overlap only with AsyncTP;
# - Megatron-LM 2021 (SC'21) and its Megatron-DeepSpeed fork (BLOOM, 2022): fused softmax without FlashAttention, no TP overlap,
#   DeepSpeed ZeRO-1 without communication overlap (DeepSpeed's overlap_comm default False).
FRAMEWORKS = {
    "megatron-core": dict(flash_attention=True, tp_comm_overlap=True, overlap_grad_reduce=True,
                          overlap_param_gather=True),
    "torchtitan": dict(flash_attention=True, tp_comm_overlap=False, overlap_grad_reduce=True,
                       overlap_param_gather=True, fused_cross_entropy=False),
    "megatron-2021": dict(flash_attention=False, tp_comm_overlap=False, overlap_grad_reduce=False,
                               overlap_param_gather=False),
}


@dataclass(frozen=True)
class PublishedRun:
    """One published run: what was measured and what it is rebuilt as.

    Attributes
    ----------
    case, file, source : str
        A short name, the package-data file and the source it cites.
    gpu : str
        The GPU family (``"H100"``, ``"GB200"``...).
    gpus : int
    seconds : float
        Measured (or, where the source prints throughput, derived) seconds per step.
    model, plan
        :class:`~collectives.training.model.Transformer` and
        :class:`~collectives.training.plan.Parallelism`; None when unsupported.
    fabric : callable or None
        Builds the fabric the run is priced on (graphs are built on demand: a report
        of 40 runs would otherwise hold 40 graphs).
    ranks : tuple of int or None
        The run's GPUs on that fabric when it uses part of it (None: all of them).
    unsupported : str
        Empty, or why the library cannot price this run yet.
    """

    case: str
    file: str
    source: str
    gpu: str
    gpus: int
    seconds: float
    model: object = None
    plan: object = None
    fabric: object = None
    ranks: tuple = None
    unsupported: str = ""


# Files of runs with their full plans: the shared calibration set and the rows the project added
# from the same sources (collectives.data)
FULL_RUN_FILES = ("training_runs.csv", "training_runs_added.csv")


def published_runs():
    """Every row of ``training.csv``, ``training_runs.csv`` and ``training_runs_added.csv`` as
    a :class:`PublishedRun`."""
    return [_throughput_run(row) for row in read_rows("training.csv")] + \
        [_full_run(row, name) for name in FULL_RUN_FILES for row in read_rows(name)]


# --------------------------------------------------------------------------- training.csv


def _throughput_run(row):
    """A training.csv row: SC'21 (fp16, no distributed optimizer, 2021 kernels) or Megatron-Core
    H100 (the flags its source states); micro-batch 1 and interleaving as in :func:`_interleaving`."""
    ints = {k: int(row[k]) for k in ("gpus", "layers", "hidden", "heads", "seq_len", "vocab", "tp", "pp", "dp",
                                     "global_batch")}
    model = Transformer(layers=ints["layers"], hidden=ints["hidden"], heads=ints["heads"], seq_len=ints["seq_len"],
                        vocab=ints["vocab"], mlp="gelu", name=f"{row['source']} {ints['layers']}L h{ints['hidden']}")
    megatron_core = row["source"] != "sc21"
    framework = FRAMEWORKS["megatron-core" if megatron_core else "megatron-2021"]
    plan = Parallelism(
        tp=ints["tp"], pp=ints["pp"], dp=ints["dp"], micro_batch=1, global_batch=ints["global_batch"],
        virtual_stages=_interleaving(ints["layers"], ints["pp"], ints["global_batch"] // ints["dp"]),
        sequence_parallel=row["sequence_parallel"].strip().lower() == "true", recompute=row["recompute"],
        zero=1 if megatron_core else 0, precision="bf16" if megatron_core else "fp16", **framework,
    )
    return PublishedRun(
        case=f"{row['source']}_{ints['gpus']}_tp{ints['tp']}_pp{ints['pp']}", file="training.csv",
        source=row["source"], gpu=row["gpu"], gpus=ints["gpus"], seconds=float(row["seconds_per_iter"]),
        model=model, plan=plan, fabric=partial(fabric.dgx_superpod, ints["gpus"] // 8, gpu=row["gpu"]),
    )


def _interleaving(layers, pp, micro_batches):
    """Two model chunks per stage where the layers split evenly so and the micro-batches are a
    multiple of the stages (SC'21 used the interleaved schedule; its depth is not printed), else 1."""
    return 2 if pp > 1 and layers % (2 * pp) == 0 and micro_batches % pp == 0 else 1


# --------------------------------------------------------------------------- training_runs.csv


# dgxc-benchmarking workloads whose NeMo 2 performance recipes reduce bf16 gradients at every
# precision. Each workload builds its configuration from the NeMo commit its setup.sh pins
# (NEMO_COMMIT: d2b2155 for llama3.1 v25.04, 7a8f1cc and 6f2c6fd for v25.05/v25.05.01, b4148d2 for
# nemotron v25.05, 6f2c6fd for grok1 v25.05.05), through `pretrain_recipe(performance_mode=True)`:
# the Llama 3/3.1 and Nemotron-4 recipes' performance_optimizations (NVIDIA/NeMo commit 78f445f,
# 2025-01-30) and the Grok-1 script's own pretrain_performance_optimizations set
# `recipe.trainer.plugins.grad_reduce_in_fp32 = False`, and the scripts keep that plugin for BF16.
# The v24.11.1 Nemotron rows (README_15b/_340b) and GPT-3 175B ran NeMo 1 YAML configurations
# (megatron_amp_O2: fp32 main gradients), and DeepSeek-V3's recipe at its pinned commit (7a8f1cc)
# does not set it, so those keep Megatron's fp32 default.
NEMO2_PERFORMANCE_WORKLOADS = ("llama3.1/README.md", "nemotron/README.md", "grok1/README.md")


def _framework(row):
    source = row["source"]
    if "torchtitan" in source:
        return "torchtitan"
    if "bigscience" in source:
        return "megatron-2021"
    return "megatron-core"


# Rows whose shape the CSV's columns cannot hold (dense first layers, shared experts) name it in
# their `derivation`; the preset holds it, with its sources.
SHAPES = {"DeepSeek-V3 shape": "deepseek-v3"}


def _full_run(row, file):
    """A row of ``file`` (training_runs.csv's columns), with the plan its source prints."""
    n = {k: int(row[k]) for k in ("gpus", "layers", "hidden", "heads", "kv_heads", "ffn_hidden", "seq_len", "vocab",
                                  "experts", "top_k", "tp", "pp", "dp", "cp", "ep", "micro_batch", "global_batch",
                                  "virtual_stages", "zero")}
    common = dict(case=row["case"], file=file, source=row["source"], gpu=row["gpu"], gpus=n["gpus"],
                  seconds=float(row["seconds_per_iter"]))
    # The expert tensor parallel size is not a column; the rows that set it say so in `assumed`
    # (from the recipes' launch.sh); otherwise Megatron-Core's default, etp = tp.
    etp = re.search(r"expert_tensor_parallel=(\d+)", row["assumed"])
    preset = next((name for text, name in SHAPES.items() if text in row["derivation"]), None)
    if preset:
        model = replace(MODELS[preset], seq_len=n["seq_len"], name=row["case"])
    else:
        model = Transformer(
            layers=n["layers"], hidden=n["hidden"], heads=n["heads"], kv_heads=n["kv_heads"],
            ffn_hidden=n["ffn_hidden"], mlp=row["mlp"], seq_len=n["seq_len"], vocab=n["vocab"],
            experts=n["experts"], top_k=n["top_k"], dropout=False, name=row["case"],
        )
    name = _framework(row)
    framework = dict(FRAMEWORKS[name])
    recompute = row["recompute"]
    if name == "torchtitan" and recompute == "selective":
        recompute = "op"  # torchtitan's selective checkpointing is per-op (its default "op" mode)
    if "AsyncTP" in row["derivation"]:
        framework["tp_comm_overlap"] = True
    if name == "torchtitan" and _compiles_the_loss(row):
        framework["fused_cross_entropy"] = True
    if row["precision"] == "fp8" and name == "megatron-core":
        framework["fp8_params"] = True  # NeMo's bf16_with_fp8_mixed recipe: fp8_param_gather=True
        # NeMo's performance scripts (scripts/performance/llm/pretrain_*.py, 2025) set
        # grad_reduce_in_fp32 = False with it: bf16 main gradients
        framework["grad_reduce_in_fp32"] = False
    if any(workload in row["source"] for workload in NEMO2_PERFORMANCE_WORKLOADS):
        framework["grad_reduce_in_fp32"] = False
    plan = Parallelism(
        tp=n["tp"], pp=n["pp"], dp=n["dp"], cp=n["cp"], ep=n["ep"], etp=int(etp.group(1)) if etp else None,
        micro_batch=n["micro_batch"], global_batch=n["global_batch"], virtual_stages=n["virtual_stages"],
        recompute=recompute,
        sequence_parallel=row["sequence_parallel"].strip().lower() == "true", zero=n["zero"],
        precision=row["precision"], **framework,
    )
    builder, ranks, unsupported = _fabric_of(row["fabric"], row["gpu"], n["gpus"])
    return PublishedRun(**common, model=model, plan=plan, fabric=builder, ranks=ranks, unsupported=unsupported)


# torchtitan compiles its loss with the model from commit bbb1b616e (2025-04-02,
# torchtitan/components/loss.py: "Compiling the loss function with torch.compile"); before, a
# comment said compiling it caused CUDA errors. Compiled, the fp32 upcast, log-softmax and its
# gradient fuse into kernels that keep the bf16 logits and write a bf16 gradient: 4 bytes per
# logit, as Megatron's fused loss (memory.FUSED_LOSS_BYTES), not the eager loss's 14. A row's
# date is its benchmark page's (pytorch/torchtitan benchmarks/<model>_<yyyymm>_<who>.md).
TORCHTITAN_COMPILED_LOSS = "202504"


def _compiles_the_loss(row):
    """Whether a torchtitan row ran torch.compile with a torchtitan that compiles the loss."""
    date = re.search(r"_(\d{6})_", row["source"])
    compiled = "torch.compile" in row["derivation"] and "no torch.compile" not in row["assumed"]
    return compiled and date is not None and date.group(1) >= TORCHTITAN_COMPILED_LOSS


# A job on GB200 NVL72 racks that is not a multiple of 72 GPUs gets the same number of GPUs in
# each rack, at most 16 of its 18 compute trays (64 GPUs): the training_runs.csv header says
# such jobs "use part of each rack" (512 GPUs span more than 7 racks); 64 per rack, the rest
# spares, is an assumption the sources do not state.
NVL72_JOB_GPUS_PER_RACK = 64


def _fabric_of(description, gpu, gpus):
    """(builder, ranks, why unsupported) of a row's ``fabric`` column."""
    if description == "eos":  # DGX H100 SuperPOD: 8 x 400G NDR per node
        return partial(fabric.dgx_superpod, gpus // 8, gpu=gpu), None, ""
    if description == "nvl72":
        if gpus % 72 == 0:
            return partial(fabric.nvl72, gpus // 72, gpu=gpu), None, ""
        racks = -(-gpus // NVL72_JOB_GPUS_PER_RACK)
        if gpus % racks:
            return None, None, f"{gpus} GPUs do not split evenly over {racks} NVL72 racks"
        ranks = tuple(72 * rack + i for rack in range(racks) for i in range(gpus // racks))
        return partial(fabric.nvl72, racks, gpu=gpu), ranks, ""
    if "Omni-Path" in description:
        return partial(_jean_zay, gpus // 8), None, ""
    # Meta Grand Teton and WhiteFiber H200: 400 Gb/s RDMA per GPU, IB or RoCE not stated. Priced
    # on a DGX SuperPOD of the same size (rail-optimized, adaptive routing): an assumption.
    if "Grand Teton" in description:
        return partial(_grand_teton, gpus // 8), None, ""
    return partial(fabric.dgx_superpod, gpus // 8, gpu=gpu), None, ""


# torchtitan's H100s (Meta Grand Teton), as its benchmark page (pytorch/torchtitan
# benchmarks/llama3_h100_202412_torchtitan.md) describes them: 96 GB of HBM2e "with 2.4 TB/sec
# peak memory bandwidth", the "default 500W power limit", and a peak "between SXM and NVL, and
# we don't know its exact value". 96 GB read as 96 GiB, as the catalog reads "80 GB"; the peak
# is taken midway between the H100 NVL's 835 dense BF16 TFLOP/s (H100 NVL datasheet) and the
# SXM's 989 (an assumption inside the bounds the source gives); the SXM part's measured
# achievable fraction is kept.
H100_NVL_BF16_FLOPS = 835e12
GRAND_TETON_PEAK = (H100_NVL_BF16_FLOPS + fabric.GPUS["H100"].bf16_flops) / 2
GRAND_TETON_H100 = replace(
    fabric.GPUS["H100"], name="H100 96GB 500W", hbm_bytes=96 * GiB, hbm_bandwidth=2.4e12, power=500,
    bf16_flops=GRAND_TETON_PEAK, fp8_flops=2 * GRAND_TETON_PEAK,
)


# BLOOM's Jean Zay nodes: 8 A100 and 4 x 100 Gb/s Omni-Path NICs, two GPUs per NIC (bigscience
# tr11-176B-ml README). The builders give each GPU a NIC of its own, so each GPU gets its 50 Gb/s
# share of a NIC, and the 48-port Omni-Path 100 edge switch (Intel's product page: 48 ports at
# 100 Gb/s) is described as 96 half-ports: the two GPUs behind one NIC enter its switch port
# together, which a 2-way split of each port models when all GPUs send at once, as collectives
# do. The fabric's shape (a non-blocking two-tier fat tree, one leaf per server's NICs,
# traffic spread evenly) is not published: an assumption.
JEAN_ZAY_GPU_SHARE = 50 * Gbps
JEAN_ZAY_SWITCH = SwitchSpec(
    name="Omni-Path 100 edge, 48 x 100 Gb/s as 96 GPU shares",
    ports=48,
    port_bandwidth=100 * Gbps,
    max_breakout=2,  # the two GPUs of one NIC (see above), not a cable split
    latency=110 * ns,  # [3p: Intel's Omni-Path 100 product briefs quote 100-110 ns port to port]
    power=250,  # [estimate: Intel's figure not reachable; the 40-port HDR QM8700 draws 253 W]
    transport="infiniband",  # RDMA over a lossless, credit-based fabric, as InfiniBand
    in_network_reduction=False,
)


def _jean_zay(nodes):
    return fabric.fat_tree(nodes, gpu="A100", nic_bandwidth=JEAN_ZAY_GPU_SHARE, switch=JEAN_ZAY_SWITCH,
                           routing="adaptive", rail_optimized=False)


def _grand_teton(nodes):
    G = fabric.dgx_superpod(nodes, gpu="H100")
    G.graph["gpu"] = GRAND_TETON_H100
    return G
