"""Pipeline schedule simulation against the textbook bubbles and hand-built cases."""

import pytest
from hypothesis import given, settings, strategies as st

from collectives.errors import InvalidSpec
from collectives.training.pipeline import simulate


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 8), groups=st.integers(1, 12), v=st.integers(1, 3), f=st.floats(0.1, 2.0))
def test_equal_stages_reproduce_the_textbook_bubble(p, groups, v, f):
    # Narayanan et al. SC'21: bubble = (p - 1) / (m v) of the ideal time, free transfers.
    m = p * groups
    if v > 1 and p == 1:
        v = 1
    r = simulate([f / v] * (p * v), [2 * f / v] * (p * v), m, virtual_stages=v)
    ideal = 3 * f * m
    assert (r.makespan - ideal) / ideal == pytest.approx((p - 1) / (m * v), abs=1e-9)


def test_the_slowest_stage_sets_the_pace():
    # 126 layers on 16 stages: 14 stages of 8 layers and 2 of 7 (Llama-3-405B style).
    layers = [8] * 14 + [7] * 2
    even = simulate([8.0] * 16, [16.0] * 16, 64)
    uneven = simulate([float(x) for x in layers], [2.0 * x for x in layers], 64)
    assert uneven.makespan == pytest.approx(even.makespan, rel=0.02)
    assert uneven.makespan >= (64 + 15) * 24 * 7 / 8


def test_transfers_lengthen_the_pipeline():
    free = simulate([1.0] * 4, [2.0] * 4, 8)
    slow = simulate([1.0] * 4, [2.0] * 4, 8, transfer=0.5)
    # At least the first microbatch's round trip (3 boundaries each way); at most one
    # round trip per microbatch, since 1F1B keeps only p microbatches in flight.
    assert free.makespan + 2 * 3 * 0.5 <= slow.makespan <= free.makespan + 2 * 0.5 * (8 + 3)


def test_bad_shapes_are_rejected():
    with pytest.raises(InvalidSpec, match="multiple of pipeline stages=4"):
        simulate([1.0] * 8, [2.0] * 8, 6, virtual_stages=2)
    with pytest.raises(InvalidSpec, match="p\\*virtual_stages entries"):
        simulate([1.0] * 3, [2.0] * 4, 4)


@settings(max_examples=25, deadline=None)
@given(p=st.integers(2, 8), extra=st.integers(0, 30), v=st.integers(1, 3), spread=st.sampled_from([0.0, 0.1, 0.5]),
       seed=st.integers(0, 1000), transfer=st.floats(0.0, 0.6), offset=st.integers(0, 7))
def test_long_runs_extended_by_periods_equal_the_full_simulation(p, extra, v, spread, seed, transfer, offset):
    """Stages up to +-50% apart, the first and last heavier (embedding, output layer and
    loss): extending a probe run by whole periods is exact, not an approximation. 1F1B
    runs of any length (interleaving needs a multiple of p)."""
    import numpy as np

    from collectives.training import pipeline

    rng = np.random.default_rng(seed)
    f = rng.uniform(1 - spread, 1 + spread, (2, p * v))
    f[:, 0] += rng.uniform(0, 0.3, 2)
    f[:, -1] += rng.uniform(0, 0.5, 2)
    b = 2 * f * rng.uniform(1 - spread, 1 + spread, (2, p * v))
    m = 2 * pipeline._probe(p, v) + p * extra + (offset if v == 1 else 0)
    hop = rng.uniform(0, transfer, (2, p * v - 1))
    extended = pipeline._extended(f, b, p, v, np.array([m, m]), hop)
    full = pipeline._run(f, b, p, v, m, hop)
    assert extended[0] == pytest.approx(full[0], rel=1e-9)
    assert extended[1] == pytest.approx(full[1], rel=1e-9, abs=1e-9)


def test_short_runs_are_simulated_in_full():
    import numpy as np

    from collectives.training import pipeline

    rng = np.random.default_rng(128)
    f = rng.uniform(0.5, 1.5, 4)
    b = 2 * f * rng.uniform(0.8, 1.2, 4)
    (full,), _ = pipeline._run(f[None], b[None], 2, 2, 16, np.zeros((1, 3)))
    assert simulate(f, b, 16, virtual_stages=2).makespan == pytest.approx(full, rel=1e-12)


@pytest.mark.parametrize("p, v, rounds", [(2, 1, 1), (4, 1, 3), (8, 1, 8), (4, 2, 2), (8, 2, 8)])
@pytest.mark.parametrize("transfer", [0.05, 0.3])
def test_exposed_transfer_is_what_transfers_add_with_equal_stages(p, v, rounds, transfer):
    f, b, m = [1.0] * (p * v), [2.0] * (p * v), p * rounds
    with_transfers = simulate(f, b, m, virtual_stages=v, transfer=transfer)
    without = simulate(f, b, m, virtual_stages=v)
    assert without.exposed_transfer == 0.0
    assert with_transfers.exposed_transfer == pytest.approx(with_transfers.makespan - without.makespan, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(p=st.integers(2, 6), v=st.integers(1, 2), rounds=st.integers(1, 8), seed=st.integers(0, 1000),
       transfer=st.floats(0.0, 0.5))
def test_exposed_transfer_never_exceeds_the_transfers_or_the_idle_time(p, v, rounds, seed, transfer):
    import numpy as np

    rng = np.random.default_rng(seed)
    f = rng.uniform(0.5, 1.5, p * v)
    r = simulate(f, 2 * f, p * rounds, virtual_stages=v, transfer=transfer)
    assert 0.0 <= r.exposed_transfer <= r.makespan - r.busy.min() + 1e-9


def test_batched_schedules_equal_one_at_a_time():
    import numpy as np

    from collectives.training import pipeline

    rng = np.random.default_rng(7)
    jobs = []
    for m in (8, 16, 64, 640, 1280):            # full runs and extrapolated ones, one shape
        f = rng.uniform(0.9, 1.1, 8)
        jobs.append((f, 2 * f, m, 2, rng.uniform(0, 0.2)))
    pipeline._CACHE.clear()
    together = pipeline.simulate_many(jobs)
    pipeline._CACHE.clear()
    alone = [simulate(f, b, m, virtual_stages=v, transfer=t) for f, b, m, v, t in jobs]
    for a, b in zip(together, alone):
        assert a.makespan == pytest.approx(b.makespan, rel=1e-12)
        assert a.exposed_transfer == pytest.approx(b.exposed_transfer, rel=1e-12, abs=1e-12)
        assert np.allclose(a.busy, b.busy, rtol=1e-12)


def _reference(f, b, p, v, m, hop):
    """One job, plain floats: sweep the devices in turn, each running its ops in Megatron's
    order while their inputs are there (the straightforward simulation the waves replace)."""
    from collectives.training.pipeline import _order

    n, orders = p * v, [list(zip(*_order(r, p, v, m))) for r in range(p)]
    done, on_path = {}, {}
    free, path, position = [0.0] * p, [0.0] * p, [0] * p
    while position != [len(o) for o in orders]:
        for r in range(p):
            while position[r] < len(orders[r]):
                is_forward, chunk, mb = orders[r][position[r]]
                s = chunk * p + r
                source = ("F", s - 1, mb) if is_forward and s else ("B", s + 1, mb) if not is_forward and s < n - 1 else None
                if source is not None and source not in done:
                    break
                start = free[r]
                if source is not None:
                    arrival = done[source] + hop[min(s, source[1])]
                    if arrival > start:
                        start, path[r] = arrival, on_path[source] + hop[min(s, source[1])]
                op = ("F" if is_forward else "B", s, mb)
                free[r] = done[op] = start + (f[s] if is_forward else b[s])
                on_path[op] = path[r]
                position[r] += 1
    last = max(range(p), key=lambda r: (free[r], -r))
    return free[last], path[last]


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 6), v=st.integers(1, 3), rounds=st.integers(1, 4), seed=st.integers(0, 1000),
       transfer=st.floats(0.0, 1.0))
def test_waves_equal_the_straightforward_simulation(p, v, rounds, seed, transfer):
    import numpy as np

    from collectives.training import pipeline

    v = 1 if p == 1 else v
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.2, 2.0, (3, p * v))
    b = f * rng.uniform(1.0, 3.0, (3, p * v))
    hop = rng.uniform(0.0, transfer, (3, p * v - 1))
    m = p * rounds
    makespans, paths = pipeline._run(f, b, p, v, m, hop)
    for row in range(3):
        makespan, path = _reference(f[row], b[row], p, v, m, hop[row])
        assert makespans[row] == pytest.approx(makespan, rel=1e-12)
        assert paths[row] == pytest.approx(path, rel=1e-12, abs=1e-12)


def _megatron_order(rank, p, v, m):
    """Megatron-LM's op order on one device, written as its schedule loop issues it."""
    total = m * v

    def forward(k):
        group, within = divmod(k, p * v)
        return within // p, group * p + within % p

    def backward(k):
        chunk, mb = forward(k)
        return v - 1 - chunk, mb

    warmup = min(p - rank - 1, m) if v == 1 else min((p - rank - 1) * 2 + (v - 1) * p, total)
    ops = [(True,) + forward(k) for k in range(warmup)]
    for f, b in zip(range(warmup, total), range(total)):
        ops += [(True,) + forward(f), (False,) + backward(b)]
    return ops + [(False,) + backward(k) for k in range(total - warmup, total)]


@pytest.mark.parametrize("p, v, rounds", [(1, 1, 3), (2, 1, 1), (4, 1, 3), (3, 2, 2), (8, 2, 4), (4, 4, 3)])
def test_order_is_megatrons_loop(p, v, rounds):
    from collectives.training.pipeline import _order

    for rank in range(p):
        got = [(bool(f), int(c), int(mb)) for f, c, mb in zip(*_order(rank, p, v, p * rounds))]
        assert got == _megatron_order(rank, p, v, p * rounds)


def test_simulating_more_jobs_than_the_cache_holds_returns_every_schedule(monkeypatch):
    # the cache is cleared when full; a call must not read its own results back from it
    from collectives.training import pipeline

    monkeypatch.setattr(pipeline, "_CACHE_SIZE", 2)
    pipeline._CACHE.clear()
    jobs = [([1.0] * 4, [2.0 + k] * 4, 8, 1, 0.0) for k in range(5)]
    schedules = pipeline.simulate_many(jobs)
    # 1F1B on p=4 equal stages with m=8: (m + p - 1) (f + b)
    assert [s.makespan for s in schedules] == [11 * (1.0 + 2.0 + k) for k in range(5)]
