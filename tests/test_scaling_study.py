"""The scaling study: batch growth with its cap, and what each size yields and costs."""

from concurrent.futures import ThreadPoolExecutor

import pytest

import collectives
import fabric

MODEL = collectives.MODELS["llama3-8b"]


def superpod(n):
    return fabric.dgx_superpod(n // 8)


def run(sizes, **kwargs):
    with ThreadPoolExecutor(1) as pool:
        return collectives.scaling_study(MODEL, sizes, build=superpod, pue=1.2, executor=pool, progress=False,
                                         **kwargs)


def test_the_batch_grows_with_the_cluster_until_the_cap_and_the_costs_follow():
    cap = 64 * MODEL.seq_len  # tokens: 64 sequences
    study = run([16, 32, 64, 128], global_batch=16, max_tokens_per_step=cap)
    assert [p.global_batch for p in study.points] == [16, 32, 64, 64]
    assert all(p.tokens_per_step == p.global_batch * MODEL.seq_len for p in study.points)
    watts = [p.facility_watts for p in study.points]
    assert watts == sorted(watts)
    dgx = fabric.systems.SYSTEMS["dgx-h100"].total
    assert all(p.facility_watts > 1.2 * dgx * p.gpus / 8 for p in study.points)  # the servers, then the rest
    goodputs = [p.goodput for p in study.points]
    assert goodputs == sorted(goodputs, reverse=True)
    # past the cap the same batch is split finer: more GPUs, not more tokens per step
    assert study.points[3].step_time < study.points[2].step_time
    assert all(p.switches > 0 and p.network_watts > 0 and p.plan for p in study.points)
    assert "Scaling study" in str(study) and "<table>" in study._repr_html_()
    assert study.to_dict()["points"][0]["gpus"] == 16
    fig = study.figure()
    assert list(fig.data[0].x) == [16, 32, 64, 128]


@pytest.mark.parametrize("options, message", [
    (dict(gpus=[32, 16]), r"gpus=\[32, 16\] must be increasing"),
    (dict(gpus=[]), "must be one or more GPU counts"),
    (dict(build=5), "build=5 must be a callable"),
    (dict(build=lambda n: fabric.dgx_superpod(1)), "build\\(16\\) gave a fabric of 8 GPUs, not 16"),
    (dict(max_tokens_per_step=10), "max_tokens_per_step=10 must be an integer >= one sequence"),
])
def test_bad_input_names_the_field(options, message):
    kwargs = dict(gpus=[16], build=superpod, global_batch=16, pue=1.2, progress=False)
    kwargs.update(options)
    gpus = kwargs.pop("gpus")
    with pytest.raises(collectives.InvalidSpec, match=message):
        collectives.scaling_study(MODEL, gpus, **kwargs)
