"""The error hierarchy of the ``fabric`` package.

Every message names the field, the bound and the value that failed, e.g.
``"nodes=0 must be >= 1"``.
"""


class FabricError(Exception):
    """Base class of every error raised by ``fabric``."""


class InvalidSpec(FabricError, ValueError):
    """An argument, spec or graph attribute is out of its allowed range or missing."""


class NoRoute(FabricError):
    """A destination cannot be reached from a source on the graph."""


class Infeasible(FabricError):
    """A valid request that the hardware cannot realise (too large, too many ports)."""


class TooLarge(FabricError, MemoryError):
    """A request whose arrays would not fit in memory (:mod:`fabric.limits`), refused before
    they are allocated."""
