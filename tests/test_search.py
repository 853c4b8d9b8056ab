"""collectives.search: plans that fit, ranked, identical on any executor (dask included)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

import collectives
import fabric
from collectives.errors import Infeasible
from collectives.training.pipeline import simulation_shape
from collectives.training.search import _chunks, candidate_plans
from collectives.training.memory import usable_memory

MODEL = collectives.MODELS["llama3-8b"]


@pytest.fixture(scope="module")
def superpod():
    return fabric.dgx_superpod(4, gpu="H100")


@pytest.fixture(scope="module")
def ranked(superpod):
    with ThreadPoolExecutor(1) as pool:
        return collectives.search(MODEL, superpod, global_batch=64, executor=pool, progress=False)


def test_results_fit_and_are_sorted(ranked, superpod):
    limit = usable_memory(superpod.graph["gpu"])
    assert len(ranked) > 100
    assert all(e.fits and e.memory_per_gpu <= limit for e in ranked)
    assert [e.time for e in ranked] == sorted(e.time for e in ranked)


def test_each_result_is_what_estimate_step_gives_for_its_plan(ranked, superpod):
    for e in ranked[:3] + ranked[-2:]:
        plan = collectives.Parallelism(**e.plan, global_batch=64)
        alone = collectives.estimate_step(MODEL, plan, superpod, level="analytic")
        assert alone.time == pytest.approx(e.time, rel=1e-12)


def test_candidates_cover_every_world_size_factoring():
    plans = list(candidate_plans(MODEL, 32, 64, gpus_per_domain=8))
    shapes = {(p.tp, p.pp, p.cp, p.dp) for p in plans}
    assert all(p.tp * p.pp * p.cp * p.dp == 32 and p.tp <= 8 for p in plans)
    assert {(8, 1, 1, 4), (1, 1, 1, 32), (4, 2, 1, 4), (2, 4, 2, 2)} <= shapes


def test_chunks_hold_every_plan_once_and_never_split_a_simulation_shape():
    plans = list(candidate_plans(collectives.MODELS["llama3-70b"], 1024, 512, gpus_per_domain=8))
    chunks = list(_chunks(iter(plans), 16))
    assert sorted(map(repr, plans)) == sorted(repr(p) for c in chunks for p in c)
    owner = {}
    for i, chunk in enumerate(chunks):
        for p in chunk:
            assert owner.setdefault(simulation_shape(p.pp, p.virtual_stages, p.micro_batches), i) == i
    assert len(chunks) > 10 and any(len(c) > 16 for c in chunks)


def test_top_keeps_the_fastest(superpod, ranked):
    with ThreadPoolExecutor(1) as pool:
        top = collectives.search(MODEL, superpod, global_batch=64, executor=pool, progress=False, top=3)
    assert [e.time for e in top] == [e.time for e in ranked[:3]]


def test_nothing_fits_names_model_gpu_and_batch():
    G = fabric.dgx_superpod(1, gpu="H100")
    with pytest.raises(Infeasible, match=r"llama3-405b.*H100.*8 GPUs.*global_batch=8"):
        collectives.search(collectives.MODELS["llama3-405b"], G, global_batch=8, progress=False)


def test_dask_distributed_executor_gives_the_same_ranking(superpod, ranked):
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        via_dask = collectives.search(MODEL, superpod, global_batch=64, executor=client.get_executor(),
                                      progress=False, top=10)
    assert [(e.plan, e.time) for e in via_dask] == [(e.plan, e.time) for e in ranked[:10]]


def test_moe_candidates_fold_experts_as_megatron_core():
    moe = collectives.Transformer(layers=4, hidden=256, heads=8, seq_len=64, vocab=1000, experts=16, top_k=2,
                                  mlp="swiglu", dropout=False)
    plans = list(candidate_plans(moe, 16, 16, gpus_per_domain=8))
    layouts = {(p.tp, p.dp, p.ep, p.etp) for p in plans}
    assert (2, 8, 16, 1) in layouts          # ep exceeds dp with expert TP 1
    assert (2, 8, 8, 2) in layouts           # Megatron-Core's default etp = tp
    assert all(16 % p.ep == 0 and (p.tp * p.cp * p.dp) % (p.ep * p.etp) == 0 for p in plans)
