"""Hypothesis strategies for fuzzing the public API, shared by tests/test_fuzz.py and
tests/benchmarks/fuzz_api.py (which runs many more examples).

Each strategy draws a *call*: a ``(label, thunk)`` pair. Running the thunk must either return
a result whose times, bandwidths and rates are finite and non-negative, or raise one of the
library's typed errors (``fabric.FabricError``, ``collectives.CollectivesError``).
"""

import math
import warnings

import numpy as np
from hypothesis import strategies as st

import collectives
import fabric
from collectives.errors import CollectivesError
from fabric.errors import FabricError

TYPED = (FabricError, CollectivesError)
# Values of the wrong type or out of range, mixed into otherwise valid arguments.
JUNK = (None, "x", "False", -1, 0, 1.5, float("nan"), float("inf"), -float("inf"), [], [1], {}, True, 10**30)

SMALL = {"superpod": fabric.dgx_superpod(2), "nvl72": fabric.nvl72(1),
         "dual-plane": fabric.fat_tree(2, switch="qm9700", routing="adaptive", planes=2, dual_tor=True)}
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast")
ALGORITHMS = ("auto", "ring", "tree", "nvls", "direct", "sharp", "halving_doubling", "hierarchical")


def maybe(*good):
    """One of ``good`` most of the time, else junk."""
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good), st.sampled_from(JUNK))


def _builder(draw):
    name = draw(st.sampled_from(("dgx_superpod", "fat_tree", "nvl72", "rail_only", "spectrum_x")))
    if name == "dgx_superpod":
        kw = dict(gpu=draw(maybe("H100", "A100", "B200")), routing=draw(maybe("adaptive", "ecmp")),
                  tiers=draw(maybe(None, 2, 3)))
        return name, lambda: fabric.dgx_superpod(draw(maybe(1, 2, 4)), **kw)
    if name == "fat_tree":
        kw = dict(nic_bandwidth=draw(maybe(50e9, 25e9, 12.5e9)),
                  switch=draw(maybe("tomahawk4", "sn5600", "qm9700", ("tomahawk4", "arista-7808r3"),
                                    ("tomahawk5", "tomahawk5", "tomahawk6"), ("qm9700", "sn5600"))),
                  servers_per_leaf=draw(maybe(None, None, 1, 2, 3)), pod_nodes=draw(maybe(None, None, 4, 6)),
                  routing=draw(maybe("ecmp", "adaptive")), qps=draw(maybe(1, 4)),
                  rail_optimized=draw(maybe(True, False)), oversubscription=draw(maybe(1.0, 2.0, 3.0)),
                  tiers=draw(maybe(None, 2, 3)), gpus_per_node=draw(maybe(8, 4, 2)),
                  planes=draw(maybe(1, 1, 2, 4)), dual_tor=draw(maybe(False, False, True)))
        nodes = draw(maybe(1, 2, 4, 8))
        return name, lambda: fabric.fat_tree(nodes, **kw)
    if name == "nvl72":
        kw = dict(rail_optimized=draw(maybe(True, False)), oversubscription=draw(maybe(1.0, 2.0)))
        racks = draw(maybe(1, 2))
        return name, lambda: fabric.nvl72(racks, **kw)
    nodes = draw(maybe(1, 2, 4))
    builder = getattr(fabric, name)
    return name, lambda: builder(nodes)


@st.composite
def builder_calls(draw):
    """A fabric builder with valid and invalid arguments."""
    return _builder(draw)


@st.composite
def collective_calls(draw):
    """A collective, a send, a flow-rate or completion-time question on a small fabric."""
    G = SMALL[draw(st.sampled_from(sorted(SMALL)))]
    kind = draw(st.sampled_from(COLLECTIVES + ("send_recv", "flow_rates", "completion_times")))
    if kind in COLLECTIVES:
        fn = getattr(collectives, kind)
        args = dict(ranks=draw(maybe(None, [0, 1], [0, 8], list(range(16)), [0, 0], [0, 99], [3])),
                    algorithm=draw(maybe(*ALGORITHMS)), level=draw(maybe("analytic", "flow")))
        nbytes = draw(maybe(0, 1, 7, 2**20, 2**30))
        return kind, lambda: fn(G, nbytes, **args)
    if kind == "send_recv":
        args = dict(ranks=draw(maybe([0, 8], [0, 1], [0], [0, 0], [0, 1, 2])), level=draw(maybe("analytic", "flow")))
        nbytes = draw(maybe(0, 2**20))
        return kind, lambda: collectives.send_recv(G, nbytes, **args)
    src, dst = draw(maybe([0, 1], [0], [], [0, 99])), draw(maybe([8, 9], [8], [], [1, 1]))
    if kind == "flow_rates":
        routing, seed = draw(maybe(None, "ecmp", "adaptive")), draw(maybe(0, 3))
        return kind, lambda: fabric.flow_rates(G, src, dst, routing=routing, seed=seed)
    sizes = draw(maybe([1e6, 2e6], [0, 0], [1e6]))
    return kind, lambda: fabric.completion_times(G, src, dst, sizes)


def _edited(draw):
    """A 16-GPU SuperPOD with one random edit: a node or edge removed, or an edge attribute
    set to junk, a zero, a tiny or an infinite value."""
    G = fabric.dgx_superpod(2)
    edit = draw(st.sampled_from(("node", "edge", "attr")))
    if edit == "node":
        G.remove_node(draw(st.sampled_from(sorted(G.nodes))))
    elif edit == "edge":
        G.remove_edge(*draw(st.sampled_from(sorted(G.edges))))
    else:
        u, v = draw(st.sampled_from(sorted(G.edges)))
        field = draw(st.sampled_from(("bandwidth", "latency", "links", "medium")))
        G.edges[u, v][field] = draw(st.sampled_from(JUNK + (0.0, 1e-300, 2)))
    return G


@st.composite
def edited_fabric_calls(draw):
    """A collective or a training step on a fabric edited at random."""
    G = _edited(draw)
    if draw(st.booleans()):
        ranks, level = draw(maybe([0, 8], [0, 1, 8, 9], None)), draw(st.sampled_from(("analytic", "flow")))
        return "edited all_reduce", lambda: collectives.all_reduce(G, 2**20, ranks=ranks, level=level)
    level = draw(st.sampled_from(("analytic", "flow")))
    plan = collectives.Parallelism(tp=8, dp=2, global_batch=16)
    return "edited estimate_step", lambda: collectives.estimate_step(collectives.MODELS["llama3-8b"], plan, G,
                                                                      level=level)


@st.composite
def step_calls(draw):
    """A training-step estimate with plan fields valid or not."""
    model = collectives.MODELS[draw(st.sampled_from(("llama3-8b", "mixtral-8x7b")))]
    fields = dict(tp=draw(maybe(1, 2, 4, 8)), pp=draw(maybe(1, 2)), dp=draw(maybe(1, 2, 4)), ep=draw(maybe(1, 2)),
                  micro_batch=draw(maybe(1, 2)), global_batch=draw(maybe(8, 16, 32)),
                  recompute=draw(maybe("none", "selective", "full", "op")), zero=draw(maybe(0, 1, 2, 3)))
    level, seed = draw(maybe("analytic", "flow")), draw(maybe(0, 3))
    G = SMALL[draw(st.sampled_from(sorted(SMALL)))]

    def call():
        return collectives.estimate_step(model, collectives.Parallelism(**fields), G, level=level, seed=seed)

    return "estimate_step", call


@st.composite
def spread_calls(draw):
    """A spread over ECMP seeds of a collective or a step, with arguments valid or not."""
    G = fabric.fat_tree(2, routing="ecmp", rail_optimized=False)
    seeds = draw(maybe(1, 2))
    if draw(st.booleans()):
        collective, nbytes = draw(maybe("all_reduce", "all_to_all")), draw(maybe(0, 2**20))
        return "collective_spread", lambda: collectives.collective_spread(collective, G, nbytes, seeds=seeds)
    plan = collectives.Parallelism(tp=8, dp=2, global_batch=16)
    level = draw(maybe("analytic", "flow"))
    return "step_spread", lambda: collectives.step_spread(collectives.MODELS["llama3-8b"], plan, G, seeds=seeds,
                                                           level=level)


@st.composite
def cluster_calls(draw):
    """A preset, a placement, jobs side by side, a facility's power, sites joined or a job's
    goodput, with arguments valid or not."""
    kind = draw(st.sampled_from(("preset", "place", "jobs", "power", "sites", "goodput")))
    if kind == "power":
        G = SMALL[draw(st.sampled_from(sorted(SMALL)))]
        pue, share = draw(maybe(1.2, 1.0, 3.0)), draw(maybe(0.05, 0.0))
        return "facility_power", lambda: fabric.facility_power(G, pue=pue, storage_and_frontend=share)
    if kind == "sites":
        km = draw(maybe(10, 1000, [[0, 5], [5, 0]]))
        bandwidth, level = draw(maybe(1e9, 50e9)), draw(maybe("flow", "analytic"))
        return "join_sites", lambda: collectives.all_reduce(
            fabric.join_sites([fabric.dgx_superpod(1), fabric.dgx_superpod(1)], distance_km=km, bandwidth=bandwidth),
            2**20, level=level)
    if kind == "goodput":
        options = dict(spares=draw(maybe(None, 0, 2)), storage_bandwidth=draw(maybe(2e12, 1e9)),
                       checkpoint_interval=draw(maybe(None, 60.0)), restart_seconds=draw(maybe(600.0, 0.0)))
        return "goodput", lambda: collectives.goodput(
            collectives.MODELS["llama3-8b"], collectives.Parallelism(tp=8, dp=2, global_batch=16),
            fabric.dgx_superpod(2), **options)
    if kind == "preset":
        name, gpus = draw(maybe("meta-llama3", "dgx-h100-superpod", "gb300-nvl72-x800")), draw(maybe(None, 32, 144))
        overrides = draw(st.sampled_from(({}, {"qps": draw(maybe(1, 4))}, {"switch": draw(maybe("qm9700", ("x",)))},
                                          {"oversubscription": draw(maybe(1.0, 3.0))})))
        return "preset", lambda: fabric.preset(name, gpus=gpus, **overrides)
    G = fabric.fat_tree(4, rail_optimized=False, oversubscription=2.0)
    gpus, policy, seed = draw(maybe(8, 16)), draw(maybe("packed", "spread", "random")), draw(maybe(0, 7))
    if kind == "place":
        taken = draw(maybe((), (0, 1), range(8)))
        return "place", lambda: fabric.place(G, gpus, policy=policy, seed=seed, taken=taken)
    dp, global_batch, level = draw(maybe(2, 1)), draw(maybe(8, 16)), draw(maybe("analytic", "flow"))

    def call():
        plan = collectives.Parallelism(tp=8, dp=dp, global_batch=global_batch)
        a = fabric.place(G, 16, policy=policy, seed=seed)
        b = fabric.place(G, gpus, policy=policy, seed=seed, taken=a)
        jobs = collectives.estimate_jobs(G, [(collectives.MODELS["llama3-8b"], plan, a),
                                             (collectives.MODELS["llama3-8b"], plan, b)], level=level)
        return jobs + [job.alone for job in jobs]

    return "estimate_jobs", call


def run(call):
    """Run one drawn call: a typed error is fine; anything else that escapes, or a result with a
    NaN, infinite or negative time, bandwidth or rate, is a defect (AssertionError)."""
    label, thunk = call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = thunk()
        except TYPED:
            return
    results = result if isinstance(result, list) else [result]
    for r in results:
        for attr in ("time", "busbw", "algbw", "mfu", "memory_per_gpu", "mean", "min", "max"):
            value = getattr(r, attr, None)
            if callable(value):  # ndarray.min and .max are methods; the array is checked below
                continue
            assert value is None or (math.isfinite(value) and value >= 0), f"{label}: {attr}={value!r}"
        if isinstance(r, np.ndarray) and r.size:
            assert np.isfinite(r).all() and (r >= 0).all(), f"{label}: {r!r}"
