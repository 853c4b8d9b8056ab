"""The values the command line parses: clusters (``KIND[-GPU]:COUNT``), rank lists and
message sizes, each checked with an error that names the flag and the value.

Examples
--------
>>> parse_cluster("spectrum-x-h200:16")
('spectrum-x', 'H200', 16)
>>> parse_ranks("0-31:8,40")
[0, 8, 16, 24, 40]
"""

import argparse
import math

import fabric

# Cluster kinds: (builder, GPUs per COUNT unit, default GPU, what COUNT counts).
# HGX/DGX servers hold 8 GPUs; an NVL72 rack holds 72 (18 trays of 4 GB200).
FABRICS = {
    "superpod": (fabric.dgx_superpod, 8, "H100", "DGX servers"),
    "spectrum-x": (fabric.spectrum_x, 8, "H100", "servers"),
    "fat-tree": (fabric.fat_tree, 8, "H100", "servers"),
    "rail-only": (fabric.rail_only, 8, "H100", "servers"),
    "nvl72": (fabric.nvl72, 72, "GB200", "racks"),
}
DEFAULT_CLUSTER = "superpod-h100:4"

CLUSTER_HELP = f"""\
clusters:
  --cluster KIND[-GPU]:COUNT
      KIND   superpod    NVIDIA DGX SuperPOD, InfiniBand fat tree (fabric.dgx_superpod)
             spectrum-x  Spectrum-X Ethernet (fabric.spectrum_x)
             fat-tree    RoCE Ethernet fat tree with ECMP (fabric.fat_tree defaults)
             rail-only   rail-only network, no spines (fabric.rail_only)
             nvl72       GB200 NVL72 racks plus InfiniBand scale-out (fabric.nvl72)
      GPU    one of {', '.join(g.lower() for g in fabric.GPUS)}; default h100 (gb200 for nvl72)
      COUNT  8-GPU servers; NVL72 racks (72 GPUs each) for nvl72
    e.g. superpod-h100:4 (32 GPUs), spectrum-x:128, fat-tree-h200:16, nvl72:2
  --gpus N --fabric KIND [--gpu GPU]
      the same by GPU count: N must be a multiple of 8 (72 for nvl72)
  default: {DEFAULT_CLUSTER}
"""


class CLIError(ValueError):
    """A flag value the command line itself rejects (reported like model errors)."""


def parse_cluster(spec):
    """``"KIND[-GPU]:COUNT"`` -> ``(kind, gpu, count)``.

    Examples
    --------
    >>> parse_cluster("superpod:4"), parse_cluster("nvl72:2")
    (('superpod', 'H100', 4), ('nvl72', 'GB200', 2))
    >>> parse_cluster("superpod-x100:4")
    Traceback (most recent call last):
    ...
    collectives.arguments.CLIError: cluster='superpod-x100:4': GPU 'x100' must be one of a100, h100, h200, b200, gb200
    """
    name, sep, count = spec.strip().lower().replace("_", "-").partition(":")
    if not sep:
        raise CLIError(f"cluster={spec!r} must be KIND[-GPU]:COUNT, e.g. {DEFAULT_CLUSTER}")
    for kind in sorted(FABRICS, key=len, reverse=True):
        if name == kind or name.startswith(kind + "-"):
            break
    else:
        raise CLIError(f"cluster={spec!r}: kind must be one of {', '.join(FABRICS)}")
    gpu = name[len(kind) + 1:] or FABRICS[kind][2].lower()
    gpus = {g.lower(): g for g in fabric.GPUS}
    if gpu not in gpus:
        raise CLIError(f"cluster={spec!r}: GPU {gpu!r} must be one of {', '.join(gpus)}")
    try:
        n = int(count)
    except ValueError:
        n = 0
    if n < 1:
        raise CLIError(f"cluster={spec!r}: COUNT={count!r} must be an integer >= 1")
    return kind, gpus[gpu], n


def build_cluster(args):
    """The fabric graph named by ``--cluster`` or ``--gpus/--fabric/--gpu``."""
    if args.gpus is not None and args.cluster is not None:
        raise CLIError("give --cluster or --gpus, not both")
    if args.gpus is None:
        if args.fabric is not None or args.gpu is not None:
            raise CLIError("--fabric and --gpu go with --gpus N; with --cluster write KIND-GPU:COUNT")
        kind, gpu, count = parse_cluster(args.cluster or DEFAULT_CLUSTER)
    else:
        kind = args.fabric or "superpod"
        builder, per, default_gpu, unit = FABRICS[kind]
        gpus = {g.lower(): g for g in fabric.GPUS}
        gpu = gpus.get((args.gpu or default_gpu).lower())
        if gpu is None:
            raise CLIError(f"gpu={args.gpu!r} must be one of {', '.join(gpus)}")
        if args.gpus < 1 or args.gpus % per:
            raise CLIError(f"gpus={args.gpus} must be a positive multiple of {per} ({kind} {unit} hold {per} GPUs)")
        count = args.gpus // per
    return FABRICS[kind][0](count, gpu=gpu)


def parse_ranks(spec):
    """``"0-15"``, ``"0,8,16"``, ``"0-1015:8"`` (every 8th) or a comma list of those -> ranks.

    Examples
    --------
    >>> parse_ranks("0-3"), parse_ranks("0,8,16"), parse_ranks("0-15:4")
    ([0, 1, 2, 3], [0, 8, 16], [0, 4, 8, 12])
    """
    ranks = []
    for part in spec.split(","):
        part = part.strip()
        try:
            span, _, step = part.partition(":")
            lo, dash, hi = span.partition("-")
            lo, hi, step = int(lo), int(hi) if dash else int(lo), int(step) if step else 1
        except ValueError:
            raise CLIError(f"ranks={spec!r}: {part!r} must be N, N-M or N-M:STEP") from None
        if lo < 0 or hi < lo or step < 1:
            raise CLIError(f"ranks={spec!r}: {part!r} needs 0 <= N <= M and STEP >= 1")
        ranks.extend(range(lo, hi + 1, step))
    return ranks


_SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text):
    """Bytes with an optional binary suffix, as nccl-tests reads ``-b``/``-e``: ``8``, ``64K``, ``1G``.

    Examples
    --------
    >>> parse_size("8"), parse_size("64K"), parse_size("1GB")
    (8, 65536, 1073741824)
    """
    t = text.strip().upper()
    t = t[:-1] if t.endswith("B") else t
    suffix = t[-1:] if t[-1:] in _SUFFIX else ""
    try:
        value = float(t[: len(t) - len(suffix)]) * _SUFFIX[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 8, 64K, 32M or 1G") from None
    if not math.isfinite(value) or value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 byte")
    return int(value)


def parse_op(text):
    """A collective's name as flags may spell it: ``all-reduce`` -> ``all_reduce``."""
    return text.replace("-", "_").lower()
