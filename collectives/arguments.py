"""The values the command line parses: rank lists and message sizes, each checked with an
error that names the flag and the value (clusters: :mod:`collectives.cluster_flags`).

Examples
--------
>>> parse_ranks("0-31:8,40")
[0, 8, 16, 24, 40]
"""

import argparse
import math


class CLIError(ValueError):
    """A flag value the command line itself rejects (reported like model errors)."""


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
