"""A fuzz of the public API (the hardening issue): builders, collectives, flows, training steps
and randomly edited fabrics, with valid and invalid arguments. No call may escape as an
untyped exception, and no result may be NaN, infinite or negative. A few thousand examples
here; tests/benchmarks/fuzz_api.py runs many more."""

from hypothesis import HealthCheck, given, settings

from fuzz_cases import (builder_calls, cluster_calls, collective_calls, edited_fabric_calls, run, spread_calls,
                        step_calls)



def fuzz(examples):
    """Settings of a fuzz test: reproducible (derandomized), no deadline (flow-level calls vary)."""
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@fuzz(300)
@given(call=builder_calls())
def test_builders(call):
    run(call)


@fuzz(1200)
@given(call=collective_calls())
def test_collectives_and_flows(call):
    run(call)


@fuzz(300)
@given(call=edited_fabric_calls())
def test_edited_fabrics(call):
    run(call)


@fuzz(300)
@given(call=step_calls())
def test_training_steps(call):
    run(call)


@fuzz(100)
@given(call=spread_calls())
def test_spreads(call):
    run(call)


@fuzz(150)
@given(call=cluster_calls())
def test_presets_placements_and_shared_jobs(call):
    run(call)
