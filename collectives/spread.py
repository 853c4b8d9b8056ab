"""What ECMP hashing spreads: a time computed over many hash seeds, as a distribution.

Under ECMP every flow takes one hashed path per queue pair, so a collective or a training
step has as many answers as there are hash seeds; a single draw can make a failed spine
look faster than the intact fabric. :func:`over_seeds` runs any seeded computation for
seeds ``0..n-1`` and returns a :class:`Spread` (mean, p5, p50, p95, min, max);
:func:`collective_spread` and :func:`collectives.step_spread` are the two common uses.
On adaptive routing every seed gives the same time and the spread is zero.

Examples
--------
>>> import fabric
>>> G = fabric.fat_tree(8, routing="ecmp", rail_optimized=False)
>>> s = collective_spread("all_reduce", G, 2**28, seeds=4)
>>> s.p5 <= s.p50 <= s.p95, len(s.values)
(True, 4)
"""

from dataclasses import dataclass

import numpy as np

from fabric.checks import require_choice, require_int
from fabric.tables import format_time, html_table, text_table

from collectives import api
from collectives.errors import collectives_errors

# Most seeds one spread may run (each is a full flow-level computation).
MAX_SEEDS = 1024
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv")


@dataclass(frozen=True)
class Spread:
    """Times (s) of one computation over ECMP hash seeds ``0..len(values)-1``.

    Attributes
    ----------
    what : str
        What was computed, for the tables.
    values : tuple of float
        One time per seed, in seed order.
    """

    what: str
    values: tuple

    @property
    def mean(self):
        return float(np.mean(self.values))

    def percentile(self, q):
        """The ``q``-th percentile (linear interpolation between seeds)."""
        return float(np.percentile(self.values, q))

    @property
    def p5(self):
        return self.percentile(5)

    @property
    def p50(self):
        return self.percentile(50)

    @property
    def p95(self):
        return self.percentile(95)

    @property
    def min(self):
        return float(min(self.values))

    @property
    def max(self):
        return float(max(self.values))

    def to_dict(self):
        """Plain types, JSON-ready: the values and their summary."""
        return {"what": self.what, "seeds": len(self.values), "values": list(self.values), "mean": self.mean,
                "p5": self.p5, "p50": self.p50, "p95": self.p95, "min": self.min, "max": self.max}

    def _rows(self):
        return [("seeds", str(len(self.values))), ("mean", format_time(self.mean)),
                ("p5 / p50 / p95", " / ".join(format_time(v) for v in (self.p5, self.p50, self.p95))),
                ("min .. max", f"{format_time(self.min)} .. {format_time(self.max)}")]

    def __str__(self):
        return text_table(f"Spread over ECMP seeds: {self.what}", self._rows())

    def _repr_html_(self):
        return html_table(f"Spread over ECMP seeds: {self.what}", self._rows())


def over_seeds(compute, seeds, what):
    """:class:`Spread` of ``compute(seed)`` (seconds) for ``seed`` in ``0..seeds-1``.

    Examples
    --------
    >>> over_seeds(lambda seed: 1.0 + seed, 3, "a test").values
    (1.0, 2.0, 3.0)
    """
    with collectives_errors():
        require_int("seeds", seeds, minimum=1, maximum=MAX_SEEDS)
    return Spread(what, tuple(float(compute(seed)) for seed in range(seeds)))


def collective_spread(collective, G, nbytes, *, seeds=8, **kwargs):
    """:class:`Spread` of a collective's time over ECMP seeds ``0..seeds-1``.

    Parameters
    ----------
    collective : str
        A collective of :mod:`collectives` (``"all_reduce"``, ``"all_to_all"``...).
    G : networkx.DiGraph
    nbytes : float
    seeds : int
    **kwargs
        Passed to the collective (``ranks``, ``algorithm``, ``level``...; the default level
        is the flow level, which routes every seed).

    Examples
    --------
    >>> import fabric
    >>> s = collective_spread("all_reduce", fabric.dgx_superpod(2), 2**28, seeds=3)
    >>> s.min == s.max      # adaptive routing: every seed alike
    True
    """
    with collectives_errors():
        require_choice("collective", collective, COLLECTIVES)
    fn = getattr(api, collective)
    return over_seeds(lambda seed: fn(G, nbytes, seed=seed, **kwargs).time, seeds,
                      f"{collective} of {nbytes!r} bytes on {getattr(G, 'graph', {}).get('name', 'the fabric')}")
