"""Pipeline schedules simulated op by op: 1F1B and interleaved 1F1B (Megatron-LM).

Each device runs its forward (F) and backward (B) passes of every microbatch in the
order Megatron-LM's schedules issue them; an op starts when its device is free and its
input has arrived from the neighbouring stage (plus the point-to-point transfer time).
The bubble comes out of the simulation rather than from the textbook ``(p-1)/m``, so
uneven stages and transfer times are seen.

Examples
--------
Four equal stages, eight microbatches: the makespan is (m + p - 1) x (F + B), the
textbook 1F1B result when transfers are free.

>>> r = simulate(forward=[1.0] * 4, backward=[2.0] * 4, microbatches=8)
>>> r.makespan, round(r.bubble_fraction, 3)
(33.0, 0.273)
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from collectives.errors import InvalidSpec


@dataclass(frozen=True)
class Schedule:
    """Outcome of a simulated schedule.

    Attributes
    ----------
    makespan : float
        Seconds from the first forward to the last backward.
    busy : ndarray
        Per device, seconds of compute.
    bubble_fraction : float
        Idle share of the slowest device's makespan: 1 - max busy / makespan.
    exposed_transfer : float
        Seconds of stage-to-stage transfers on the critical path: walking back from the
        last op, each op is charged to whatever it waited for (its input, including the
        transfer, or its device's previous op).
    """

    makespan: float
    busy: np.ndarray
    bubble_fraction: float
    exposed_transfer: float = 0.0


def _order(rank, p, v, m):
    """Megatron's op order on device ``rank``: arrays (is_forward, chunk, microbatch).

    Forward and backward passes are numbered in the order Megatron issues them (chunk-major
    within each round of p micro-batches; backward chunks reversed); the device runs
    ``warmup`` forwards, then alternates one forward and one backward, then the remaining
    backwards.
    """
    total = m * v
    warmup = min(p - rank - 1, m) if v == 1 else min((p - rank - 1) * 2 + (v - 1) * p, total)
    k = np.arange(total)
    forward_at = np.where(k < warmup, k, 2 * k - warmup)
    backward_at = np.where(k < total - warmup, warmup + 2 * k + 1, total + k)
    group, within = np.divmod(k, p * v)
    chunk, mb = within // p, group * p + within % p
    is_forward = np.zeros(2 * total, bool)
    chunks, mbs = np.empty(2 * total, int), np.empty(2 * total, int)
    is_forward[forward_at] = True
    chunks[forward_at], chunks[backward_at] = chunk, v - 1 - chunk
    mbs[forward_at] = mbs[backward_at] = mb
    return is_forward, chunks, mbs


# A schedule's op times obey max-plus recurrences that repeat every micro-batch (1F1B) or
# every round of p micro-batches (interleaved), so after a transient every op ends a fixed
# time later than the same op c micro-batches earlier (c: the period). Long runs are
# simulated for a few rounds of p micro-batches (doubled until the periodic regime
# shows, or the run is simulated in full) and extended by whole periods: exact (to a 1e-9
# relative tolerance on the observed shifts), because the regime is observed on every op over
# more than the schedule's dependency span, not assumed. Probe lengths: the shortest that leave
# room for the warm-up, a window of a period or two plus the dependency span, and the
# cool-down (see _periods); they catch the regime in 75-90% of random uneven pipelines (stages
# up to +-50% apart) and the rest are probed again, longer.
_PROBE_ROUNDS_1F1B = 5
_PROBE_ROUNDS_INTERLEAVED = 10


def _probe(p, v):
    """Micro-batches of the first probe run of a long run on ``p`` devices, ``v`` chunks each."""
    return p * (_PROBE_ROUNDS_1F1B if v == 1 else _PROBE_ROUNDS_INTERLEAVED)


def simulate(forward, backward, microbatches, *, virtual_stages=1, transfer=0.0):
    """Simulate 1F1B (``virtual_stages=1``) or interleaved 1F1B.

    Parameters
    ----------
    forward, backward : sequence of float
        Seconds per microbatch of each virtual stage, in pipeline order: ``p * v``
        entries; virtual stage ``c * p + r`` (chunk ``c``) runs on device ``r``.
    microbatches : int
        Microbatches per step; interleaving needs a multiple of the devices ``p``.
    virtual_stages : int
        Model chunks per device.
    transfer : float or sequence of float
        Seconds to send a stage's activations (or gradients) to the next (previous)
        device; one value, or one per virtual-stage boundary (``p * v - 1``).

    Returns
    -------
    Schedule
    """
    return simulate_many([(forward, backward, microbatches, virtual_stages, transfer)])[0]


def simulate_many(jobs):
    """:func:`simulate` of many ``(forward, backward, microbatches, virtual_stages,
    transfer)`` jobs; those with the same shape (stages, chunks, microbatches) are
    simulated together, each wave of independent ops one array step over all their times.

    Examples
    --------
    >>> a, b = simulate_many([([1.0] * 4, [2.0] * 4, 8, 1, 0.0), ([1.0] * 4, [3.0] * 4, 8, 1, 0.0)])
    >>> a.makespan, b.makespan
    (33.0, 44.0)
    """
    keys = [_key(*job) for job in jobs]
    # kept here, not read back from the cache: remembering may clear it (when full, or from
    # another thread of a search) before the last of these keys is read
    found, missing = {}, {}
    for key in keys:
        schedule = _CACHE.get(key)
        if schedule is None:
            missing.setdefault(simulation_shape(*key[2:5]), {})[key] = None  # a dict keeps the order
        else:
            found[key] = schedule
    for (p, v, _), group in missing.items():
        group = list(group)
        forward = np.array([k[0] for k in group])
        backward = np.array([k[1] for k in group])
        m = np.array([k[4] for k in group])
        hop = np.array([k[5] for k in group]).reshape(len(group), -1)
        for key, schedule in zip(group, _simulate(forward, backward, p, v, m, hop)):
            _remember(key, schedule)
            found[key] = schedule
    return [found[key] for key in keys]


def simulation_shape(p, v, m):
    """The jobs :func:`simulate_many` simulates together, one array step per wave for all:
    ``(p, v, m)``, or ``(p, v, None)`` for all long runs, which share one probe run.

    Examples
    --------
    >>> simulation_shape(4, 1, 8), simulation_shape(4, 1, 64) == simulation_shape(4, 1, 128)
    ((4, 1, 8), True)
    """
    # Long runs all simulate the same first rounds, whatever their length.
    return (p, v, None) if _long(m, _probe(p, v)) else (p, v, m)


def _long(m, probe):
    """Whether a run of ``m`` micro-batches is extended from a ``probe``-micro-batch run
    (probes find the regime for 92% of the pipelines of a 405B search, so a probe pays
    off well before twice its length)."""
    return m >= 1.25 * probe


def _key(forward, backward, microbatches, virtual_stages, transfer):
    """A validated, hashable job: (forward, backward, p, v, m, hop) as tuples and ints."""
    forward, backward = np.asarray(forward, float), np.asarray(backward, float)
    n_stages = len(forward)
    v = virtual_stages
    if n_stages % v or len(backward) != n_stages:
        raise InvalidSpec(f"forward and backward need p*virtual_stages entries, got {len(forward)} and {len(backward)}")
    p, m = n_stages // v, microbatches
    if v > 1 and m % p:
        raise InvalidSpec(f"microbatches={m} must be a multiple of pipeline stages={p} for the interleaved schedule")
    hop = np.broadcast_to(np.asarray(transfer, float), (max(n_stages - 1, 0),))
    return tuple(forward.tolist()), tuple(backward.tolist()), p, v, m, tuple(hop.tolist())


# Plans that differ only in what the pipeline does not see (ZeRO stage, optimizer...) give
# identical stage times: a search simulates each distinct pipeline once.
_CACHE = {}
_CACHE_SIZE = 65536


def _remember(key, schedule):
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[key] = schedule


def _simulate(forward, backward, p, v, m, hop):
    """Schedules of jobs (rows of ``forward``, ``backward``, ``hop``, micro-batches ``m``)
    sharing p and v, either all long (:func:`_extended`) or all of one length."""
    if _long(int(m[0]), _probe(p, v)):
        makespan, exposed = _extended(forward, backward, p, v, m, hop)
    else:
        makespan, exposed = _run(forward, backward, p, v, int(m[0]), hop)
    # every device runs each of its chunks' forward and backward once per microbatch
    busy = m[:, None] * (forward + backward).reshape(len(forward), v, p).sum(axis=1)
    return [
        Schedule(makespan=float(t), busy=b, bubble_fraction=float(1 - b.max() / t), exposed_transfer=float(max(0.0, x)))
        for t, b, x in zip(makespan, busy, exposed)
    ]


def _extended(forward, backward, p, v, m, hop):
    """Makespan and critical-path transfer seconds of long runs (``m`` per row): a probe run
    finds each row's period, and a run ending a whole number of periods short of ``m`` is
    extended by those periods."""
    makespan, exposed = np.empty(len(m)), np.empty(len(m))
    pending, probe = np.arange(len(m)), _probe(p, v)
    while pending.size:
        full = pending[~_long(m[pending], probe)]
        for value in np.unique(m[full]):
            rows = full[m[full] == value]
            makespan[rows], exposed[rows] = _run(forward[rows], backward[rows], p, v, int(value), hop[rows])
        rows = pending[_long(m[pending], probe)]
        if not rows.size:
            break
        end, path, last_ops = _timeline(forward[rows], backward[rows], p, v, probe, hop[rows])
        period, end_shift, path_shift = _periods(end, path, p, v, probe)
        # A run of M >= probe - 2c micro-batches ends a period later when run to M + c: its
        # cool-down depends only on ops at most a span before it, where the probe saw the
        # regime. So m is reached from the probe itself or from the shortest such run.
        c = np.maximum(period, 1)
        short = (m[rows] - probe) % c
        length = np.where(short == 0, probe, probe - 2 * c + short)
        for value in np.unique(length[period > 0]):
            chosen = np.flatnonzero((period > 0) & (length == value))
            if value == probe:
                t, x = _last(end[:, chosen], path[:, chosen], last_ops)
            else:
                r = rows[chosen]
                t, x = _run(forward[r], backward[r], p, v, int(value), hop[r])
            periods = (m[rows[chosen]] - value) // period[chosen]
            makespan[rows[chosen]] = t + periods * end_shift[chosen]
            exposed[rows[chosen]] = x + periods * path_shift[chosen]
        pending, probe = rows[period == 0], 2 * probe
    return makespan, exposed


def _periods(end, path, p, v, m):
    """Per row of a run of ``m`` micro-batches: the smallest period c (micro-batches) such
    that every op ends, and has critical-path transfers, a fixed amount more than the same op
    c micro-batches earlier, on every op of a window longer than the dependency span (0 when
    none is seen); and those two amounts.

    Micro-batches are taken in units the op order repeats over: one (1F1B) or a round of p
    (interleaved). An op depends on ops at most ``span`` units before it (a device's previous
    op is at most p - 1 micro-batches, or two rounds of warm-up, behind), and the warm-up and
    cool-down units, whose ops follow other patterns, are left out of the window.
    """
    k = end.shape[1]
    unit, span, edge = (1, p, p) if v == 1 else (p, 3, 2)
    units = m // unit
    shape = (2 * p * v, units, unit, k)
    end_units, path_units = end[:-1].reshape(shape), path[:-1].reshape(shape)
    tolerance = 1e-9 * end.max(axis=0)
    period, end_shift, path_shift = np.zeros(k, int), np.zeros(k), np.zeros(k)
    clean = units - edge  # units before the cool-down
    c = 1
    while clean - 2 * c - span >= edge and not period.all():
        window = slice(clean - 2 * c - span, clean - c)
        later = slice(window.start + c, window.stop + c)
        end_step = (end_units[:, later] - end_units[:, window]).reshape(-1, k)
        found = (period == 0) & (np.ptp(end_step, axis=0) <= tolerance)
        if found.any():  # the transfers on the path must repeat too
            path_step = (path_units[:, later] - path_units[:, window]).reshape(-1, k)
            found &= np.ptp(path_step, axis=0) <= tolerance
            period[found] = c * unit
            end_shift[found], path_shift[found] = end_step[0, found], path_step[0, found]
        c += 1
    return period, end_shift, path_shift


def _run(forward, backward, p, v, m, hop):
    """Makespan and critical-path transfer seconds of the op-by-op simulation of every row."""
    end, path, last_ops = _timeline(forward, backward, p, v, m, hop)
    return _last(end, path, last_ops)


def _last(end, path, last_ops):
    """Makespan (the latest device's last op) and that op's critical-path transfer seconds."""
    ends = end[last_ops]  # devices x rows
    last_device = np.argmax(ends, axis=0)
    rows = np.arange(end.shape[1])
    return ends[last_device, rows], path[last_ops][last_device, rows]


def _timeline(forward, backward, p, v, m, hop):
    """Every op's end and critical-path transfer seconds, rows of ops (then a zero row for
    "none") by columns of jobs, and each device's last op.

    Megatron's op order does not depend on the times, so the ops are grouped once per
    shape into waves of mutually independent ops (:func:`_waves`) and every wave is a few
    array operations over all its ops and all rows at once. The ops are simulated in wave
    order, so that each wave reads and writes contiguous rows (``take`` and slices are
    several times cheaper than fancy indexing on arrays this small).
    """
    waves, position, stage, boundary, last_ops = _waves(p, v, m)
    k = len(forward)
    duration = np.concatenate([forward, backward], axis=1).T  # forward stages, then backward
    hop = np.concatenate([hop.T, np.zeros((1, k))])  # the last entry: no transfer
    duration, hop = duration.take(stage, axis=0), hop.take(boundary, axis=0)[:, None, :]
    # each op's end (state[:, 0]) and critical-path transfer seconds (state[:, 1]), side by
    # side so that a wave reads both with one take
    state = np.zeros((len(position), 2, k))
    for ops, previous, source in waves:
        mine = state.take(previous, axis=0)  # its device's previous op: when the device is free
        arrived = state.take(source, axis=0)
        arrived += hop[ops]  # its input: when it has arrived, and its path with this transfer
        # it waited for the input: it starts when the input arrived, the input's path is its own
        np.copyto(mine, arrived, where=arrived[:, :1] > mine[:, :1])
        mine[:, 0] += duration[ops]
        state[ops] = mine
    state = state.take(position, axis=0)
    return state[:, 0], state[:, 1], last_ops


@lru_cache(maxsize=512)
def _waves(p, v, m):
    """Megatron's ops of shape (p, v, m) grouped into waves that depend only on earlier
    waves, and each device's last op.

    Ops are numbered forward then backward, stage by stage, micro-batch within: the op of
    micro-batch ``mb`` at virtual stage ``s`` is ``s * m + mb`` forward and
    ``(p v + s) * m + mb`` backward, so ``op // m`` indexes its duration. An op's wave is one
    more than the later of its device's previous op and its input's op.

    The simulation stores op ``i`` in row ``position[i]``: ops in wave order, so that a
    wave is a slice of rows, and "none" (op ``2 p v m``) last, a row of zeros. Each wave is
    (slice, rows of its devices' previous ops, rows of its inputs); ``stage[j]`` and
    ``boundary[j]`` are row j's duration index and the boundary its input crosses (``p v -
    1``: no transfer). ``last_ops`` are op numbers.
    """
    n_stages = p * v
    none = 2 * n_stages * m
    ops, previous, sources, boundaries = [], [], [], []
    for r in range(p):
        is_forward, chunk, mb = _order(r, p, v, m)
        s = chunk * p + r
        op = np.where(is_forward, s, n_stages + s) * m + mb
        # the first stage's forward has no input; the last stage's backward follows its
        # own forward on this device
        alone = np.where(is_forward, s == 0, s == n_stages - 1)
        ops.append(op)
        previous.append(np.concatenate([[none], op[:-1]]))
        sources.append(np.where(alone, none, np.where(is_forward, op - m, op + m)))
        boundaries.append(np.where(alone, n_stages - 1, np.where(is_forward, s - 1, s)))
    last_ops = np.array([o[-1] for o in ops])
    wave = _wave_numbers([o.tolist() for o in ops], [s.tolist() for s in sources], none)
    ops, previous, sources, boundaries = (np.concatenate(x) for x in (ops, previous, sources, boundaries))
    op_waves = wave[ops]
    by_wave = np.argsort(op_waves, kind="stable")
    ops, previous, sources, boundaries = (x[by_wave] for x in (ops, previous, sources, boundaries))
    position = np.empty(none + 1, dtype=np.int64)
    position[ops] = np.arange(none)
    position[none] = none
    previous, sources = position[previous], position[sources]
    bounds = np.flatnonzero(np.diff(op_waves[by_wave])) + 1
    bounds = [0, *bounds.tolist(), none]
    waves = tuple((slice(a, b), previous[a:b], sources[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
    return waves, position, ops // m, boundaries, last_ops


def _wave_numbers(ops, sources, none):
    """Each op's wave (``ops``, ``sources``: per device, its ops in order and their inputs):
    devices run in turn until they wait for an input; only the devices next to one that
    ran (in the wrapped stage order) can have been unblocked."""
    p = len(ops)
    wave = [None] * (none + 1)
    wave[none] = -1
    position, last = [0] * p, [-1] * p
    pending, queued = list(range(p)), [True] * p
    while pending:
        r = pending.pop()
        queued[r] = False
        device_ops, device_sources = ops[r], sources[r]
        first, current = position[r], last[r]
        for i in range(first, len(device_ops)):
            before = wave[device_sources[i]]
            if before is None:
                break
            current = (before if before > current else current) + 1
            wave[device_ops[i]] = current
        else:
            i = len(device_ops)
        if i != first:
            position[r], last[r] = i, current
            for q in ((r - 1) % p, (r + 1) % p):
                if not queued[q] and position[q] < len(ops[q]):
                    queued[q] = True
                    pending.append(q)
    if any(position[r] != len(ops[r]) for r in range(p)):  # guards against a bad order
        raise RuntimeError("pipeline schedule deadlocked")
    return np.array(wave)
