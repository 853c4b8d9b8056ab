"""The error hierarchy of the ``collectives`` package.

``InvalidSpec`` and ``Infeasible`` also derive from their ``fabric`` namesakes, so one
``except fabric.InvalidSpec`` catches bad input from either package.
"""

from contextlib import contextmanager

from fabric import errors as fabric_errors


class CollectivesError(Exception):
    """Base class of every error raised by ``collectives``."""


class InvalidSpec(CollectivesError, fabric_errors.InvalidSpec):
    """An argument is out of its allowed range, e.g. ``"nbytes=-1 must be >= 0"``."""


class Unsupported(CollectivesError, ValueError):
    """The fabric or group cannot run the requested algorithm (NVLS without NVSwitch...)."""


class Infeasible(CollectivesError, fabric_errors.Infeasible):
    """A valid plan that the hardware cannot hold (out of memory, too many flows)."""


class MemoryWarning(UserWarning):
    """A plan needs more memory per GPU than the GPU can give it: its estimate is of a plan
    that cannot run as given (the message names the memory needed and available)."""


class FabricBlindWarning(UserWarning):
    """The analytic level could not probe the fabric's communication patterns (their routing
    tables would not fit in memory) and priced them from one GPU's links: contention,
    oversubscription, ECMP collisions and failures are not in the estimate."""


@contextmanager
def collectives_errors():
    """Re-raise ``fabric`` ``InvalidSpec`` (from :mod:`fabric.checks`) as the ``collectives`` one.

    Examples
    --------
    >>> from fabric.checks import require_int
    >>> with collectives_errors():
    ...     require_int("tp", 0, minimum=1)
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: tp=0 must be >= 1
    """
    try:
        yield
    except fabric_errors.InvalidSpec as exc:
        if isinstance(exc, InvalidSpec):
            raise
        raise InvalidSpec(str(exc)) from None
