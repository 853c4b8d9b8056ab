"""The cluster a command runs on: a kind and size (``--cluster KIND[-GPU]:COUNT`` or ``--gpus N
--fabric KIND``), a published cluster (``--preset``), or a saved fabric (``--fabric FILE``);
then the what-if changes (routing, queue pairs, oversubscription, pods, racks, switches) and
failures (``--fail``, ``--fail-random``), each checked with an error naming the flag.

Examples
--------
>>> parse_cluster("spectrum-x-h200:16")
('spectrum-x', 'H200', 16)
>>> args = build_parser().parse_args(["--cluster", "fat-tree:16", "--oversubscription", "3", "--top-of-rack"])
>>> build_cluster(args).graph["name"]
'fat_tree: 128 x H100, cx7, 2-tier tomahawk4, ecmp'
"""

import argparse
import inspect
import os

import numpy as np

import fabric
from fabric.schema import node_items

from collectives.arguments import CLIError

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
  --preset NAME [--gpus N]
      a published cluster: {', '.join(sorted(fabric.PRESETS))} (fabric.PRESETS)
  --fabric FILE
      a fabric saved with fabric.save
  default: {DEFAULT_CLUSTER}; what-if flags change the builder's arguments, failure flags
  remove parts after building
"""


def parse_cluster(spec):
    """``"KIND[-GPU]:COUNT"`` -> ``(kind, gpu, count)``.

    Examples
    --------
    >>> parse_cluster("superpod:4"), parse_cluster("nvl72:2")
    (('superpod', 'H100', 4), ('nvl72', 'GB200', 2))
    >>> parse_cluster("superpod-x100:4")
    Traceback (most recent call last):
    ...
    collectives.arguments.CLIError: cluster='superpod-x100:4': GPU 'x100' must be one of a100, h100, h200, b200, gb200, gb300
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



# What-if flags: (flag, builder argument, argparse options, help).
WHAT_IF = (
    ("--routing", "routing", dict(choices=("ecmp", "adaptive")), "ECMP hashing or adaptive routing"),
    ("--qps", "qps", dict(type=int, metavar="N"), "queue pairs per connection, hashed separately under ECMP"),
    ("--oversubscription", "oversubscription", dict(type=float, metavar="R"),
     "GPU-facing over uplink bandwidth of a pod (of a leaf with 2 tiers), e.g. 3 for 3:1"),
    ("--pod-nodes", "pod_nodes", dict(type=int, metavar="N"), "servers per pod (needs 3 tiers)"),
    ("--servers-per-leaf", "servers_per_leaf", dict(type=int, metavar="N"), "servers under one top-of-rack switch"),
    ("--switch", "switch", dict(metavar="LEAF[,SPINE[,CORE]]"),
     f"switch model(s), one for every tier or one per tier: {', '.join(fabric.SWITCHES)}"),
    ("--tiers", "tiers", dict(type=int, metavar="N"), "switch tiers (default: the fewest that fit)"),
    ("--top-of-rack", "rail_optimized", dict(action="store_const", const=False),
     "cable all NICs of a server to one top-of-rack switch instead of rail-optimized leaves"),
    ("--planes", "planes", dict(type=int, metavar="N"),
     "split each NIC over N ports, one per plane, each plane a whole Clos of its own"),
    ("--dual-tor", "dual_tor", dict(action="store_const", const=True),
     "each NIC's two ports on two top-of-rack switches (with --planes 2, one per plane)"),
)


def add_cluster_flags(p):
    """Add the cluster, what-if and failure flags to parser ``p``."""
    g = p.add_argument_group("cluster (see 'clusters' below)")
    g.add_argument("--cluster", metavar="KIND[-GPU]:COUNT", help=f"a kind and size (default {DEFAULT_CLUSTER})")
    g.add_argument("--gpus", type=int, metavar="N", help="GPU count, instead of --cluster (also scales --preset)")
    g.add_argument("--fabric", metavar="KIND|FILE",
                   help=f"fabric kind for --gpus ({', '.join(FABRICS)}; default superpod), or a fabric saved "
                        "with fabric.save")
    g.add_argument("--gpu", help="GPU model for --gpus (default H100; GB200 for nvl72)")
    g.add_argument("--preset", choices=sorted(fabric.PRESETS), help="a published cluster (fabric.preset)")
    w = p.add_argument_group("what if (builder arguments; each applies to the kinds and presets whose builder takes it)")
    for flag, _, options, help_ in WHAT_IF:
        w.add_argument(flag, help=help_, **options)
    f = p.add_argument_group("failures (applied after building)")
    f.add_argument("--fail", metavar="NAME[,NAME...]",
                   help="switches to remove by node name (spine3, leaf0), or cables as A~B (leaf0~spine2)")
    f.add_argument("--fail-random", type=float, metavar="FRACTION",
                   help="remove this fraction of the switch-to-switch cables, drawn with --fail-seed")
    f.add_argument("--fail-seed", type=int, default=0, metavar="N", help="seed of --fail-random (default 0)")


def build_parser():
    """A parser with only the cluster flags (for tests and the examples)."""
    p = argparse.ArgumentParser(add_help=False)
    add_cluster_flags(p)
    return p


def build_cluster(args):
    """The fabric graph the flags name, changed and failed as they say."""
    overrides = {arg: getattr(args, flag.lstrip("-").replace("-", "_")) for flag, arg, _, _ in WHAT_IF}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "switch" in overrides:
        names = [s.strip() for s in overrides["switch"].split(",") if s.strip()]
        overrides["switch"] = names[0] if len(names) == 1 else tuple(names)
    G = _built(args, overrides)
    return _failed(G, args)


def _built(args, overrides):
    is_file = args.fabric is not None and args.fabric not in FABRICS
    given = [name for name, value in (("--cluster", args.cluster), ("--preset", args.preset),
                                      ("--fabric FILE", args.fabric if is_file else None)) if value is not None]
    if len(given) > 1:
        raise CLIError(f"give one of --cluster, --preset and --fabric FILE, not {' and '.join(given)}")
    if is_file:
        if not os.path.isfile(args.fabric):
            raise CLIError(f"fabric={args.fabric!r} is neither a fabric kind ({', '.join(FABRICS)}) nor a file")
        for flag, value in (("--gpus", args.gpus), ("--gpu", args.gpu)):
            if value is not None:
                raise CLIError(f"{flag} does not apply to a saved fabric ({args.fabric})")
        if overrides:
            raise CLIError(f"{_flags(overrides)} cannot change a saved fabric ({args.fabric}): rebuild it, or use "
                           "--fail on it")
        return fabric.load(args.fabric)
    if args.preset is not None:
        if args.gpu is not None:
            raise CLIError(f"--gpu does not apply to --preset {args.preset} (its GPU is part of the preset)")
        try:
            return fabric.preset(args.preset, gpus=args.gpus, **overrides)
        except fabric.InvalidSpec as error:
            raise CLIError(f"--preset {args.preset}: {error}") from None
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
    builder = FABRICS[kind][0]
    accepted = set(inspect.signature(builder).parameters)
    refused = [arg for arg in overrides if arg not in accepted]
    if refused:
        takes = [flag for flag, arg, _, _ in WHAT_IF if arg in accepted]
        raise CLIError(f"{_flags(refused)} does not apply to {kind} (fabric.{builder.__name__}); it takes "
                       f"{', '.join(takes) or 'none of the what-if flags'}")
    return builder(count, gpu=gpu, **overrides)


def _flags(arguments):
    """The flags of builder ``arguments``, as the user typed them."""
    return ", ".join(flag for flag, arg, _, _ in WHAT_IF if arg in arguments)


def _failed(G, args):
    """``G`` with the ``--fail`` nodes and cables and the ``--fail-random`` cables removed."""
    failed = []
    if args.fail:
        for name in (n.strip() for n in args.fail.split(",") if n.strip()):
            if "~" in name:
                a, b = (x.strip() for x in name.split("~", 1))
                if not (G.has_edge(a, b) and G.has_edge(b, a)):
                    raise CLIError(f"fail={name!r}: no cable between {a!r} and {b!r}")
                G.remove_edge(a, b)
                G.remove_edge(b, a)
            elif name in G:
                if G.nodes[name].get("kind") in ("gpu", "nic", "nvswitch"):
                    raise CLIError(f"fail={name!r}: only switches and cables can fail here (GPU ranks must stay "
                                   "0..n-1); leave a GPU out of the job with --ranks instead")
                G.remove_node(name)
            else:
                switches = [n for n, d in node_items(G) if d.get("kind") == "switch"][:5]
                raise CLIError(f"fail={name!r} is no node of the fabric (switches are named like "
                               f"{', '.join(switches)})")
            failed.append(name)
    if args.fail_random is not None:
        if not 0 <= args.fail_random < 1:
            raise CLIError(f"fail_random={args.fail_random:g} must be in [0, 1)")
        kinds = dict(G.nodes(data="kind"))
        cables = sorted((u, v) for u, v in G.edges if kinds[u] == kinds[v] == "switch" and u < v)
        rng = np.random.default_rng(args.fail_seed)
        chosen = rng.choice(len(cables), size=round(args.fail_random * len(cables)), replace=False)
        for i in sorted(chosen.tolist()):
            u, v = cables[i]
            G.remove_edge(u, v)
            G.remove_edge(v, u)
        failed.append(f"{len(chosen)} of {len(cables)} switch cables at random (seed {args.fail_seed})")
    if failed:
        G.graph["name"] = f"{G.graph.get('name', 'fabric')}, failed: {'; '.join(failed)}"
    return G
