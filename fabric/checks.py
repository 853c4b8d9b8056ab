"""Input checks shared by specs, builders and models.

Each check raises :class:`~fabric.errors.InvalidSpec` with a message that names the
field, the bound and the offending value, and returns the value so checks compose in
assignments.

Examples
--------
>>> require_positive("nodes", 4)
4
>>> require_positive("nodes", 0)
Traceback (most recent call last):
...
fabric.errors.InvalidSpec: nodes=0 must be > 0
"""

import math
import numbers

from fabric.errors import InvalidSpec


def _require_number(field, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidSpec(f"{field}={value!r} must be a number")
    if not math.isfinite(value):
        raise InvalidSpec(f"{field}={value!r} must be finite")
    return value


def require_positive(field, value):
    """Return ``value`` if it is a finite number > 0, else raise ``InvalidSpec``."""
    _require_number(field, value)
    if value <= 0:
        raise InvalidSpec(f"{field}={value!r} must be > 0")
    return value


def require_non_negative(field, value):
    """Return ``value`` if it is a finite number >= 0, else raise ``InvalidSpec``."""
    _require_number(field, value)
    if value < 0:
        raise InvalidSpec(f"{field}={value!r} must be >= 0")
    return value


def require_int(field, value, *, minimum=None, maximum=None):
    """Return ``value`` if it is an integer within ``[minimum, maximum]``.

    Floats are rejected even when integral, so nothing is silently rounded.
    """
    # exact ints first: the abstract-class check costs more than the rest (a search checks
    # hundreds of thousands of plan fields)
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise InvalidSpec(f"{field}={value!r} must be an integer")
    if minimum is not None and value < minimum:
        raise InvalidSpec(f"{field}={value!r} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidSpec(f"{field}={value!r} must be <= {maximum}")
    return int(value)


def require_bool(field, value):
    """Return ``value`` if it is ``True`` or ``False`` (not a string, not 0 or 1)."""
    if not isinstance(value, bool):
        raise InvalidSpec(f"{field}={value!r} must be True or False")
    return value


# Seeds are hashed as unsigned 64-bit integers (fabric.routing): the largest a seed may be.
MAX_SEED = 2**63 - 1


def require_seed(seed):
    """Return ``seed`` if it is an integer in ``0 .. MAX_SEED``."""
    return require_int("seed", seed, minimum=0, maximum=MAX_SEED)


def require_choice(field, value, choices):
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise InvalidSpec(f"{field}={value!r} must be one of {options}")
    return value


def lookup(field, name, table, spec_type=None):
    """Return ``table[name]``, or ``name`` itself when it is a ``spec_type`` (a user's own
    part, validated when it was made), or raise ``InvalidSpec`` listing the known names."""
    if spec_type is not None and isinstance(name, spec_type):
        return name
    try:
        return table[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(table))
        raise InvalidSpec(f"{field}={name!r} is not known; known: {known}") from None
