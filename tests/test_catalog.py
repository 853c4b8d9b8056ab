"""Tests of the hardware catalog: spec validation, breakout arithmetic and published facts.

The fact checks restate numbers from the vendors' documents (see the source comments in
``fabric/catalog.py``) so that a mistyped constant fails here rather than skewing a model.
"""

import dataclasses
import math
import re

import pytest

import collectives
import fabric

from collectives.training.calibration import FITTED_GPUS
from fabric.catalog import GPUS, NICS, OPTICS, SWITCHES, TRANSPORTS, GPUSpec, NICSpec, OpticSpec, SwitchSpec
from fabric.errors import FabricError, InvalidSpec
from fabric.units import GB, GBps, Gbps, GiB, PFLOPS, TB, TBps, Tbps, TFLOPS

TABLES = {
    "GPUS": (GPUS, GPUSpec),
    "NICS": (NICS, NICSpec),
    "SWITCHES": (SWITCHES, SwitchSpec),
    "OPTICS": (OPTICS, OpticSpec),
}
ALL_SPECS = [(table, name) for table, (specs, _) in TABLES.items() for name in specs]


def _spec(table, name):
    return TABLES[table][0][name]


def _raises_exactly(message):
    """``pytest.raises`` for an ``InvalidSpec`` whose whole message is ``message``."""
    return pytest.raises(InvalidSpec, match=rf"^{re.escape(message)}$")


# ---------------------------------------------------------------------------
# Every catalog entry is a valid spec
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("table, name", ALL_SPECS)
def test_every_spec_validates(table, name):
    spec = _spec(table, name)
    assert isinstance(spec, TABLES[table][1])
    assert spec.name == name
    # Rebuilding from the field values runs __post_init__ again, and so does replace().
    rebuilt = type(spec)(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
    assert rebuilt == spec
    assert dataclasses.replace(spec) == spec


@pytest.mark.parametrize("table, name", ALL_SPECS)
def test_specs_are_frozen(table, name):
    spec = _spec(table, name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_tables_are_read_only(table):
    specs, _ = TABLES[table]
    with pytest.raises(TypeError):
        specs["new"] = next(iter(specs.values()))


@pytest.mark.parametrize("name", sorted(GPUS))
def test_gpu_numbers_are_sane(name):
    gpu = GPUS[name]
    assert 100 * TFLOPS < gpu.bf16_flops < 10 * PFLOPS
    assert gpu.fp8_flops is None or gpu.fp8_flops > gpu.bf16_flops
    assert 40 * GB <= gpu.hbm_bytes <= 300 * GB
    assert 1 * TBps < gpu.hbm_bandwidth < 20 * TBps
    assert gpu.pcie_bandwidth < gpu.nvlink_bandwidth < gpu.hbm_bandwidth
    assert 300 <= gpu.power <= 1500
    if name in FITTED_GPUS or gpu.matmul_efficiency == GPUS[FITTED_GPUS[0]].matmul_efficiency:
        # fitted to published runs (test_step checks they are the fit), or borrowing that fit
        assert 0.4 <= gpu.fp8_matmul_efficiency <= gpu.matmul_efficiency <= 0.9
    else:
        assert 0.7 <= gpu.matmul_efficiency <= 0.9  # measured MAMF fractions lie in 77-86%


def test_matmul_efficiency_above_one_is_refused():
    with _raises_exactly("matmul_efficiency=1.2 must be <= 1"):
        dataclasses.replace(GPUS["H100"], matmul_efficiency=1.2)


def test_fp8_matmuls_reach_a_smaller_share_of_their_peak_on_hopper():
    # FP8 MAMF: H200 73.4% of 1,979 TFLOPS, B200 76.3% of 4,500 (ml-engineering H200-vs-B200 guide)
    assert GPUS["H100"].fp8_matmul_efficiency == GPUS["H200"].fp8_matmul_efficiency == 0.734
    assert GPUS["H100"].fp8_matmul_efficiency < GPUS["H100"].matmul_efficiency
    assert GPUS["A100"].fp8_matmul_efficiency is None and GPUS["A100"].fp8_flops is None
    with _raises_exactly("fp8_matmul_efficiency=1.5 must be <= 1"):
        dataclasses.replace(GPUS["H100"], fp8_matmul_efficiency=1.5)


def test_hopper_reaches_a_smaller_share_of_its_peak_than_ampere():
    # MAMF: A100 85.9%, H100 80.1% (ml-engineering tables)
    assert GPUS["A100"].matmul_efficiency > GPUS["H100"].matmul_efficiency


@pytest.mark.parametrize("name", sorted(NICS))
def test_nic_numbers_are_sane(name):
    nic = NICS[name]
    assert nic.transports and set(nic.transports) <= set(TRANSPORTS)
    # The host link must carry the line rate (one direction each).
    assert nic.host_bandwidth >= nic.bandwidth
    assert 5 <= nic.power <= 75


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_switch_numbers_are_sane(name):
    switch = SWITCHES[name]
    assert switch.transport in TRANSPORTS
    assert 10 * 1e-9 <= switch.latency <= 5e-6  # cut-through boxes ~0.1-0.5 us, deep-buffer chassis a few us
    watts_per_tbps = switch.power / (switch.ports * switch.port_bandwidth / Tbps)
    assert 5 <= watts_per_tbps <= 40, f"{name}: {watts_per_tbps:.1f} W per Tb/s"
    assert switch.in_network_reduction == (switch.transport == "infiniband")


@pytest.mark.parametrize("name", sorted(OPTICS))
def test_optic_energy_per_bit_is_plausible(name):
    optic = OPTICS[name]
    picojoules_per_bit = optic.power / (optic.bandwidth * 8) * 1e12
    assert 5 <= picojoules_per_bit <= 40, f"{name}: {picojoules_per_bit:.1f} pJ/bit"


# ---------------------------------------------------------------------------
# dataclasses.replace validates again; errors name the field and the value
# ---------------------------------------------------------------------------

BAD_VALUES = [
    # (table, name, field, value, message)
    ("GPUS", "H100", "power", -1, "power=-1 must be > 0"),
    ("GPUS", "H100", "bf16_flops", 0, "bf16_flops=0 must be > 0"),
    ("GPUS", "H100", "fp8_flops", -1.5, "fp8_flops=-1.5 must be > 0"),
    ("GPUS", "B200", "hbm_bytes", math.inf, "hbm_bytes=inf must be finite"),
    ("GPUS", "B200", "hbm_bandwidth", math.nan, "hbm_bandwidth=nan must be finite"),
    ("GPUS", "A100", "nvlink_bandwidth", "300", "nvlink_bandwidth='300' must be a number"),
    ("GPUS", "A100", "pcie_bandwidth", True, "pcie_bandwidth=True must be a number"),
    ("GPUS", "GB200", "nvlink_generation", 0, "nvlink_generation=0 must be >= 1"),
    ("GPUS", "GB200", "nvlink_generation", 5.0, "nvlink_generation=5.0 must be an integer"),
    ("NICS", "cx7", "bandwidth", 0, "bandwidth=0 must be > 0"),
    ("NICS", "cx7", "host_bandwidth", -64, "host_bandwidth=-64 must be > 0"),
    ("NICS", "cx8", "power", -35, "power=-35 must be > 0"),
    (
        "NICS",
        "bluefield3",
        "transports",
        ("ethernet", "omnipath"),
        "transports='omnipath' must be one of 'infiniband', 'ethernet'",
    ),
    ("SWITCHES", "qm9700", "ports", 1, "ports=1 must be >= 2"),
    ("SWITCHES", "qm9700", "ports", 64.0, "ports=64.0 must be an integer"),
    ("SWITCHES", "qm9700", "max_breakout", 0, "max_breakout=0 must be >= 1"),
    ("SWITCHES", "sn5600", "port_bandwidth", -1, "port_bandwidth=-1 must be > 0"),
    ("SWITCHES", "sn5600", "latency", 0, "latency=0 must be > 0"),
    ("SWITCHES", "tomahawk5", "power", -1, "power=-1 must be > 0"),
    (
        "SWITCHES",
        "tomahawk5",
        "transport",
        "fibre-channel",
        "transport='fibre-channel' must be one of 'infiniband', 'ethernet'",
    ),
    ("OPTICS", "osfp-800g", "bandwidth", 0, "bandwidth=0 must be > 0"),
    ("OPTICS", "osfp-800g", "power", -1, "power=-1 must be > 0"),
]


@pytest.mark.parametrize(
    "table, name, field, value, message", BAD_VALUES, ids=[f"{r[1]}.{r[2]}={r[3]!r}" for r in BAD_VALUES]
)
def test_replace_with_bad_value_raises_invalid_spec(table, name, field, value, message):
    with _raises_exactly(message):
        dataclasses.replace(_spec(table, name), **{field: value})


def test_invalid_spec_is_a_fabric_error_and_a_value_error():
    with pytest.raises(FabricError):
        dataclasses.replace(GPUS["H100"], power=-1)
    with pytest.raises(ValueError):
        dataclasses.replace(GPUS["H100"], power=-1)


def test_replace_with_good_value_gives_a_new_valid_spec():
    capped = dataclasses.replace(GPUS["H100"], power=500)
    assert capped.power == 500 and GPUS["H100"].power == 700
    assert dataclasses.replace(GPUS["H100"], fp8_flops=None).fp8_flops is None
    assert dataclasses.replace(OPTICS["osfp-400g"], power=0).power == 0  # passive copper draws ~0 W
    assert dataclasses.replace(SWITCHES["qm9700"], max_breakout=1).radix(200 * Gbps) == 0


def test_specs_are_keyword_only():
    with pytest.raises(TypeError):
        OpticSpec("x", 400 * Gbps, 9)


# ---------------------------------------------------------------------------
# SwitchSpec.radix: exact breakouts only
# ---------------------------------------------------------------------------

RADIX_CASES = [
    ("qm8700", 200, 40),
    ("qm8700", 100, 80),
    ("qm8700", 50, 0),  # a 1:4 split exceeds max_breakout=2
    ("qm9700", 400, 64),
    ("qm9700", 200, 128),
    ("qm9700", 100, 0),
    ("qm9700", 800, 0),  # faster than the port
    ("q3400", 800, 144),
    ("sn5600", 800, 64),
    ("sn5600", 400, 128),
    ("sn5600", 200, 256),
    ("sn5600", 100, 0),
    ("sn5600", 300, 0),  # 800/300 is not a whole number
    ("sn5600", 266.67, 0),
    ("tomahawk4", 400, 64),
    ("tomahawk4", 100, 256),
    ("tomahawk4", 25, 0),
    ("tomahawk5", 200, 256),
    ("tomahawk5", 100, 0),  # Tomahawk 5 tops out at 256 logical ports
]


@pytest.mark.parametrize("name, gbps, expected", RADIX_CASES, ids=[f"{n}@{g}G" for n, g, _ in RADIX_CASES])
def test_radix(name, gbps, expected):
    assert SWITCHES[name].radix(gbps * Gbps) == expected


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_radix_for_every_allowed_split(name):
    switch = SWITCHES[name]
    for split in range(1, switch.max_breakout + 1):
        link = switch.port_bandwidth / split
        assert switch.radix(link) == switch.ports * split
        # Splitting never creates or loses bandwidth.
        assert math.isclose(switch.radix(link) * link, switch.ports * switch.port_bandwidth)
    assert switch.radix(switch.port_bandwidth / (switch.max_breakout + 1)) == 0
    assert switch.radix(switch.port_bandwidth * 2) == 0
    assert switch.radix(switch.port_bandwidth * 0.75) == 0


# ---------------------------------------------------------------------------
# Published facts (each can fail if a constant is mistyped)
# ---------------------------------------------------------------------------


def _close(a, b, rel=1e-3):
    return math.isclose(a, b, rel_tol=rel)


@pytest.mark.parametrize("name", ["H100", "H200"])
def test_hopper_dense_is_half_the_sparse_datasheet_figure(name):
    # H100/H200 SXM datasheets: BF16 1,979 TFLOPS and FP8 3,958 TFLOPS with sparsity.
    gpu = GPUS[name]
    assert _close(gpu.bf16_flops, 1979 * TFLOPS / 2)
    assert _close(gpu.fp8_flops, 3958 * TFLOPS / 2)


def test_a100_dense_bf16_and_no_fp8():
    # A100 datasheet: BF16 624 TFLOPS with sparsity, 312 dense; no FP8.
    assert _close(GPUS["A100"].bf16_flops, 624 * TFLOPS / 2)
    assert GPUS["A100"].fp8_flops is None


def test_hgx_b200_totals():
    # HGX B200 (8 GPUs): BF16 36 PF and FP8 72 PF with sparsity; 1.4 TB HBM3e (DGX B200: 1,440 GB).
    b200 = GPUS["B200"]
    assert _close(8 * 2 * b200.bf16_flops, 36 * PFLOPS)
    assert _close(8 * 2 * b200.fp8_flops, 72 * PFLOPS)
    assert _close(8 * b200.hbm_bytes, 1440 * GB)
    assert _close(8 * b200.hbm_bandwidth, 62 * TBps, rel=0.01)  # "up to 62 TB/s"


def test_gb200_nvl72_totals():
    # GB200 NVL72 (72 GPUs): BF16 360 PF and FP8 720 PF with sparsity, 13.4 TB HBM3e at 576 TB/s.
    gb200 = GPUS["GB200"]
    assert _close(72 * 2 * gb200.bf16_flops, 360 * PFLOPS)
    assert _close(72 * 2 * gb200.fp8_flops, 720 * PFLOPS)
    assert _close(72 * gb200.hbm_bytes, 13.4 * TB, rel=0.01)
    assert _close(72 * gb200.hbm_bandwidth, 576 * TBps)


@pytest.mark.parametrize("name", ["H100", "H200", "B200", "GB200"])
def test_fp8_is_twice_bf16(name):
    assert _close(GPUS[name].fp8_flops, 2 * GPUS[name].bf16_flops)


@pytest.mark.parametrize(
    "name, bidirectional, generation",
    [
        ("A100", 600 * GBps, 3),
        ("H100", 900 * GBps, 4),
        ("H200", 900 * GBps, 4),
        ("B200", 1800 * GBps, 5),
        ("GB200", 1800 * GBps, 5),
    ],
)
def test_nvlink_per_direction_is_half_the_bidirectional_figure(name, bidirectional, generation):
    assert _close(GPUS[name].nvlink_bandwidth, bidirectional / 2)
    assert GPUS[name].nvlink_generation == generation


@pytest.mark.parametrize(
    "name, hbm, hbm_tbps, watts",
    [
        ("A100", 80 * GiB, 2.039, 400),  # the "80 GB" parts hold 80 GiB (nvidia-smi)
        ("H100", 80 * GiB, 3.35, 700),
        ("H200", 141 * GB, 4.8, 700),
        ("B200", 180 * GB, 7.7, 1000),
        ("GB200", 186 * GB, 8.0, 1200),
    ],
)
def test_gpu_memory_and_power(name, hbm, hbm_tbps, watts):
    gpu = GPUS[name]
    assert _close(gpu.hbm_bytes, hbm)
    assert _close(gpu.hbm_bandwidth, hbm_tbps * TBps)
    assert gpu.power == watts


@pytest.mark.parametrize(
    "name, tbps, directions",
    [
        # NVIDIA quotes Quantum and Quantum-2 throughput bidirectionally: QM9700 "51.2 Tb/s" is
        # 64 x 400 Gb/s x 2 directions, QM8700 "16 Tb/s" is 40 x 200 Gb/s x 2.
        ("qm8700", 16, 2),
        ("qm9700", 51.2, 2),
        # Quantum-X800, Spectrum-4 and Broadcom quote the sum of port rates (one direction).
        ("q3400", 115.2, 1),
        ("sn5600", 51.2, 1),
        ("tomahawk4", 25.6, 1),
        ("tomahawk5", 51.2, 1),
    ],
)
def test_switch_aggregate_bandwidth_is_ports_times_port_speed(name, tbps, directions):
    switch = SWITCHES[name]
    assert _close(directions * switch.ports * switch.port_bandwidth, tbps * Tbps)


@pytest.mark.parametrize("name, cages", [("qm9700", 32), ("q3400", 72)])
def test_twin_port_osfp_cages(name, cages):
    # Quantum-2 and Quantum-X800 put two logical ports in each OSFP cage.
    assert SWITCHES[name].ports == 2 * cages


@pytest.mark.parametrize(
    "nic, switch, gbps",
    [("cx6", "qm8700", 200), ("cx7", "qm9700", 400), ("bluefield3", "sn5600", 400), ("cx8", "q3400", 800)],
)
def test_nic_generation_matches_its_switch_generation(nic, switch, gbps):
    assert NICS[nic].bandwidth == gbps * Gbps
    assert NICS[nic].bandwidth == SWITCHES[switch].port_bandwidth / (2 if switch == "sn5600" else 1)
    assert SWITCHES[switch].radix(NICS[nic].bandwidth) > 0
    assert SWITCHES[switch].transport in NICS[nic].transports


@pytest.mark.parametrize("name, gen", [("cx6", 4), ("cx7", 5), ("bluefield3", 5), ("cx8", 6)])
def test_nic_host_link_is_pcie_x16(name, gen):
    # PCIe x16 per direction: Gen4 ~32 GB/s, Gen5 ~64 GB/s, Gen6 ~128 GB/s (raw rate, 16 lanes).
    assert _close(NICS[name].host_bandwidth, 2 ** (gen - 4) * 32 * GBps)


def test_sharp_only_on_quantum():
    assert {name for name, s in SWITCHES.items() if s.in_network_reduction} == {"qm8700", "qm9700", "q3400"}


# A user's own parts (the open catalog)


def _count(G, kind, **attrs):
    return sum(1 for _, d in G.nodes(data=True) if d["kind"] == kind and all(d.get(k) == v for k, v in attrs.items()))


def test_a_users_own_switch_is_built_counted_saved_and_validated():
    # a 128-port variant of Tomahawk 5 at 400G (2 x breakout of 64 x 800G would be 128 ports)
    mine = dataclasses.replace(SWITCHES["tomahawk5"], name="my-radix-256", ports=128, power=1234.0)
    # 512 GPUs at 400G under top-of-rack leaves; 256 logical ports per switch
    G = fabric.fat_tree(64, switch=mine, rail_optimized=False)
    assert fabric.validate(G) == []
    leaves, spines = _count(G, "switch", tier=1), _count(G, "switch", tier=2)
    assert _count(G, "switch", model="my-radix-256") == leaves + spines > 0
    # full bisection: every leaf serves half its 256 logical ports to NICs, 512 NICs over 128 each
    assert leaves == 512 // 128
    bom = fabric.bill_of_materials(G)
    assert bom.switch_watts == pytest.approx(1234.0 * (leaves + spines))
    again = fabric.from_json(fabric.to_json(G))
    assert again.graph["specs"] == {"switch": {"my-radix-256": mine}}
    assert fabric.bill_of_materials(again).switch_watts == bom.switch_watts


def test_a_users_own_nic_and_gpu_are_used_as_given():
    nic = dataclasses.replace(NICS["cx7"], name="my-400g", power=31.0)
    gpu = dataclasses.replace(GPUS["H100"], name="H100 at 500 W", power=500.0)
    G = fabric.fat_tree(8, nic=nic, gpu=gpu)
    assert G.graph["gpu"] is gpu and _count(G, "nic", model="my-400g") == 64
    assert fabric.bill_of_materials(G).nic_watts == pytest.approx(64 * 31.0)
    assert collectives.all_reduce(G, 2**26).time > 0


def test_a_nic_at_a_rate_of_its_own_has_a_bill_of_materials():
    # 100 Gb/s per GPU (BLOOM's Omni-Path era): no catalog NIC runs at that rate
    G = fabric.fat_tree(8, nic_bandwidth=100 * Gbps)
    assert fabric.validate(G) == []
    (name, spec), = G.graph["specs"]["nic"].items()
    assert spec.bandwidth == 100 * Gbps
    assert fabric.bill_of_materials(G).nic_watts == pytest.approx(64 * spec.power)


def test_a_users_part_under_a_catalog_name_must_be_the_catalogs():
    changed = dataclasses.replace(SWITCHES["qm9700"], power=1.0)
    with pytest.raises(fabric.InvalidSpec, match="differs from the catalog's 'qm9700': give it a name of its own"):
        fabric.fat_tree(8, switch=changed, transport="infiniband")
    same = dataclasses.replace(SWITCHES["qm9700"])
    assert "specs" not in fabric.fat_tree(8, switch=same, transport="infiniband").graph


def test_a_model_name_nobody_defines_is_a_validation_problem():
    G = fabric.fat_tree(8)
    leaf = next(n for n, d in G.nodes(data=True) if d["kind"] == "switch")
    G.nodes[leaf]["model"] = "nonesuch"
    assert any("switch model='nonesuch' is neither in the catalog" in p for p in fabric.validate(G))
    G.graph["specs"] = {"router": {}}
    assert any("specs kind='router' must be one of" in p for p in fabric.validate(G))
