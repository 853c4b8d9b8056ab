"""Collective cost models: calibration, agreement of the two levels, properties, errors."""

import pytest
from hypothesis import given, settings, strategies as st

import collectives
import fabric
from collectives import calibration
from fabric import strategies as fst
from fabric.units import Gbps, GiB, MiB

TOLERANCE = 0.10  # issue: every nccl.csv row reproduced within 10%


@pytest.fixture(scope="module")
def nccl_rows():
    return calibration.read_nccl_csv()


@pytest.mark.parametrize("level", ["flow", "analytic"])
def test_every_published_nccl_row_within_tolerance(nccl_rows, level):
    for row in nccl_rows:
        predicted = calibration.predict(row, level=level)
        assert predicted == pytest.approx(row["busbw"], rel=TOLERANCE), row


def test_default_efficiencies_are_the_fit_to_the_whole_table(nccl_rows):
    fitted, _ = calibration.fit(nccl_rows)
    for name in calibration.PARAMETER_OF.values():
        assert getattr(fitted, name) == pytest.approx(getattr(collectives.DEFAULT_PARAMS, name), abs=0.002)


MULTINODE_TOLERANCE = 0.10  # NVL72 rows: the bar for nccl rows


def test_nvl72_rows_fit_one_multinode_nvls_efficiency_and_latency():
    rows = calibration.nccl_rows()
    fitted, errors = calibration.fit(rows)
    name = calibration.MULTINODE_PARAMETER
    assert getattr(fitted, name) == pytest.approx(getattr(collectives.DEFAULT_PARAMS, name), abs=0.002)
    latency = calibration.MULTINODE_LATENCY
    assert getattr(fitted, latency) == pytest.approx(getattr(collectives.DEFAULT_PARAMS, latency), rel=0.01)
    nvl72 = [i for i, r in enumerate(rows) if r["fabric"] == "nvl72"]
    assert len(nvl72) == 3 and all(abs(errors[i]) <= MULTINODE_TOLERANCE for i in nvl72)
    inside = collectives.engine.profile(fabric.dgx_superpod(1), 0, collectives.DEFAULT_PARAMS)
    across = collectives.engine.profile(fabric.nvl72(1), 0, collectives.DEFAULT_PARAMS)
    assert not inside.multinode_nvlink and across.multinode_nvlink


CASES = [
    ("all_reduce", "ring", None),
    ("all_reduce", "tree", None),
    ("all_reduce", "halving_doubling", None),
    ("all_reduce", "hierarchical", None),
    ("all_reduce", "nvls", None),
    ("all_reduce", "sharp", None),
    ("all_gather", "ring", None),
    ("reduce_scatter", "halving_doubling", None),
    ("all_to_all", "direct", None),
    ("broadcast", "ring", None),
    ("all_reduce", "ring", list(range(3, 64, 8))),  # one GPU per server, one rail
    ("all_reduce", "ring", list(range(8))),  # one server
]


@pytest.mark.parametrize("collective, algorithm, ranks", CASES)
def test_levels_agree_where_no_link_is_shared(collective, algorithm, ranks):
    G = fabric.dgx_superpod(8)  # non-blocking, rail-optimized
    fn = getattr(collectives, collective)
    flow = fn(G, 256 * MiB, ranks=ranks, algorithm=algorithm, level="flow")
    analytic = fn(G, 256 * MiB, ranks=ranks, algorithm=algorithm, level="analytic")
    assert flow.time == pytest.approx(analytic.time, rel=1e-6)
    assert flow.algorithm == analytic.algorithm == algorithm


def test_send_recv_levels_agree_and_use_one_nic():
    G = fabric.dgx_superpod(2)
    for level in ("flow", "analytic"):
        r = collectives.send_recv(G, GiB, ranks=(0, 9), level=level)
        # Bandwidth part at 94% of a 400 Gb/s NIC (NCCL maintainers: 46-48 GB/s per NIC).
        assert GiB / (r.time - r.latency) == pytest.approx(0.94 * 400 * Gbps)


def test_single_server_ring_matches_nccl_tests_shape():
    G = fabric.dgx_superpod(1, gpu="H100")
    r = collectives.all_reduce(G, 4 * GiB, algorithm="ring")
    assert r.busbw == pytest.approx(370e9, rel=0.05)
    assert r.busbw == pytest.approx(r.algbw * 2 * 7 / 8)


def test_auto_picks_nvls_on_hopper_and_ring_on_ampere():
    assert collectives.all_reduce(fabric.dgx_superpod(1, gpu="H100"), GiB).algorithm == "nvls"
    assert collectives.all_reduce(fabric.dgx_superpod(1, gpu="A100"), GiB).algorithm in ("ring", "tree", "halving_doubling")


def test_small_messages_are_latency_bound():
    G = fabric.dgx_superpod(4)
    small = collectives.all_reduce(G, 1024, level="analytic")
    assert small.latency / small.time > 0.9
    assert small.protocol == "ll" or small.algorithm in ("nvls", "sharp")


sizes = st.lists(st.integers(1, 2**31), min_size=2, max_size=4, unique=True).map(sorted)


@settings(max_examples=20, deadline=None)
@given(G=fst.fabrics(max_gpus=64), sizes=sizes, level=st.sampled_from(["flow", "analytic"]),
       collective=st.sampled_from(["all_reduce", "all_gather", "reduce_scatter", "all_to_all"]))
def test_time_never_falls_as_nbytes_grows(G, sizes, level, collective):
    fn = getattr(collectives, collective)
    times = [fn(G, s, level=level).time for s in sizes]
    assert all(b >= a * (1 - 1e-12) for a, b in zip(times, times[1:]))


@settings(max_examples=20, deadline=None)
@given(G=fst.fabrics(builders=("dgx_superpod", "fat_tree", "spectrum_x"), max_gpus=128),
       nbytes=st.integers(1, 2**32), level=st.sampled_from(["flow", "analytic"]))
def test_ring_busbw_never_exceeds_the_slowest_link(G, nbytes, level):
    gpu = G.graph["gpu"]
    one_server = collectives.all_reduce(G, nbytes, ranks=range(8), algorithm="ring", level=level)
    assert one_server.busbw <= gpu.nvlink_bandwidth
    hosts = sum(1 for _, d in G.nodes(data=True) if d["kind"] == "gpu") // 8
    if hosts >= 2:
        nic = min(d["bandwidth"] for u, v, d in G.edges(data=True) if G.nodes[u]["kind"] == "nic")
        rail = collectives.all_reduce(G, nbytes, ranks=range(0, 8 * hosts, 8), algorithm="ring", level=level)
        assert rail.busbw <= nic


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_a_failed_link_never_speeds_up_a_collective(data):
    G = data.draw(fst.fabrics(builders=("dgx_superpod", "fat_tree", "spectrum_x"), max_gpus=128), label="G")
    change = data.draw(fst.topology_changes(G), label="change")
    H = change.apply(G)
    nbytes = data.draw(st.integers(2**20, 2**30), label="nbytes")
    before = collectives.all_reduce(G, nbytes, algorithm="ring").time
    try:
        after = collectives.all_reduce(H, nbytes, algorithm="ring").time
    except fabric.NoRoute:
        return
    assert after >= before * (1 - 1e-9)


def test_a_failed_spine_slows_an_all_reduce_across_servers():
    G = fabric.dgx_superpod(64)
    ranks = range(0, 512, 8)  # rail 0 of every server: crosses the spines
    before = collectives.all_reduce(G, GiB, ranks=ranks, algorithm="ring")
    G.remove_node("spine0")
    after = collectives.all_reduce(G, GiB, ranks=ranks, algorithm="ring")
    assert after.time >= before.time


@settings(max_examples=10, deadline=None)
@given(perm=st.permutations(list(range(0, 64, 4))), level=st.sampled_from(["flow", "analytic"]))
def test_group_order_does_not_change_the_result(perm, level):
    G = fabric.dgx_superpod(8)
    a = collectives.all_reduce(G, 64 * MiB, ranks=sorted(perm), level=level)
    b = collectives.all_reduce(G, 64 * MiB, ranks=perm, level=level)
    assert a.time == b.time and a.algorithm == b.algorithm


def test_concurrent_rail_aligned_groups_do_not_interfere():
    G = fabric.dgx_superpod(8)
    groups = [list(range(i, 64, 8)) for i in range(8)]
    alone = collectives.all_reduce(G, GiB, ranks=groups[0], algorithm="ring")
    together = collectives.concurrent(G, "all_reduce", groups, GiB, algorithm="ring")
    assert [r.time for r in together] == pytest.approx([alone.time] * 8)


def test_concurrent_groups_share_an_oversubscribed_uplink():
    # 3:1 above each top-of-rack leaf of 6 servers; every group takes one server per leaf,
    # so every ring hop leaves its leaf: 48 GPUs per leaf share 16 uplinks.
    G = fabric.fat_tree(36, switch="tomahawk4", rail_optimized=False, oversubscription=3, routing="adaptive")
    groups = [[h * 8 + i for h in range(j, 36, 6)] for j in range(6) for i in range(8)]
    alone = collectives.all_reduce(G, GiB, ranks=groups[0], algorithm="ring")
    together = collectives.concurrent(G, "all_reduce", groups, GiB, algorithm="ring")
    slowdown = (max(r.time for r in together) - alone.latency) / (alone.time - alone.latency)
    assert slowdown == pytest.approx(3, rel=0.01)


def test_ecmp_collisions_slow_concurrent_rings_down():
    adaptive = fabric.fat_tree(64, switch="tomahawk4", rail_optimized=False, routing="adaptive")
    ecmp = fabric.fat_tree(64, switch="tomahawk4", rail_optimized=False, routing="ecmp", qps=1)
    groups = [[h * 8 + i for h in range(j, 64, 4)] for j in range(4) for i in range(8)]  # one server per leaf
    t_adaptive = max(r.time for r in collectives.concurrent(adaptive, "all_reduce", groups, GiB, algorithm="ring"))
    t_ecmp = max(r.time for r in collectives.concurrent(ecmp, "all_reduce", groups, GiB, algorithm="ring"))
    assert t_ecmp > 1.1 * t_adaptive


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda G: collectives.all_reduce(G, GiB, ranks=[0, 99]), collectives.InvalidSpec, "rank 99, outside 0..15"),
        (lambda G: collectives.all_reduce(G, GiB, ranks=[1, 1, 2]), collectives.InvalidSpec, "rank 1 twice"),
        (lambda G: collectives.all_reduce(G, GiB, ranks=[4]), collectives.InvalidSpec, "group of 1 rank"),
        (lambda G: collectives.all_reduce(G, -1), collectives.InvalidSpec, "nbytes=-1 must be >= 0"),
        (lambda G: collectives.all_reduce(G, float("nan")), collectives.InvalidSpec, "must be a finite number"),
        (lambda G: collectives.all_reduce(G, GiB, level="packet"), fabric.InvalidSpec, "level='packet'"),
        (lambda G: collectives.all_reduce(G, GiB, algorithm="magic"), fabric.InvalidSpec, "algorithm='magic'"),
        (lambda G: collectives.all_gather(G, GiB, algorithm="nvls"), collectives.Unsupported, "does not implement all_gather"),
        (lambda G: collectives.all_reduce(G, GiB, ranks=range(12), algorithm="halving_doubling"),
         collectives.Unsupported, "power-of-two"),
        (lambda G: collectives.broadcast(G, GiB, ranks=[0, 1], root=5), collectives.InvalidSpec, "root=5"),
        (lambda G: collectives.send_recv(G, GiB, ranks=(0, 1, 2)), collectives.InvalidSpec, "pair must be"),
        (lambda G: collectives.concurrent(G, "all_reduce", [[0, 1], [1, 2]], GiB), collectives.InvalidSpec, "disjoint"),
    ],
)
def test_bad_input_is_rejected_clearly(call, error, message):
    G = fabric.dgx_superpod(2)
    with pytest.raises(error, match=message):
        call(G)


def test_nvls_needs_nvswitch_sharp():
    G = fabric.dgx_superpod(1, gpu="A100")
    with pytest.raises(collectives.Unsupported, match="NVLink generation >= 4"):
        collectives.all_reduce(G, GiB, algorithm="nvls")


def test_sharp_needs_switches_that_reduce():
    G = fabric.fat_tree(4, switch="tomahawk4")
    with pytest.raises(collectives.Unsupported, match="in-network reduction"):
        collectives.all_reduce(G, GiB, algorithm="sharp")


def test_sweep_gives_the_familiar_rising_busbw_curve():
    G = fabric.dgx_superpod(4)
    curve = collectives.sweep(G, "all_reduce", [2**k for k in range(10, 33, 2)], level="analytic")
    busbw = [r.busbw for r in curve]
    assert busbw == sorted(busbw)
    assert busbw[-1] > 100 * busbw[0]


def test_result_renders():
    r = collectives.all_reduce(fabric.dgx_superpod(1), GiB)
    assert "busbw" in str(r) and "<table>" in r._repr_html_()
    assert r.to_dict()["algorithm"] == r.algorithm


def test_auto_uses_in_network_sharp_only_when_collnet_is_enabled():
    # NCCL runs CollNet (SHARP) only with NCCL_COLLNET_ENABLE=1; NVLS stays on by default
    G = fabric.dgx_superpod(16, gpu="H100")
    ranks = range(0, 128, 8)
    default = collectives.all_reduce(G, 2**30, ranks=ranks, level="analytic")
    enabled = collectives.all_reduce(G, 2**30, ranks=ranks, level="analytic",
                                     params=collectives.CommParams(collnet=True))
    named = collectives.all_reduce(G, 2**30, ranks=ranks, level="analytic", algorithm="sharp")
    assert default.algorithm != "sharp"
    assert enabled.algorithm == "sharp" and enabled.time < default.time
    assert named.time == pytest.approx(enabled.time)


def test_collnet_must_be_a_bool():
    with pytest.raises(collectives.errors.InvalidSpec, match="collnet=1 must be True or False"):
        collectives.CommParams(collnet=1)
