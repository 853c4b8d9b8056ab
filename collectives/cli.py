"""The command line: ``python -m collectives [estimate|collective|search|fabric|validate] ...``.

With no subcommand it prints the built-in example (Llama-3-8B, tp8 x dp4, on a 4-server
H100 DGX SuperPOD at the flow level), as the README's quick start shows.

Clusters are named ``KIND[-GPU]:COUNT`` (see :data:`CLUSTER_HELP`), or given as a GPU
count with ``--gpus N --fabric KIND [--gpu GPU]``. Errors from the models or from bad
flag values print one line, ``error: ...``, on stderr and exit with status 2, as
argparse does for usage errors.

Examples
--------
>>> main(["fabric", "--cluster", "superpod-h100:1"])        # doctest: +ELLIPSIS
Fabric summary
...
0
>>> parse_cluster("spectrum-x-h200:16")
('spectrum-x', 'H200', 16)
>>> parse_ranks("0-31:8,40")
[0, 8, 16, 24, 40]
"""

import argparse
import json
import math
import os
import sys
from dataclasses import replace

import fabric
from fabric.schema import gpu_count
from fabric.tables import format_time

from collectives import algorithms
from collectives.api import sweep
from collectives.errors import CollectivesError
from collectives.params import CommParams
from collectives.training.activations import PRECISIONS, RECOMPUTE
from collectives.training.model import MLPS, Transformer
from collectives.training.presets import MODELS
from collectives.training.plan import ZERO_STAGES, Parallelism
from collectives.training.search import search
from collectives.training.step import estimate_step
from collectives.training.validation import validate

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


# ---------------------------------------------------------------------------- parsing helpers


def parse_cluster(spec):
    """``"KIND[-GPU]:COUNT"`` -> ``(kind, gpu, count)``.

    Examples
    --------
    >>> parse_cluster("superpod:4"), parse_cluster("nvl72:2")
    (('superpod', 'H100', 4), ('nvl72', 'GB200', 2))
    >>> parse_cluster("superpod-x100:4")
    Traceback (most recent call last):
    ...
    collectives.cli.CLIError: cluster='superpod-x100:4': GPU 'x100' must be one of a100, h100, h200, b200, gb200
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


def _op(text):
    return text.replace("-", "_").lower()


# ---------------------------------------------------------------------------- the parser


def _cluster_args():
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("cluster (see 'clusters' below)")
    g.add_argument("--cluster", metavar="KIND[-GPU]:COUNT", help=f"a cluster preset (default {DEFAULT_CLUSTER})")
    g.add_argument("--gpus", type=int, metavar="N", help="GPU count, instead of --cluster")
    g.add_argument("--fabric", choices=list(FABRICS), help="fabric kind for --gpus (default superpod)")
    g.add_argument("--gpu", help="GPU model for --gpus (default H100; GB200 for nvl72)")
    return p


def _comm_args():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--collnet", action="store_true",
                   help="let algorithm auto use in-network SHARP, as NCCL_COLLNET_ENABLE=1 does (default off)")
    return p


def _model_args():
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model (a preset, or its shape; shape flags also override a preset)")
    g.add_argument("--model", choices=sorted(MODELS), help="a preset (default llama3-8b unless a shape is given)")
    for flag, help_ in (("layers", "L"), ("hidden", "h"), ("heads", "attention heads"),
                        ("kv-heads", "key/value heads (default heads)"),
                        ("ffn-hidden", "MLP inner size (default 4*hidden)"), ("seq-len", "sequence length"),
                        ("vocab", "vocabulary"), ("experts", "MoE experts (default 1, dense)"),
                        ("top-k", "experts per token")):
        g.add_argument(f"--{flag}", type=int, metavar="N", help=help_)
    g.add_argument("--mlp", choices=MLPS, help="MLP kind (default gelu)")
    return p


_SHAPE = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "mlp", "seq_len", "vocab", "experts", "top_k")
_REQUIRED_SHAPE = ("layers", "hidden", "heads", "seq_len", "vocab")


def build_model(args):
    """The preset ``--model``, with any shape flags applied; or a model from the shape flags."""
    shape = {k: getattr(args, k) for k in _SHAPE if getattr(args, k) is not None}
    if args.model is not None:
        return replace(MODELS[args.model], **shape) if shape else MODELS[args.model]
    if not shape:
        return MODELS["llama3-8b"]
    missing = [f"--{k.replace('_', '-')}" for k in _REQUIRED_SHAPE if k not in shape]
    if missing:
        raise CLIError(f"without --model, {', '.join(missing)} must be given")
    return Transformer(name="custom", **shape)


def _level(p, default):
    p.add_argument("--level", choices=("flow", "analytic"), default=default,
                   help=f"flow-level on the graph or closed forms (default {default})")


def _json(p):
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")


def build_parser():
    """The argparse parser of ``python -m collectives``."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="python -m collectives",
        description="Collective and training-step cost models on GPU fabrics. With no subcommand, "
                    "prints the example: Llama-3-8B, tp8 x dp4, on a 4-server H100 DGX SuperPOD.",
        epilog=CLUSTER_HELP + "\nerrors print one line 'error: ...' on stderr and exit with status 2",
        formatter_class=formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="{estimate,collective,search,fabric,validate}")
    cluster, model, comm = _cluster_args(), _model_args(), _comm_args()

    p = sub.add_parser("estimate", parents=[model, cluster, comm], formatter_class=formatter, epilog=CLUSTER_HELP,
                       help="estimate one training step of a model with a parallel plan",
                       description="Estimate one optimizer step (collectives.estimate_step).")
    g = p.add_argument_group("plan (tp*pp*dp*cp must equal the cluster's GPUs; ep*etp must divide tp*cp*dp)")
    for name, help_ in (("tp", "tensor parallel (default 1)"), ("pp", "pipeline parallel (default 1)"),
                        ("dp", "data parallel (default: GPUs / (tp*pp*cp))"),
                        ("cp", "context parallel (default 1)"), ("ep", "expert parallel (default 1)"),
                        ("etp", "expert tensor parallel (default: tp)"),
                        ("micro-batch", "sequences per micro-batch (default 1)"),
                        ("global-batch", "sequences per step (default: 2 per GPU, rounded up to a "
                                         "multiple of dp*micro_batch)"),
                        ("virtual-stages", "interleaved pipeline chunks per rank (default 1)")):
        g.add_argument(f"--{name}", type=int, metavar="N", help=help_)
    g.add_argument("--recompute", choices=RECOMPUTE, default="selective", help="(default selective)")
    g.add_argument("--zero", type=int, choices=ZERO_STAGES, default=1, help="ZeRO stage (default 1)")
    g.add_argument("--precision", choices=PRECISIONS, default="bf16", help="(default bf16)")
    g.add_argument("--no-sequence-parallel", action="store_true", help="turn Megatron sequence parallelism off")
    _level(p, "flow")
    _json(p)
    p.set_defaults(run=run_estimate)

    p = sub.add_parser("collective", parents=[cluster, comm], formatter_class=formatter, epilog=CLUSTER_HELP,
                       help="an nccl-tests style table of one collective over message sizes",
                       description="Cost of a collective over message sizes (collectives.sweep), "
                                   "nccl-tests style: sizes from --min-bytes to --max-bytes times --factor.")
    p.add_argument("--op", type=_op, default="all_reduce",
                   choices=("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast"),
                   help="the collective (default all_reduce)")
    p.add_argument("--min-bytes", "-b", type=parse_size, default=8, metavar="SIZE",
                   help="smallest size: bytes, or with K/M/G/T (powers of 1024) (default 8)")
    p.add_argument("--max-bytes", "-e", type=parse_size, default=2**30, metavar="SIZE",
                   help="largest size (default 1G)")
    p.add_argument("--factor", "-f", type=float, default=2.0, help="size multiplier per row (default 2)")
    p.add_argument("--ranks", metavar="LIST",
                   help="the group: '0-15', '0,8,16', '0-1015:8' (every 8th), or a comma list of those "
                        "(default every GPU)")
    p.add_argument("--algorithm", default="auto", choices=algorithms.NAMES + ("auto",),
                   help="(default auto: the fastest eligible)")
    _level(p, "flow")
    _json(p)
    p.set_defaults(run=run_collective)

    p = sub.add_parser("search", parents=[model, cluster, comm], formatter_class=formatter, epilog=CLUSTER_HELP,
                       help="search parallel plans and print the fastest",
                       description="Estimate every plan that fits (collectives.search) and print the best; "
                                   "a progress bar goes to stderr.")
    p.add_argument("--global-batch", type=int, metavar="N", help="sequences per step (default 2 per GPU)")
    p.add_argument("--precision", choices=PRECISIONS, default="bf16", help="(default bf16)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="plans to print (default 10)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="worker processes (default: one per core; 1 runs in this process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _level(p, "analytic")
    _json(p)
    p.set_defaults(run=run_search)

    p = sub.add_parser("fabric", parents=[cluster], formatter_class=formatter, epilog=CLUSTER_HELP,
                       help="summary and bill of materials of a cluster",
                       description="Print fabric.summary and fabric.bill_of_materials of a cluster.")
    _json(p)
    p.set_defaults(run=run_fabric)

    p = sub.add_parser("validate", formatter_class=formatter,
                       help="every published measurement against the model",
                       description="Price every published row of the project's data (training steps, "
                                   "peak memory and nccl-tests) and print published, predicted, error and whether the plan "
                                   "fits, with medians per GPU family (collectives.training.validation).")
    p.add_argument("--kinds", default="step,memory,nccl", metavar="LIST",
                   help="which rows: step, memory, nccl, comma-separated (default all three)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _level(p, "analytic")
    _json(p)
    p.set_defaults(run=run_validate)
    return parser


# ---------------------------------------------------------------------------- subcommands


def _print_json(obj):
    print(json.dumps(obj, indent=2, default=float))


def run_example(args=None):
    """The README's example: Llama-3-8B, tp8 x dp4, on ``dgx_superpod(4)`` H100, flow level."""
    G = fabric.dgx_superpod(4, gpu="H100")
    model = MODELS["llama3-8b"]
    plan = Parallelism(tp=8, dp=4, global_batch=64)
    print(fabric.summary(G))
    print()
    print(estimate_step(model, plan, G))
    return 0


def build_plan(args, gpus):
    """The ``Parallelism`` of the estimate flags, ``dp`` and ``global_batch`` derived when absent."""
    tp, pp, cp = args.tp or 1, args.pp or 1, args.cp or 1
    for name, value in (("tp", tp), ("pp", pp), ("cp", cp), ("micro_batch", args.micro_batch)):
        if value is not None and value < 1:
            raise CLIError(f"{name}={value} must be >= 1")
    dp = args.dp
    if dp is None:
        if gpus % (tp * pp * cp):
            raise CLIError(f"tp*pp*cp={tp * pp * cp} must divide the cluster's {gpus} GPUs")
        dp = gpus // (tp * pp * cp)
    mb, v = args.micro_batch or 1, args.virtual_stages or 1
    global_batch = args.global_batch
    if global_batch is None:
        unit = max(1, dp * mb * (pp if v > 1 else 1))
        global_batch = -(-2 * gpus // unit) * unit
    return Parallelism(tp=tp, pp=pp, dp=dp, cp=cp, ep=args.ep or 1, etp=args.etp, micro_batch=mb,
                       global_batch=global_batch,
                       virtual_stages=v, sequence_parallel=not args.no_sequence_parallel,
                       recompute=args.recompute, zero=args.zero, precision=args.precision)


def run_estimate(args):
    model = build_model(args)
    G = build_cluster(args)
    plan = build_plan(args, gpu_count(G))
    est = estimate_step(model, plan, G, level=args.level, params=CommParams(collnet=args.collnet))
    if args.json:
        _print_json(est.to_dict())
    else:
        print(est)
    return 0


def message_sizes(lo, hi, factor):
    """nccl-tests sizes: ``lo``, ``lo*factor``, ... up to ``hi``."""
    if hi < lo:
        raise CLIError(f"max_bytes={hi} must be >= min_bytes={lo}")
    if not factor > 1:
        raise CLIError(f"factor={factor:g} must be > 1")
    sizes, s = [], float(lo)
    while round(s) <= hi:
        if not sizes or round(s) != sizes[-1]:
            sizes.append(round(s))
        s *= factor
    return sizes


def run_collective(args):
    sizes = message_sizes(args.min_bytes, args.max_bytes, args.factor)
    G = build_cluster(args)
    ranks = parse_ranks(args.ranks) if args.ranks else None
    results = sweep(G, args.op, sizes, ranks=ranks, algorithm=args.algorithm, level=args.level,
                    params=CommParams(collnet=args.collnet))
    if args.json:
        _print_json([r.to_dict() for r in results])
        return 0
    n = results[0].ranks if results else gpu_count(G)
    print(f"# {args.op} over {n} ranks on {G.graph.get('name', 'fabric')}, {args.level} level")
    print(f"# {'size':>14} {'time(us)':>12} {'algbw(GB/s)':>12} {'busbw(GB/s)':>12}  {'algorithm':<16} protocol")
    for r in results:
        print(f"  {r.nbytes:>14.0f} {r.time * 1e6:>12.2f} {r.algbw / 1e9:>12.2f} {r.busbw / 1e9:>12.2f}  "
              f"{r.algorithm:<16} {r.protocol}")
    return 0


def run_search(args):
    model = build_model(args)
    G = build_cluster(args)
    if args.top < 1:
        raise CLIError(f"top={args.top} must be >= 1")
    if args.jobs is not None and args.jobs < 1:
        raise CLIError(f"jobs={args.jobs} must be >= 1")
    global_batch = args.global_batch if args.global_batch is not None else 2 * gpu_count(G)
    kwargs = dict(global_batch=global_batch, level=args.level, precision=args.precision,
                  progress=not args.no_progress, top=args.top, params=CommParams(collnet=args.collnet))
    if args.jobs == 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            best = search(model, G, executor=pool, **kwargs)
    elif args.jobs:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs) as pool:
            best = search(model, G, executor=pool, **kwargs)
    else:
        best = search(model, G, **kwargs)
    if args.json:
        _print_json([e.to_dict() for e in best])
        return 0
    print(f"# {len(best)} fastest plans of {model.name or 'the model'} on {G.graph.get('name', 'fabric')}, "
          f"global_batch={global_batch}, {args.precision}, {args.level} level")
    keys = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "virtual_stages", "recompute", "zero")
    heads = ("tp", "pp", "dp", "cp", "ep", "mb", "v", "recompute", "zero")
    print(f"{'#':>3} {'step time':>10} {'MFU':>6} {'TFLOP/s':>8} {'mem GiB':>8} "
          + " ".join(f"{h:>{9 if h == 'recompute' else 4}}" for h in heads))
    for i, e in enumerate(best, 1):
        cells = " ".join(f"{e.plan[k]!s:>{9 if k == 'recompute' else 4}}" for k in keys)
        print(f"{i:>3} {format_time(e.time):>10} {e.mfu:>6.1%} {e.tflops_per_gpu:>8.1f} "
              f"{e.memory_per_gpu / 2**30:>8.1f} {cells}")
    return 0


def run_fabric(args):
    G = build_cluster(args)
    summary, bom = fabric.summary(G), fabric.bill_of_materials(G)
    if args.json:
        _print_json({"summary": summary.to_dict(), "bill_of_materials": bom.to_dict()})
    else:
        print(summary)
        print()
        print(bom)
    return 0


def run_validate(args):
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    report = validate(args.level, kinds=kinds, progress=not args.no_progress)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report)
    return 0


# ---------------------------------------------------------------------------- entry point


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    0 on success; 2 on a usage error (argparse's message) or a model error (one line,
    ``error: ...``, on stderr).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): a status, not an exit
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    run = getattr(args, "run", run_example)
    try:
        return run(args)
    except (fabric.FabricError, CollectivesError, ValueError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head` closed the pipe: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
