"""The algorithm table: one module per algorithm, registered here.

Each module defines ``NAME``, ``FAMILY`` (its row in NCCL's latency tables),
``COLLECTIVES``, and ``check(ctx)`` (raises ``Unsupported``), ``steps(ctx)`` (a list of
:class:`collectives.engine.Step`) and ``latency(ctx, protocol)``; ``PIPELINED = True``
when its steps overlap (time = the slowest) rather than follow one another.
"""

from collectives.algorithms import direct, halving_doubling, hierarchical, nvls, p2p, ring, sharp, tree

MODULES = (ring, tree, halving_doubling, hierarchical, nvls, sharp, direct, p2p)

# (collective, algorithm name) -> module
TABLE = {(collective, m.NAME): m for m in MODULES for collective in m.COLLECTIVES}
NAMES = ("ring", "tree", "halving_doubling", "hierarchical", "nvls", "sharp", "direct")


def for_collective(collective):
    """Modules that implement ``collective``, in table order."""
    return [m for (c, _), m in TABLE.items() if c == collective]
