"""Facility power against the datasheets and the published rack figure."""

import math

import pytest

import fabric
from fabric.facility import STORAGE_AND_FRONTEND, facility_power
from fabric.systems import PUBLISHED_RACK_WATTS, SYSTEMS

# DGX datasheets' maximum system power, W
DATASHEET_WATTS = {"dgx-a100": 6500, "dgx-h100": 10200, "dgx-h200": 10200, "dgx-b200": 14300}


@pytest.mark.parametrize("name, watts", sorted(DATASHEET_WATTS.items()))
def test_dgx_systems_add_up_to_their_datasheets_with_no_part_negative(name, watts):
    system = SYSTEMS[name]
    assert system.total == pytest.approx(watts)
    assert all(w > 0 for w in system.parts.values())  # the published parts fit inside the maximum
    assert system.parts["GPUs"] == 8 * fabric.GPUS[system.gpu].power


def test_gb200_nvl72_rack_added_up_from_its_parts_is_within_10_percent_of_the_published_figure():
    p = facility_power(fabric.nvl72(1), pue=1.0, storage_and_frontend=0.0)
    rack = p.it_watts - p.it["scale-out switches"] - p.it["optics"]  # the rack: its trays and their NICs
    low, high = PUBLISHED_RACK_WATTS["gb200-nvl72"]
    assert abs(rack / low - 1) <= 0.10
    assert rack <= high
    assert p.it["GPUs"] == 72 * 1200 and p.cooling == "liquid"


def test_the_parts_add_up_and_the_network_is_the_bill_of_materials():
    G = fabric.dgx_superpod(16, gpu="B200")
    p = facility_power(G, pue=1.25)
    bom = fabric.bill_of_materials(G)
    assert p.systems == 16 and p.gpus == 128 and p.system == "dgx-b200"
    assert p.it_watts == pytest.approx(sum(p.it.values()))
    assert (p.it["scale-out NICs"], p.it["scale-out switches"], p.it["optics"]) == \
        (bom.nic_watts, bom.switch_watts, bom.optic_watts)
    # 8 rail leaves of QM9700 (16 servers x 8 NICs), their 8 x 32 uplinks on 64-port spines: 4
    assert p.network_watts == bom.network_watts and p.switches == bom.switch_count == 8 + 4
    compute = p.it_watts - p.it["storage and front-end"]
    assert p.it["storage and front-end"] == pytest.approx(STORAGE_AND_FRONTEND * compute)
    assert p.facility_watts == pytest.approx(1.25 * p.it_watts)
    assert p.cooling_and_distribution == pytest.approx(0.25 * p.it_watts)
    assert p.watts_per_gpu == pytest.approx(p.facility_watts / 128)
    assert "facility power" in str(p) and "<table>" in p._repr_html_() and p.to_dict()["pue"] == 1.25


def test_a_fabric_with_other_nics_counts_its_own():
    cx7 = facility_power(fabric.fat_tree(8), pue=1.1)
    cx8 = facility_power(fabric.fat_tree(8, nic="cx8", nic_bandwidth=800 * fabric.units.Gbps, switch="tomahawk6"),
                         pue=1.1)
    assert cx7.it["scale-out NICs"] == 64 * fabric.NICS["cx7"].power
    assert cx8.it["scale-out NICs"] == 64 * fabric.NICS["cx8"].power
    assert cx7.it["GPUs"] == cx8.it["GPUs"] and cx7.it["rest of the system"] == cx8.it["rest of the system"]


@pytest.mark.parametrize("call, message", [
    (lambda: facility_power(fabric.nvl72(1), pue=0.95), "pue=0.95 must be between 1 and 3"),
    (lambda: facility_power(fabric.nvl72(1)), "missing 1 required keyword-only argument: 'pue'"),
    (lambda: facility_power(fabric.nvl72(1), pue=1.2, storage_and_frontend=1.0), "storage_and_frontend=1.0 must be"),
    (lambda: facility_power(fabric.nvl72(1), pue=1.2, system="dgx-h100"),
     "system='dgx-h100' carries H100 GPUs; this fabric has GB200"),
    (lambda: facility_power(fabric.nvl72(1), pue=1.2, system="dgx-x"), "system='dgx-x' must be one of"),
    (lambda: facility_power(fabric.fat_tree(4, gpus_per_node=4), pue=1.2),
     "no system power is known for H100 servers of 4 GPUs: give system="),
    (lambda: fabric.cluster_for_power(1e6, rack="tpu", pue=1.2), "rack='tpu' must be one of"),
    (lambda: fabric.cluster_for_power(1e5, rack="gb200-nvl72", pue=1.2, progress=False),
     "watts=100000 cannot power one gb200-nvl72"),
])
def test_bad_input_names_the_field(call, message):
    with pytest.raises((fabric.InvalidSpec, fabric.Infeasible, TypeError), match=message.replace("(", r"\(")):
        call()


@pytest.mark.parametrize("rack, watts", [("dgx-h100", 3e6), ("gb200-nvl72", 5e6)])
def test_cluster_for_power_is_the_largest_that_fits(rack, watts, capsys):
    G = fabric.cluster_for_power(watts, rack=rack, pue=1.2)
    p = G.graph["facility_power"]
    assert p["facility_watts"] <= watts and G.graph["power_budget"] == watts
    assert "cluster_for_power:" in capsys.readouterr().err
    # one more system does not fit
    name, _ = fabric.facility.RACK_PRESETS[rack]
    bigger = fabric.preset(name, gpus=(p["systems"] + 1) * SYSTEMS[rack].gpus)
    assert facility_power(bigger, pue=1.2).facility_watts > watts
    # and the count is what the per-system power implies, within one system
    per_system = p["facility_watts"] / p["systems"]
    assert abs(p["systems"] - math.floor(watts / per_system)) <= 1


def test_the_power_breakdown_survives_save_and_load(tmp_path):
    G = fabric.cluster_for_power(2e6, rack="dgx-b200", pue=1.3, progress=False)
    fabric.save(G, tmp_path / "g.json")
    assert fabric.load(tmp_path / "g.json").graph["facility_power"] == G.graph["facility_power"]


def test_the_figure_shows_every_part_and_the_cooling():
    p = facility_power(fabric.nvl72(2), pue=1.2)
    fig = p.figure()
    assert list(fig.data[0].y) == list(p.it) + ["cooling and distribution"]
    assert sum(fig.data[0].x) * 1e6 == pytest.approx(p.facility_watts)
