"""What the fabric does to one communication pattern, measured once and reused at any size.

The closed forms of the analytic level read the rates around one GPU: they cannot see
oversubscription, ECMP collisions, rail misalignment or failed switches. A *pattern* is a
collective with its algorithm on a fixed set of concurrent groups (the data-parallel rings
of a plan, its pipeline sends, its expert all-to-all). :class:`PatternProbes` prices each
pattern once at the flow level, at :data:`PROBE_BYTES`, and keeps the ratio of the flow
level's bandwidth time to the closed form's (its *slowdown*, 1 where nothing contends).
The analytic level then prices the pattern at any size as the closed form's latency plus
its bandwidth time times that slowdown: as fast as before, and fabric-aware.

What the probe sees: everything the flow level sees for that pattern alone (routing,
ECMP hashing with the given seed, oversubscription, failures; ``NoRoute`` where a group
cannot reach itself). What it does not: patterns of one step competing with each other
(the flow level does not either; the step overlaps them in time), and size effects that
are not a constant factor (the protocol the closed form picks at a small size keeps its
own latency; only its bandwidth part is scaled).

A pattern whose flow-level probe does not fit in memory (``fabric.TooLarge``: a 64-rank
all-to-all on 16k GPUs with 16 queue pairs is a million flows times 16) is priced by its
closed form, slowdown 1, with a :class:`collectives.FabricBlindWarning`; it is recorded
as :data:`BLIND` so that results can say they are not fully fabric-aware.

Examples
--------
>>> import fabric
>>> from collectives.params import DEFAULT_PARAMS
>>> G = fabric.fat_tree(16, routing="ecmp", rail_optimized=False, oversubscription=4.0)
>>> probes = PatternProbes(G, DEFAULT_PARAMS)
>>> rings = [list(range(i, 128, 8)) for i in range(8)]      # 8 rings of one GPU per server
>>> probes.slowdown("all_reduce", "ring", rings) > 1.5      # 4:1 above the leaves
True
>>> probes.slowdown("all_reduce", "ring", [list(range(8))])  # inside one server: NVLink only
1.0
"""

import hashlib
import warnings

import numpy as np

from fabric.compiled import compile_fabric
from fabric.errors import TooLarge
from fabric.next_hops import prepare_tables

from collectives import api
from collectives.array_memo import ArrayMemo
from collectives.engine import Step, solve_steps
from collectives.errors import FabricBlindWarning, InvalidSpec

# Bytes per probe: large enough that every algorithm runs at its bandwidth (Simple
# protocol, latency a small share), so the ratio of bandwidth times is the fabric's effect.
PROBE_BYTES = 2**28

# A table's entry for a pattern too large to probe: priced as its closed form (slowdown 1).
BLIND = None


# Ring and halving-doubling all-reduce are a reduce-scatter then an all-gather over the same
# flows (steps mirrored), so the three share one slowdown and one probe.
_SAME_FLOWS = {(collective, algorithm): "reduce_scatter" for collective in ("all_reduce", "all_gather")
               for algorithm in ("ring", "halving_doubling")}


def pattern_key(collective, algorithm, groups):
    """A compact key of a pattern: the groups' shape and a digest of their ranks (a
    data-parallel pattern on 16k GPUs is 128 kB of ranks; its key is 16 bytes of digest).
    Collectives that move the same flows share a key."""
    groups = np.ascontiguousarray(groups, dtype=np.int64)
    collective = _SAME_FLOWS.get((collective, algorithm), collective)
    return collective, algorithm, groups.shape, hashlib.blake2b(groups.tobytes(), digest_size=16).digest()


def send_phase(G, pairs, nbytes, params, seed, compiled, background=None):
    """The flow-level :class:`collectives.result.Phase` of ``pairs`` each sending ``nbytes``
    at once: its ``time`` until the slowest has sent them, latency excluded, and its
    ``far_latency`` across sites (``background``: other traffic, as
    :func:`collectives.engine.solve_steps`)."""
    ctx = api.contexts_for(G, "send_recv", [pairs[0]], nbytes, level="flow", params=params, seed=seed,
                           compiled=compiled)[0]
    return solve_steps(ctx, [[Step("send", nbytes, 1, pairs[:, 0], pairs[:, 1])]], background)[0][0]


class _LongHaul:
    """What :class:`PatternProbes` and :class:`PatternTable` share: a pattern's long-haul
    latency, kept in ``self.table`` beside its slowdown."""

    def far(self, collective, algorithm, groups, on_fabric=None):
        """Seconds of long-haul propagation the pattern waits for across sites (0 on one site);
        probed with :meth:`slowdown`, which must be asked first."""
        groups = np.atleast_2d(np.asarray(groups, dtype=np.int64))
        key = self._arrays.get(groups, (collective, algorithm), lambda: pattern_key(collective, algorithm, groups))
        return self.table.get(far_key(key), 0.0)


class PatternProbes(_LongHaul):
    """Flow-level slowdowns of communication patterns on one fabric graph, each measured once.

    Parameters
    ----------
    G : networkx.DiGraph
    params : collectives.CommParams
    seed : int
        ECMP hash seed of the probes.
    compiled : fabric.compiled.CompiledFabric or None
        ``compile_fabric(G)`` when the caller has it.
    background : tuple of ndarray or None
        ``(src, dst)`` of other jobs' flows, present in every probe
        (:func:`collectives.engine.solve_steps`): slowdowns on a shared fabric.

    Attributes
    ----------
    table : dict
        :func:`pattern_key` -> slowdown of every pattern probed so far that leaves its
        NVLink domains (:data:`BLIND` where the probe did not fit in memory); what
        :class:`PatternTable` serves to worker processes.
    blind : bool
        Whether some pattern was too large to probe.
    """

    def __init__(self, G, params, seed=0, compiled=None, background=None):
        self.G, self.params, self.seed, self.background = G, params, seed, background
        self.compiled = compiled or compile_fabric(G)
        self.table = {}
        self.blind = False  # whether some pattern was too large to probe (priced blind)
        self._arrays = ArrayMemo()

    def crosses_domains(self, groups):
        """Whether any group (fabric ranks) spans NVLink domains: only those meet the network."""
        domain = self.compiled.domain[np.asarray(groups)]
        return bool(((domain < 0) | (domain != domain[:, :1])).any())

    def slowdown(self, collective, algorithm, groups, on_fabric=None):
        """Flow-level over closed-form bandwidth time of ``collective`` with ``algorithm`` on
        the concurrent ``groups`` (1.0 for groups inside their NVLink domains).

        ``groups`` are the job's ranks, which name the pattern; ``on_fabric`` the fabric
        ranks they run on (default the same)."""
        groups = np.atleast_2d(np.asarray(groups, dtype=np.int64))
        fabric_groups = groups if on_fabric is None else np.atleast_2d(np.asarray(on_fabric, dtype=np.int64))
        if not self._arrays.get(fabric_groups, "crosses", lambda: self.crosses_domains(fabric_groups)):
            return 1.0
        key = self._arrays.get(groups, (collective, algorithm), lambda: pattern_key(collective, algorithm, groups))
        if key not in self.table:
            try:
                self.table[key], far = self._probe(collective, algorithm, fabric_groups)
                if far:
                    self.table[far_key(key)] = far
            except TooLarge as error:
                warnings.warn(FabricBlindWarning(
                    f"{collective} ({algorithm}) on {len(groups):,} concurrent groups of {groups.shape[1]} ranks: "
                    f"{error}; priced from one GPU's links"), stacklevel=2)
                self.table[key] = BLIND
                self.blind = True
        return _served(self.table[key])

    def _probe(self, collective, algorithm, fabric_groups):
        """The slowdown of one pattern, measured at the flow level, and its long-haul latency."""
        prepare_tables(self.compiled)  # many small flow sets follow: walks read one table
        if collective == "send_recv":
            closed = api.send_recv(self.G, PROBE_BYTES, ranks=fabric_groups[0], level="analytic",
                                   params=self.params)
            phase = send_phase(self.G, fabric_groups, PROBE_BYTES, self.params, self.seed, self.compiled,
                               self.background)
            flow, far = phase.time, phase.far_latency
        else:
            closed = api.evaluate(self.G, collective, fabric_groups[:1], PROBE_BYTES, algorithm=algorithm,
                                  level="analytic", params=self.params)[0]
            results = api.evaluate(self.G, collective, fabric_groups, PROBE_BYTES, algorithm=algorithm, level="flow",
                                   params=self.params, seed=self.seed, compiled=self.compiled,
                                   background=self.background)
            flow, far = max(r.time - r.latency for r in results), max(r.far_latency for r in results)
        return flow / (closed.time - closed.latency), far


def far_key(key):
    """The table key of a pattern's long-haul latency (kept beside its slowdown)."""
    return ("far",) + key


def _served(slowdown):
    return 1.0 if slowdown is BLIND else slowdown


class PatternTable(_LongHaul):
    """The slowdowns a :class:`PatternProbes` measured, served without the graph (to the
    worker processes of a search): the job's NVLink domains are consecutive blocks of
    ``gpus_per_domain`` ranks, and a pattern leaving them must have been probed.

    Examples
    --------
    >>> table = PatternTable({pattern_key("all_reduce", "ring", [[0, 8]]): 1.25}, 8)
    >>> table.slowdown("all_reduce", "ring", [[0, 8]]), table.slowdown("all_reduce", "ring", [[0, 1]])
    (1.25, 1.0)
    """

    def __init__(self, table, gpus_per_domain):
        self.table, self.gpus_per_domain = dict(table), gpus_per_domain
        self.blind = BLIND in self.table.values()  # a pattern was too large to probe
        self._arrays = ArrayMemo()

    def slowdown(self, collective, algorithm, groups, on_fabric=None):
        """As :meth:`PatternProbes.slowdown`, from the table (``on_fabric`` is not needed)."""
        groups = np.atleast_2d(np.asarray(groups, dtype=np.int64))
        if not self._arrays.get(groups, "crosses", lambda: self._crosses(groups)):
            return 1.0
        key = self._arrays.get(groups, (collective, algorithm), lambda: pattern_key(collective, algorithm, groups))
        if key not in self.table:
            raise InvalidSpec(f"{collective} with {algorithm} on {groups.shape[0]} group(s) of {groups.shape[1]} "
                              "ranks was not probed on the fabric: the table serves the patterns it was built for")
        return _served(self.table[key])

    def _crosses(self, groups):
        domain = groups // self.gpus_per_domain
        return bool((domain != domain[:, :1]).any())
