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
    """

    makespan: float
    busy: np.ndarray
    bubble_fraction: float


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
# nearly the same time per round of p microbatches, so longer runs are extrapolated from
# two simulated lengths: exact for equal stages, within 1% for uneven stages and transfers
# (a property test checks the bound).
_SIMULATED_ROUNDS = 4


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
    forward, backward = np.asarray(forward, float), np.asarray(backward, float)
    n_stages = len(forward)
    v = virtual_stages
    if n_stages % v or len(backward) != n_stages:
        raise InvalidSpec(f"forward and backward need p*virtual_stages entries, got {len(forward)} and {len(backward)}")
    p, m = n_stages // v, microbatches
    if v > 1 and m % p:
        raise InvalidSpec(f"microbatches={m} must be a multiple of pipeline stages={p} for the interleaved schedule")
    hop = np.broadcast_to(np.asarray(transfer, float), (max(n_stages - 1, 0),))
    # Plans that differ only in what the pipeline does not see (ZeRO stage, optimizer...)
    # give identical stage times: a search simulates each distinct pipeline once.
    return _simulate(tuple(forward.tolist()), tuple(backward.tolist()), p, v, m, tuple(hop.tolist()))


@lru_cache(maxsize=65536)
def _simulate(forward, backward, p, v, m, hop):
    forward, backward, hop = np.array(forward), np.array(backward), np.array(hop)
    rounds = m // p
    if rounds > _SIMULATED_ROUNDS + 1 and m % p == 0:
        short = _run(forward, backward, p, v, _SIMULATED_ROUNDS * p, hop)
        longer = _run(forward, backward, p, v, (_SIMULATED_ROUNDS + 1) * p, hop)
        extra = rounds - _SIMULATED_ROUNDS - 1
        makespan = longer[0] + extra * (longer[0] - short[0])
        busy = longer[1] + extra * (longer[1] - short[1])
    else:
        makespan, busy = _run(forward, backward, p, v, m, hop)
    return Schedule(makespan=makespan, busy=busy, bubble_fraction=float(1 - busy.max() / makespan))


def _run(forward, backward, p, v, m, hop):
    """Makespan and per-device busy time of the full op-by-op simulation.

    Plain Python lists, not numpy scalars: this loop is the hot path of a plan search.
    """
    n_stages = p * v
    forward, backward, hop = forward.tolist(), backward.tolist(), np.asarray(hop, float).tolist() + [0.0]
    f_done = [[None] * m for _ in range(n_stages)]
    b_done = [[None] * m for _ in range(n_stages)]
    orders = [_order(r, p, v, m) for r in range(p)]
    position = [0] * p
    free = [0.0] * p
    busy = [0.0] * p
    remaining = sum(len(o) for o in orders)
    last = n_stages - 1
    while remaining:
        progressed = False
        for r in range(p):
            order, i = orders[r], position[r]
            while i < len(order):
                is_forward, chunk, mb = order[i]
                s = chunk * p + r
                if is_forward:
                    if s == 0:
                        ready = 0.0
                    else:
                        done = f_done[s - 1][mb]
                        if done is None:
                            break
                        ready = done + hop[s - 1]
                    cost = forward[s]
                else:
                    done = f_done[s][mb] if s == last else b_done[s + 1][mb]
                    if done is None:
                        break
                    ready = done if s == last else done + hop[s]
                    cost = backward[s]
                end = (free[r] if free[r] > ready else ready) + cost
                free[r] = end
                busy[r] += cost
                (f_done if is_forward else b_done)[s][mb] = end
                i += 1
                remaining -= 1
                progressed = True
            position[r] = i
        if not progressed:  # cannot happen with Megatron's orders; guards against a bad order
            raise RuntimeError("pipeline schedule deadlocked")
    return max(free), np.array(busy)
