"""The command line (collectives.cli): every subcommand in-process, JSON, errors, exit codes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from collectives.arguments import parse_ranks
from collectives.cluster_flags import parse_cluster
from collectives.cli import main, message_sizes

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--cluster", "superpod-h100:2"]  # 16 GPUs


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, *fragments):
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


# ---------------------------------------------------------------------------- estimate


def test_estimate_table(capsys):
    code, out, err = run(capsys, "estimate", "--model", "llama3-8b", *SMALL, "--tp", "8", "--level", "analytic")
    assert code == 0, err
    assert out.startswith("Step estimate (analytic level)")
    assert "llama3-8b" in out and "tp=8, pp=1, dp=2" in out  # dp derived: 16 / 8
    assert "MFU" in out and "dp_communication" in out


def test_estimate_json_matches_library(capsys):
    import fabric
    import collectives

    code, out, err = run(capsys, "estimate", "--model", "llama3-8b", "--gpus", "16", "--fabric", "spectrum-x",
                         "--tp", "4", "--pp", "2", "--global-batch", "16", "--recompute", "full", "--zero", "2",
                         "--level", "analytic", "--json")
    assert code == 0, err
    got = json.loads(out)
    plan = collectives.Parallelism(tp=4, pp=2, dp=2, global_batch=16, recompute="full", zero=2)
    want = collectives.estimate_step(collectives.MODELS["llama3-8b"], plan, fabric.spectrum_x(2), level="analytic")
    assert got["plan"] == want.to_dict()["plan"]
    assert got["time"] == pytest.approx(want.time)
    assert got["level"] == "analytic" and got["fits"] is True


def test_estimate_explicit_shape_and_nvl72(capsys):
    code, out, err = run(capsys, "estimate", "--layers", "4", "--hidden", "1024", "--heads", "16", "--kv-heads", "4",
                         "--ffn-hidden", "4096", "--mlp", "swiglu", "--seq-len", "2048", "--vocab", "32000",
                         "--cluster", "nvl72:1", "--tp", "4", "--level", "analytic", "--json")
    assert code == 0, err
    est = json.loads(out)
    assert est["model"] == "custom"
    assert est["plan"]["dp"] == 18  # 72 GB200 / tp 4
    assert est["time"] > 0


def test_estimate_default_global_batch_is_two_per_gpu(capsys):
    code, out, _ = run(capsys, "estimate", *SMALL, "--tp", "8", "--level", "analytic", "--json")
    assert code == 0
    est = json.loads(out)
    assert est["tokens_per_second"] * est["time"] == pytest.approx(32 * 8192)


# ---------------------------------------------------------------------------- collective


def test_collective_table(capsys):
    code, out, err = run(capsys, "collective", *SMALL, "--level", "analytic", "--min-bytes", "1K",
                         "--max-bytes", "1M", "--factor", "4")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert "all_reduce over 16 ranks" in lines[0]
    for column in ("size", "time(us)", "algbw", "busbw", "algorithm", "protocol"):
        assert column in lines[1]
    rows = [line.split() for line in lines[2:]]
    assert [int(r[0]) for r in rows] == [1024, 4096, 16384, 65536, 262144, 1048576]
    assert all(float(r[1]) > 0 for r in rows)


def test_collective_json_ranks_and_algorithm(capsys):
    code, out, err = run(capsys, "collective", *SMALL, "--op", "all-gather", "--ranks", "0-15:8",
                         "--algorithm", "ring", "-b", "1M", "-e", "4M", "--level", "analytic", "--json")
    assert code == 0, err
    results = json.loads(out)
    assert [r["nbytes"] for r in results] == [2**20, 2**21, 2**22]
    assert {(r["collective"], r["algorithm"], r["ranks"]) for r in results} == {("all_gather", "ring", 2)}
    assert all(r["busbw"] <= r["algbw"] for r in results)


def test_collective_flow_level_agrees_without_contention(capsys):
    args = ["collective", "--cluster", "superpod:1", "--algorithm", "ring", "-b", "256M", "-e", "256M", "--json"]
    _, flow, _ = run(capsys, *args, "--level", "flow")
    _, analytic, _ = run(capsys, *args, "--level", "analytic")
    assert json.loads(flow)[0]["time"] == pytest.approx(json.loads(analytic)[0]["time"], rel=0.02)


# ---------------------------------------------------------------------------- search


def test_search_table_and_progress_on_stderr(capsys):
    code, out, err = run(capsys, "search", "--model", "llama3-8b", "--cluster", "superpod:1", "--top", "3",
                         "--jobs", "1")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert "3 fastest plans of llama3-8b" in lines[0] and "global_batch=16" in lines[0]
    assert lines[1].split()[:3] == ["#", "step", "time"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "2", "3"]
    assert "estimating plans" in err  # the tqdm bar goes to stderr, not into the table


def test_search_json_sorted(capsys):
    code, out, err = run(capsys, "search", "--cluster", "superpod:1", "--top", "4", "--global-batch", "8",
                         "--jobs", "1", "--no-progress", "--json")
    assert code == 0, err
    assert err == ""
    plans = json.loads(out)
    assert len(plans) == 4
    times = [p["time"] for p in plans]
    assert times == sorted(times)
    assert all(p["fits"] for p in plans)


# ---------------------------------------------------------------------------- fabric


def test_fabric_text_and_json(capsys):
    code, out, err = run(capsys, "fabric", "--cluster", "spectrum-x-h200:2")
    assert code == 0, err
    assert "Fabric summary" in out and "Bill of materials" in out and "H200" in out
    code, out, err = run(capsys, "fabric", "--gpus", "144", "--fabric", "nvl72", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["summary"]["gpus"] == 144 and data["summary"]["gpu"] == "GB200"
    assert data["bill_of_materials"]["network_watts"] > 0


def test_python_m_collectives_fabric_subprocess():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "collectives", "fabric", "--cluster", "superpod-h100:2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "GPUs                     16 H100" in proc.stdout


# ---------------------------------------------------------------------------- no subcommand, help


def test_no_subcommand_runs_the_example(capsys):
    code, out, err = run(capsys)  # README: `python -m collectives`
    assert code == 0, err
    assert out.startswith("Fabric summary")
    assert "32 H100" in out and "Step estimate (flow level)" in out
    assert "tp=8, pp=1, dp=4" in out


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "KIND[-GPU]:COUNT" in out and "estimate" in out and "search" in out


# ---------------------------------------------------------------------------- errors


def test_library_error_is_one_line_exit_2(capsys):
    code, out, err = run(capsys, "estimate", "--model", "llama3-405b", "--gpus", "24", "--tp", "3",
                         "--level", "analytic")
    assert_one_line_error(code, out, err, "tp=3 must divide heads=128")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["fabric", "--cluster", "foo:3"], "kind must be one of"),
        (["fabric", "--cluster", "superpod-x100:2"], "GPU 'x100'"),
        (["fabric", "--cluster", "superpod"], "KIND[-GPU]:COUNT"),
        (["fabric", "--gpus", "12"], "gpus=12 must be a positive multiple of 8"),
        (["fabric", "--cluster", "superpod:1", "--gpus", "8"], "not both"),
        (["estimate", "--gpus", "16", "--tp", "3"], "tp*pp*cp=3 must divide the cluster's 16 GPUs"),
        (["estimate", "--hidden", "512"], "--layers"),
        (["estimate", *SMALL, "--tp", "8", "--dp", "4", "--level", "analytic"], "must equal the fabric's 16 GPUs"),
        (["estimate", *SMALL, "--tp", "8", "--global-batch", "3"], "global_batch=3"),
        (["collective", *SMALL, "--ranks", "0-99", "--level", "analytic"], "rank 99"),
        (["collective", *SMALL, "--ranks", "a-b"], "ranks='a-b'"),
        (["collective", *SMALL, "-b", "1M", "-e", "1K"], "max_bytes"),
        (["collective", *SMALL, "--factor", "1"], "factor=1"),
        (["collective", "--cluster", "spectrum-x:2", "--algorithm", "sharp", "-e", "8", "--level", "analytic"],
         "algorithm='sharp' needs switches"),
        (["search", "--model", "llama3-405b", "--cluster", "superpod:1", "--no-progress", "--jobs", "1"],
         "no plan of llama3-405b fits"),
    ],
)
def test_bad_values_are_one_line_exit_2(capsys, argv, fragment):
    assert_one_line_error(*run(capsys, *argv), fragment)


@pytest.mark.parametrize(
    "argv",
    [["bogus"], ["estimate", "--model", "gpt5"], ["estimate", "--tp", "x"], ["collective", "-b", "lots"],
     ["collective", "--op", "gossip"], ["fabric", "--bogus"]],
)
def test_usage_errors_exit_2_on_one_line(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "error:" in err and "--help" in err


# ---------------------------------------------------------------------------- helpers


def test_parsers():
    assert parse_cluster("superpod-h100:4") == ("superpod", "H100", 4)
    assert parse_cluster("Fat_Tree:16") == ("fat-tree", "H100", 16)
    assert parse_cluster("nvl72-b200:2") == ("nvl72", "B200", 2)
    assert parse_ranks("0-3,8,16-24:4") == [0, 1, 2, 3, 8, 16, 20, 24]
    assert message_sizes(8, 64, 2) == [8, 16, 32, 64]
    assert message_sizes(1, 3, 1.5) == [1, 2, 3]


def test_collnet_flag_lets_auto_pick_sharp(capsys):
    argv = ["collective", "--cluster", "superpod:2", "-b", "8M", "-e", "8M", "--level", "analytic", "--json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)[0]["algorithm"] != "sharp"
    code, out, _ = run(capsys, *argv, "--collnet")
    assert code == 0 and json.loads(out)[0]["algorithm"] == "sharp"


# ---------------------------------------------------------------------------- what-if flags


def test_what_if_flags_build_what_the_library_builds(capsys):
    import fabric

    code, out, err = run(capsys, "fabric", "--cluster", "fat-tree:64", "--top-of-rack", "--oversubscription", "3",
                         "--qps", "4", "--switch", "tomahawk5", "--json")
    assert code == 0, err
    want = fabric.fat_tree(64, rail_optimized=False, oversubscription=3, qps=4, switch="tomahawk5")
    data = json.loads(out)
    assert data["summary"] == json.loads(json.dumps(fabric.summary(want).to_dict(), default=float))
    # one switch per tier and racks of two servers
    code, out, err = run(capsys, "fabric", "--gpus", "1024", "--fabric", "fat-tree", "--top-of-rack",
                         "--servers-per-leaf", "2", "--switch", "tomahawk4,arista-7808r3", "--json")
    assert code == 0, err
    want = fabric.fat_tree(128, rail_optimized=False, servers_per_leaf=2, switch=("tomahawk4", "arista-7808r3"))
    assert json.loads(out)["bill_of_materials"] == json.loads(json.dumps(fabric.bill_of_materials(want).to_dict(),
                                                                         default=float))
    assert json.loads(out)["summary"]["switches"]["1"] == 1024 // 16  # 16 GPUs under each ToR
    # two planes of dual ToRs
    code, out, err = run(capsys, "fabric", "--gpus", "256", "--fabric", "fat-tree", "--planes", "2", "--dual-tor",
                         "--json")
    assert code == 0, err
    want = fabric.fat_tree(32, planes=2, dual_tor=True)
    assert json.loads(out)["summary"] == json.loads(json.dumps(fabric.summary(want).to_dict(), default=float))
    code, out, err = run(capsys, "fabric", "--gpus", "256", "--fabric", "fat-tree", "--planes", "3", "--dual-tor")
    assert code != 0 and "dual_tor=True with planes=3" in err


def test_presets_saved_fabrics_and_failures(capsys, tmp_path):
    import fabric

    code, out, err = run(capsys, "fabric", "--preset", "meta-llama3", "--gpus", "2048", "--json")
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["gpus"] == 2048 and summary["name"].startswith("meta-llama3")
    path = tmp_path / "mine.json"
    G = fabric.fat_tree(16, oversubscription=2)
    fabric.save(G, path)
    code, out, err = run(capsys, "fabric", "--fabric", str(path), "--fail", "spine0", "--json")
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["name"].endswith("failed: spine0")
    spines = sum(1 for _, d in G.nodes(data=True) if d.get("tier") == 2)
    assert sum(summary["switches"].values()) == sum(1 for _, d in G.nodes(data=True) if d["kind"] == "switch") - 1
    assert spines > 1


def test_random_cable_failures_remove_that_share_of_switch_cables():
    from collectives.cluster_flags import build_cluster, build_parser

    def switch_cables(G):
        kinds = dict(G.nodes(data="kind"))
        return sum(1 for u, v in G.edges if kinds[u] == kinds[v] == "switch") // 2

    whole = build_cluster(build_parser().parse_args(["--cluster", "superpod:64"]))
    args = build_parser().parse_args(["--cluster", "superpod:64", "--fail-random", "0.25", "--fail-seed", "3"])
    failed = build_cluster(args)
    assert switch_cables(failed) == switch_cables(whole) - round(0.25 * switch_cables(whole))
    again = build_cluster(build_parser().parse_args(["--cluster", "superpod:64", "--fail-random", "0.25",
                                                     "--fail-seed", "3"]))
    assert set(again.edges) == set(failed.edges)


def test_estimate_on_part_of_a_cluster_names_fabric_and_batch(capsys):
    code, out, err = run(capsys, "estimate", "--cluster", "superpod:4", "--ranks", "0-15", "--tp", "8",
                         "--level", "analytic", "--json")
    assert code == 0, err
    est = json.loads(out)
    assert est["plan"]["tp"] * est["plan"]["dp"] == 16
    assert est["fabric"].startswith("dgx_superpod: 32 x H100") and est["global_batch"] == 32


@pytest.mark.parametrize("argv, message", [
    (["fabric", "--cluster", "superpod:4", "--qps", "4"],
     r"--qps does not apply to superpod \(fabric.dgx_superpod\); it takes --routing, --tiers"),
    (["fabric", "--cluster", "superpod:4", "--fail", "nonesuch"], "fail='nonesuch' is no node of the fabric"),
    (["fabric", "--cluster", "superpod:4", "--fail", "gpu3"], "fail='gpu3': only switches and cables can fail"),
    (["fabric", "--cluster", "superpod:4", "--fail", "leaf0~leaf1"], "no cable between 'leaf0' and 'leaf1'"),
    (["fabric", "--cluster", "superpod:4", "--fail-random", "1.5"], r"fail_random=1.5 must be in \[0, 1\)"),
    (["fabric", "--cluster", "superpod:4", "--preset", "spectrum-x"], "give one of --cluster, --preset"),
    (["fabric", "--preset", "meta-llama3", "--gpus", "24"], "must be a multiple of 16"),
    (["fabric", "--fabric", "no/such/file.json"], "is neither a fabric kind"),
    # 16 ToRs of 4 servers per pod send 512 cables up; a spine taking 32 of them has 4 or 5 uplinks
    # (8:1, 6.4:1), one taking 16 has 2 or 3 (8:1, 5.33:1); 64 would need 9-10 uplinks, over 64 ports
    (["fabric", "--cluster", "fat-tree:256", "--oversubscription", "7", "--pod-nodes", "64", "--top-of-rack"],
     "oversubscription=7.0 cannot be realised in whole cables above a pod of 16 leaves .* exact ratios nearby: "
     "5.33333, 6.4, 8"),
])
def test_what_if_errors_name_the_flag(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert re.search(message, err), err
