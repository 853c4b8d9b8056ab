"""The command line: ``python -m collectives [estimate|collective|search|fabric|validate] ...``.

With no subcommand it prints the built-in example (Llama-3-8B, tp8 x dp4, on a 4-server
H100 DGX SuperPOD at the flow level), as the README's quick start shows.

Clusters are named ``KIND[-GPU]:COUNT`` (see :mod:`collectives.cluster_flags`), or given as a GPU
count with ``--gpus N --fabric KIND [--gpu GPU]``. Errors from the models or from bad
flag values print one line, ``error: ...``, on stderr and exit with status 2, as
argparse does for usage errors.

Examples
--------
>>> main(["fabric", "--cluster", "superpod-h100:1"])        # doctest: +ELLIPSIS
Fabric summary
...
0
"""

import argparse
import json
import os
import sys
from dataclasses import replace

import fabric
from fabric.schema import gpu_count
from fabric.tables import format_time

from collectives import algorithms
from collectives.api import sweep
from collectives.arguments import CLIError, parse_op, parse_ranks, parse_size
from collectives.cluster_flags import CLUSTER_HELP, add_cluster_flags, build_cluster
from collectives.errors import CollectivesError
from collectives.params import CommParams
from collectives.training.activations import PRECISIONS, RECOMPUTE
from collectives.training.model import MLPS, Transformer
from collectives.training.presets import MODELS
from collectives.training.plan import ZERO_STAGES, Parallelism
from collectives.training.search import search
from collectives.training.step import estimate_step, step_spread
from collectives.training.validation import validate

# ---------------------------------------------------------------------------- the parser


def _cluster_args():
    p = argparse.ArgumentParser(add_help=False)
    add_cluster_flags(p)
    return p


def _job_ranks(p):
    p.add_argument("--ranks", metavar="LIST",
                   help="the job's GPUs on the cluster: '0-8191', '0-1015:8', or a comma list of those (default "
                        "every GPU; the plan's world size is their number)")


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
                   help="analytic: closed forms whose network share each communication pattern takes from one "
                        "flow-level probe on the graph (sees oversubscription, ECMP collisions, failures); flow: "
                        f"every collective routed and solved on the graph (default {default})")


def _seed(p):
    p.add_argument("--seed", type=int, default=0, metavar="N", help="ECMP hash seed (default 0)")


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
    _level(p, "analytic")
    _seed(p)
    p.add_argument("--seeds", type=int, metavar="N",
                   help="also the spread of the step time over ECMP seeds 0..N-1 (mean, p5, p50, p95)")
    _job_ranks(p)
    _json(p)
    p.set_defaults(run=run_estimate)

    p = sub.add_parser("collective", parents=[cluster, comm], formatter_class=formatter, epilog=CLUSTER_HELP,
                       help="an nccl-tests style table of one collective over message sizes",
                       description="Cost of a collective over message sizes (collectives.sweep), "
                                   "nccl-tests style: sizes from --min-bytes to --max-bytes times --factor.")
    p.add_argument("--op", type=parse_op, default="all_reduce",
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
    _seed(p)
    _job_ranks(p)
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


def _what_it_ran_on(G, global_batch):
    """The JSON fields that say what an estimate was computed for, beyond its plan."""
    return {"fabric": G.graph.get("name", ""), "global_batch": global_batch}


def run_estimate(args):
    model = build_model(args)
    G = build_cluster(args)
    ranks = parse_ranks(args.ranks) if args.ranks else None
    plan = build_plan(args, gpu_count(G) if ranks is None else len(ranks))
    params = CommParams(collnet=args.collnet)
    est = estimate_step(model, plan, G, level=args.level, params=params, seed=args.seed, ranks=ranks)
    spread = None if args.seeds is None else step_spread(model, plan, G, seeds=args.seeds, level=args.level,
                                                         params=params, ranks=ranks)
    if args.json:
        _print_json(dict(est.to_dict(), **_what_it_ran_on(G, plan.global_batch),
                         **({} if spread is None else {"spread": spread.to_dict()})))
    else:
        print(est)
        print(f"{'fabric':<19} {G.graph.get('name', '')}")
        print(f"{'global batch':<19} {plan.global_batch} sequences")
        if spread is not None:
            print(spread)
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
    ranks = parse_ranks(args.ranks) if args.ranks else None
    gpus = gpu_count(G) if ranks is None else len(ranks)
    global_batch = args.global_batch if args.global_batch is not None else 2 * gpus
    kwargs = dict(global_batch=global_batch, level=args.level, precision=args.precision,
                  progress=not args.no_progress, top=args.top, params=CommParams(collnet=args.collnet),
                  seed=args.seed, ranks=ranks)
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
        _print_json([dict(e.to_dict(), **_what_it_ran_on(G, global_batch)) for e in best])
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
