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


@lru_cache(maxsize=4096)
def _order(rank, p, v, m):
    """Megatron's op order on device ``rank``: (is_forward, chunk, microbatch) tuples."""
    total = m * v

    def forward(k):
        group, within = divmod(k, p * v)
        return within // p, group * p + within % p

    def backward(k):
        chunk, mb = forward(k)
        return v - 1 - chunk, mb

    if v == 1:
        warmup = min(p - rank - 1, m)
    else:
        warmup = min((p - rank - 1) * 2 + (v - 1) * p, total)
    ops = [(True,) + forward(k) for k in range(warmup)]
    f, b = warmup, 0
    while f < total:
        ops.append((True,) + forward(f))
        ops.append((False,) + backward(b))
        f, b = f + 1, b + 1
    ops += [(False,) + backward(k) for k in range(b, total)]
    return tuple(ops)


# Past a few rounds of p microbatches the schedule settles into a steady state that adds
# nearly the same time per round of p microbatches, so long runs are extrapolated from two
# simulated lengths (4 and 5 rounds): exact for equal stages, within 1% for stages within
# +-10% of each other and transfers up to half a stage (a property test checks it); with
# stages +-50% apart it has been seen 2.3% off. Runs of up to _FULL_SIMULATION_OPS ops are
# simulated in full, exactly.
_SIMULATED_ROUNDS = 4
_FULL_SIMULATION_OPS = 20_000


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
    simulated together, as one walk through Megatron's op order over arrays of times.

    Examples
    --------
    >>> a, b = simulate_many([([1.0] * 4, [2.0] * 4, 8, 1, 0.0), ([1.0] * 4, [3.0] * 4, 8, 1, 0.0)])
    >>> a.makespan, b.makespan
    (33.0, 44.0)
    """
    keys = [_key(*job) for job in jobs]
    missing = {}
    for key in keys:
        if key not in _CACHE:
            p, v, m = key[2:5]
            # Long runs all simulate the same 4 and 5 rounds, whatever their length.
            shape = (p, v, None) if _extrapolated(p, v, m) else (p, v, m)
            missing.setdefault(shape, {})[key] = None  # a dict keeps the order
    for (p, v, _), group in missing.items():
        group = list(group)
        forward = np.array([k[0] for k in group])
        backward = np.array([k[1] for k in group])
        m = np.array([k[4] for k in group])
        hop = np.array([k[5] for k in group]).reshape(len(group), -1)
        for key, schedule in zip(group, _simulate(forward, backward, p, v, m, hop)):
            _remember(key, schedule)
    return [_CACHE[key] for key in keys]


def _extrapolated(p, v, m):
    """Whether a run is extrapolated from 4 and 5 simulated rounds rather than run in full."""
    return m // p > _SIMULATED_ROUNDS + 1 and m % p == 0 and 2 * p * v * m > _FULL_SIMULATION_OPS


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
    sharing p and v, either all extrapolated or all of one length."""
    if _extrapolated(p, v, int(m[0])):
        short = _run(forward, backward, p, v, _SIMULATED_ROUNDS * p, hop)
        longer = _run(forward, backward, p, v, (_SIMULATED_ROUNDS + 1) * p, hop)
        extra = m // p - _SIMULATED_ROUNDS - 1
        makespan, exposed = (b + extra * (b - a) for a, b in zip(short, longer))
    else:
        makespan, exposed = _run(forward, backward, p, v, int(m[0]), hop)
    # every device runs each of its chunks' forward and backward once per microbatch
    busy = m[:, None] * (forward + backward).reshape(len(forward), v, p).sum(axis=1)
    return [
        Schedule(makespan=float(t), busy=b, bubble_fraction=float(1 - b.max() / t), exposed_transfer=float(max(0.0, x)))
        for t, b, x in zip(makespan, busy, exposed)
    ]


def _run(forward, backward, p, v, m, hop):
    """Makespan and critical-path transfer seconds of the op-by-op simulation of every row.

    Megatron's op order does not depend on the times, so all rows walk it together: each
    op is a few array operations over the rows (per stage, the times of every job).
    """
    n_stages = p * v
    k = len(forward)
    forward, backward = list(np.ascontiguousarray(forward.T)), list(np.ascontiguousarray(backward.T))
    hop = list(np.ascontiguousarray(hop.T)) + [np.zeros(k)]
    f_done = [[None] * m for _ in range(n_stages)]
    b_done = [[None] * m for _ in range(n_stages)]
    # transfer seconds on the critical path up to each op's end, and each device's last op
    f_path = [[None] * m for _ in range(n_stages)]
    b_path = [[None] * m for _ in range(n_stages)]
    zero = np.zeros(k)
    path = [zero] * p
    orders = [_order(r, p, v, m) for r in range(p)]
    lengths = [len(o) for o in orders]
    position = [0] * p
    free = [zero] * p
    last = n_stages - 1
    # A device runs until it waits for an input; its ops can only unblock the devices
    # next to it in the (wrapped, for interleaving) stage order, so only they are revisited.
    pending, queued = list(range(p)), [True] * p
    while pending:
        r = pending.pop()
        queued[r] = False
        order, i, n = orders[r], position[r], lengths[r]
        t, on_path = free[r], path[r]
        first = i
        while i < n:
            is_forward, chunk, mb = order[i]
            s = chunk * p + r
            if is_forward:
                if s == 0:
                    ready = None
                else:
                    done = f_done[s - 1][mb]
                    if done is None:
                        break
                    ready, waited = done + hop[s - 1], f_path[s - 1][mb] + hop[s - 1]
                cost = forward[s]
            elif s == last:
                ready = None  # its own forward ran on this device just before
                if f_done[s][mb] is None:
                    break
                cost = backward[s]
            else:
                done = b_done[s + 1][mb]
                if done is None:
                    break
                ready, waited = done + hop[s], b_path[s + 1][mb] + hop[s]
                cost = backward[s]
            if ready is not None:
                late = ready > t  # waited for the input: its transfers are on the path
                on_path = np.where(late, waited, on_path)
                t = np.maximum(t, ready)
            t = t + cost
            if is_forward:
                f_done[s][mb], f_path[s][mb] = t, on_path
            else:
                b_done[s][mb], b_path[s][mb] = t, on_path
            i += 1
        if i != first:
            free[r], path[r], position[r] = t, on_path, i
            for q in ((r - 1) % p, (r + 1) % p):
                if not queued[q] and position[q] < lengths[q]:
                    queued[q] = True
                    pending.append(q)
    if position != lengths:  # cannot happen with Megatron's orders; guards against a bad order
        raise RuntimeError("pipeline schedule deadlocked")
    ends = np.array(free)  # devices x rows
    last_device = np.argmax(ends, axis=0)
    rows = np.arange(k)
    return ends[last_device, rows], np.array(path)[last_device, rows]
