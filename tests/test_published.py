"""Published measurements as package data, the runs rebuilt from them, and the validation report."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import collectives
from fabric.schema import gpu_count
from collectives import calibration as nccl_calibration
from collectives.cli import main
from collectives.data import FILES, data_file, read_rows
from collectives.errors import InvalidSpec
from collectives.training.published import published_runs
from collectives.training.validation import validate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "validation"


def test_every_data_file_ships_with_the_package_and_names_its_sources():
    for name in FILES:
        path = data_file(name)
        assert path.is_file(), name
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert any("ource" in line for line in header), f"{name} names no source"
        assert read_rows(name), name


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/validation beside this clone")
def test_package_data_is_the_shared_copy():
    for name in FILES:
        if (SHARED / name).exists():
            assert data_file(name).read_text() == (SHARED / name).read_text(), f"{name} differs from shared/"


def test_unknown_data_file_is_refused():
    with pytest.raises(InvalidSpec, match="name='x.csv' must be one of"):
        data_file("x.csv")


@pytest.fixture(scope="module")
def runs():
    return published_runs()


def test_every_row_becomes_a_run(runs):
    assert len(runs) == sum(len(read_rows(name)) for name in ("training.csv", "training_runs.csv",
                                                              "training_runs_added.csv"))
    assert len({r.case for r in runs}) == len(runs)
    for run in runs:
        assert run.seconds > 0
        if run.unsupported:
            assert run.fabric is None or run.model is None
            continue
        G = run.fabric()
        run.plan.check_against(run.model, gpus=len(run.ranks) if run.ranks else G)


def test_every_published_run_is_priced(runs):
    assert not {r.case: r.unsupported for r in runs if r.unsupported}


def test_bloom_nodes_have_four_100g_nics_for_eight_gpus(runs):
    # Jean Zay: 4 x 100 Gb/s Omni-Path per 8-GPU node, built as a 50 Gb/s share per GPU
    from fabric.units import Gbps

    run = next(r for r in runs if r.case == "bloom176b_a100_384")
    G = run.fabric()
    nics = [n for n, d in G.nodes(data=True) if d["kind"] == "nic"]
    assert len(nics) == 384
    server = [n for n in nics if G.nodes[n]["host"] == G.nodes[nics[0]]["host"]]
    up = sum(G.edges[n, leaf]["bandwidth"] for n in server for leaf in G.successors(n)
             if G.nodes[leaf]["kind"] == "switch")
    assert up == pytest.approx(4 * 100 * Gbps)


def test_deepseek_v3_runs_use_the_preset_and_fold_experts(runs):
    run = next(r for r in runs if r.case == "dsv3_671b_h100_1024_bf16")
    assert run.model.shared_experts == 1 and run.model.first_dense_layers == 3 and run.model.experts == 256
    assert run.plan.ep == 64 > run.plan.dp == 32 and run.plan.etp == 1


def test_gb200_jobs_use_64_gpus_of_each_rack(runs):
    run = next(r for r in runs if r.case == "llama31_405b_gb200_512_fp8")
    G = run.fabric()
    assert len(run.ranks) == 512 and max(run.ranks) < gpu_count(G) == 8 * 72
    assert sorted({r // 72 for r in run.ranks}) == list(range(8))
    assert all(sum(1 for r in run.ranks if r // 72 == rack) == 64 for rack in range(8))


def test_framework_defaults_fill_what_sources_leave_open(runs):
    by_case = {r.case: r for r in runs}
    nemo = by_case["llama31_70b_h100_2048_fp8"].plan
    assert nemo.flash_attention and nemo.tp_comm_overlap and nemo.overlap_grad_reduce
    titan = by_case["torchtitan_llama31_8b_h100_128_fsdp"].plan
    assert titan.zero == 3 and not titan.tp_comm_overlap
    assert by_case["torchtitan_llama31_70b_h100_256_fsdp_tp"].plan.tp_comm_overlap  # AsyncTP, as the source says
    # torchtitan compiles its loss with torch.compile from April 2025: the June 2025 H200 runs
    # keep the fused loss's bytes, the December 2024 runs (compiled or not) the eager loss's
    assert [by_case[c].plan.fused_cross_entropy for c in ("torchtitan_llama31_8b_h200_32",
            "torchtitan_llama31_70b_h100_256_fsdp_tp", "torchtitan_llama31_8b_h100_128_fsdp")] == [True, False, False]
    sc21 = next(r for r in runs if r.source == "sc21").plan
    assert not sc21.flash_attention and sc21.precision == "fp16" and sc21.zero == 0
    # NeMo 2's Llama, Nemotron and Grok-1 performance recipes reduce gradients in bf16 at every
    # precision; the NeMo 1 YAML runs (GPT-3 175B, the v24.11.1 Nemotrons) and DeepSeek-V3 keep fp32
    cases = ("llama31_405b_gb200_128_bf16", "nemotron4_340b_gb200_512_bf16", "llama31_8b_h100_8_bf16",
             "grok1_314b_h100_512_bf16", "gpt3_175b_h100_128_bf16", "nemotron4_15b_h100_2048_bf16",
             "dsv3_671b_h100_1024_bf16")
    assert [by_case[c].plan.grad_reduce_in_fp32 for c in cases] == [False] * 4 + [True] * 3


def test_every_run_that_ran_fits(report):
    # every calibration row really ran, so its plan must fit in its GPU's memory
    assert [r["case"] for r in report.rows if r["kind"] == "step" and not r["unsupported"] and not r["fits"]] == []


@pytest.fixture(scope="module")
def report():
    return validate(progress=False)


def test_report_prices_every_supported_row(report, runs):
    steps = [r for r in report.rows if r["kind"] == "step"]
    assert len(steps) == len(runs)
    assert len([r for r in report.rows if r["kind"] == "nccl"]) == len(nccl_calibration.nccl_rows())
    for row in report.rows:
        if row["unsupported"]:
            assert row["predicted"] is None and row["error"] is None
        else:
            assert np.isfinite(row["predicted"]) and row["predicted"] > 0
            assert row["error"] == pytest.approx(row["predicted"] / row["published"] - 1)


def test_report_summary_counts_its_rows(report):
    summary = report.summary()
    steps = [r for r in report.rows if r["kind"] == "step"]
    priced = [r for r in steps if not r["unsupported"]]
    assert summary["step"]["rows"] == len(steps)
    assert summary["step"]["unsupported"] == len(steps) - len(priced)
    assert summary["step"]["median_error"] == pytest.approx(np.median([abs(r["error"]) for r in priced]))
    assert summary["step"]["not_fitting"] == sum(1 for r in priced if not r["fits"])
    assert set(summary["step"]["median_error_by_gpu"]) == {r["gpu"] for r in priced}
    assert json.loads(json.dumps(report.to_dict()))["summary"]["nccl"]["rows"] == summary["nccl"]["rows"]


def test_report_agrees_with_the_estimator(report, runs):
    run = next(r for r in runs if r.case == "nemotron4_340b_h100_2048_bf16")
    est = collectives.estimate_step(run.model, run.plan, run.fabric(), level="analytic")
    row = next(r for r in report.rows if r["case"] == run.case)
    assert row["predicted"] == est.time and row["fits"] == est.fits


def test_report_text_lists_every_row(report):
    text = str(report)
    assert all(r["case"][:44] in text for r in report.rows)
    assert "median by GPU" in text


def test_report_names_the_rows_parameters_were_fitted_to(report):
    by_case = {r["case"]: r for r in report.rows if r["kind"] == "step"}
    # the compute efficiencies are fitted to every run off GB200, GB200's rates to its own runs
    assert by_case["sc21_512_tp8_pp2"]["fitted"] == "gemm_efficiency, kernel_overhead"
    assert by_case["llama31_405b_h100_2048_fp8"]["fitted"] == "gemm_efficiency, kernel_overhead"
    assert by_case["llama31_405b_gb200_512_fp8"]["fitted"] == "GB200 matmul rates"
    step = report.summary()["step"]
    assert step["checks"] == 0 and step["median_error_of_checks"] is None
    assert ("every row is in-sample for a fit (out of sample: collectives.training.calibration.leave_one_out)"
            in str(report))
    nccl_rows = [r for r in report.rows if r["kind"] == "nccl"]
    checks = [abs(r["error"]) for r in nccl_rows if not r["fitted"]]
    nccl = report.summary()["nccl"]
    assert nccl["checks"] == len(checks) > 0 and nccl["median_error_of_checks"] == pytest.approx(np.median(checks))
    assert f"the {len(checks)} row{'s' * (len(checks) != 1)} no parameter was fitted to" in str(report)


def test_report_html_shows_the_fit_of_each_row_and_the_checks_median(report):
    html = report._repr_html_()
    checks = report.summary()["nccl"]["checks"]
    assert "(fitted: GB200 matmul rates)" in html and f"the {checks} not fitted to:" in html


def test_report_text_says_why_a_row_is_unsupported(report):
    # every published row is priced today; a row the library cannot express keeps its line
    row = dict(report.rows[0], predicted=None, error=None, fits=None, unsupported="no such NIC")
    text = str(dataclasses.replace(report, rows=(row,) + report.rows[1:]))
    assert "unsupported: no such NIC" in text and "1 unsupported" in text


def test_validate_rejects_bad_arguments():
    with pytest.raises(InvalidSpec, match="level='fast' must be one of"):
        validate("fast")
    with pytest.raises(InvalidSpec, match="kinds='steps' must be one of"):
        validate(kinds=("steps",))


def test_cli_validate_json(capsys):
    assert main(["validate", "--kinds", "nccl", "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["level"] == "analytic" and {r["kind"] for r in out["rows"]} == {"nccl"}
    assert main(["validate", "--kinds", "nope", "--no-progress"]) == 2
