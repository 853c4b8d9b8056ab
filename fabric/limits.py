"""How much memory one request may ask for: size checks made before the large allocations.

A 1M-GPU flow-level call, ``qps=10**7`` or ``links=10**8`` would otherwise run until the
operating system kills the process. The routing and flow code estimates the bytes its
largest arrays need before it allocates them and raises :class:`~fabric.errors.TooLarge`
(what was asked, about how much it needs, what is available, what to do instead) when they
would not fit.

:data:`MEMORY_BUDGET` is the bound: None (the default) means what the machine has free at
the time of the check (``MemAvailable`` of ``/proc/meminfo``, and the address-space limit of
the process where one is set); a number of bytes sets it explicitly.

Examples
--------
>>> import fabric.limits as limits
>>> limits.check_memory("a test", 1024, "ask for less")   # a kilobyte always fits
>>> old, limits.MEMORY_BUDGET = limits.MEMORY_BUDGET, 2**20
>>> limits.check_memory("routing 10 flows", 2**30, "ask for less")
Traceback (most recent call last):
...
fabric.errors.TooLarge: routing 10 flows needs about 1 GiB; 1 MiB is available (fabric.limits.MEMORY_BUDGET); ask for less
>>> limits.MEMORY_BUDGET = old
"""

import os
import resource

from fabric.errors import TooLarge
from fabric.tables import format_bytes

# Bytes a single request may allocate; None: what the machine has available at the check.
MEMORY_BUDGET = None

def _meminfo_available():
    """``MemAvailable`` in bytes, or None where /proc/meminfo does not exist (not Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _address_space_left():
    """Bytes left under the process's address-space limit (``ulimit -v``), or None."""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        used = 0
    return max(0, limit - used)


def available_memory():
    """Bytes a request may allocate now: :data:`MEMORY_BUDGET`, or the machine's free memory.

    Examples
    --------
    >>> available_memory() > 0
    True
    """
    if MEMORY_BUDGET is not None:
        return MEMORY_BUDGET
    known = [b for b in (_meminfo_available(), _address_space_left()) if b is not None]
    if known:
        return min(known)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(what, nbytes, advice):
    """Raise :class:`~fabric.errors.TooLarge` unless ``nbytes`` fit in :func:`available_memory`.

    Parameters
    ----------
    what : str
        The request, as the message should name it (``"routing 1,048,576 flows x 8 queue pairs"``).
    nbytes : float
        About how much its largest arrays take together.
    advice : str
        What to do instead.
    """
    free = available_memory()
    if nbytes > free:
        raise TooLarge(f"{what} needs about {format_bytes(nbytes)}; {format_bytes(free)} is available "
                       f"(fabric.limits.MEMORY_BUDGET); {advice}")
