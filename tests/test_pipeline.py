"""Pipeline schedule simulation against the textbook bubbles and hand-built cases."""

import pytest
from hypothesis import given, settings, strategies as st

from collectives.errors import InvalidSpec
from collectives.pipeline import simulate


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
@given(p=st.integers(2, 8), rounds=st.integers(6, 12), v=st.integers(1, 2),
       seed=st.integers(0, 1000), transfer=st.floats(0.0, 0.5))
def test_long_runs_extrapolate_within_one_percent(p, rounds, v, seed, transfer):
    """Stages within +-10% of each other (layers split as evenly as the model allows), the
    first and last heavier (embedding, output layer and loss)."""
    import numpy as np

    from collectives import pipeline

    rng = np.random.default_rng(seed)
    f = rng.uniform(0.9, 1.1, p * v)
    f[0] += rng.uniform(0, 0.3)
    f[-1] += rng.uniform(0, 0.5)
    b = 2 * f * rng.uniform(0.9, 1.1, p * v)
    m = p * rounds
    hop = np.full((1, p * v - 1), transfer)
    saved, pipeline._FULL_SIMULATION_OPS = pipeline._FULL_SIMULATION_OPS, 0  # force the extrapolation
    try:
        (extrapolated,) = pipeline._simulate(f[None], b[None], p, v, np.array([m]), hop)
    finally:
        pipeline._FULL_SIMULATION_OPS = saved
    (full,), _ = pipeline._run(f[None], b[None], p, v, m, hop)
    assert extrapolated.makespan == pytest.approx(full, rel=0.01)
    assert extrapolated.busy == pytest.approx(m * (f + b).reshape(v, p).sum(axis=0), rel=1e-12)


def test_short_runs_are_simulated_in_full():
    import numpy as np

    from collectives import pipeline

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

    from collectives import pipeline

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
