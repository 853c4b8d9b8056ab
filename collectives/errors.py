"""The error hierarchy of the ``collectives`` package.

``InvalidSpec`` and ``Infeasible`` also derive from their ``fabric`` namesakes, so one
``except fabric.InvalidSpec`` catches bad input from either package.
"""

from fabric import errors as fabric_errors


class CollectivesError(Exception):
    """Base class of every error raised by ``collectives``."""


class InvalidSpec(CollectivesError, fabric_errors.InvalidSpec):
    """An argument is out of its allowed range, e.g. ``"nbytes=-1 must be >= 0"``."""


class Unsupported(CollectivesError, ValueError):
    """The fabric or group cannot run the requested algorithm (NVLS without NVSwitch...)."""


class Infeasible(CollectivesError, fabric_errors.Infeasible):
    """A valid plan that the hardware cannot hold (out of memory, too many flows)."""
