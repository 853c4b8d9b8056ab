"""Compute systems (DGX servers, NVL72 racks) and the power of their parts, from datasheets.

A :class:`SystemPower` is one server or rack as a facility sees it: its GPUs, CPUs and the
rest, in watts at the maximum its datasheet gives. The scale-out NICs are not part of it:
:func:`fabric.facility_power` takes them from the fabric graph, so a fabric with other NICs
than the datasheet's counts its own.

DGX datasheets publish only the system's maximum; the parts with a published power (GPUs,
CPUs, NICs) are taken from theirs and the rest (NVSwitch chips, memory, drives, fans, power
conversion) is that maximum less them, so a DGX adds up to its datasheet exactly. NVIDIA
publishes no maximum for the NVL72 racks; they are added up from their parts, and
:data:`PUBLISHED_RACK_WATTS` keeps the rack figures that were reported, to compare with.

Examples
--------
>>> dgx = SYSTEMS["dgx-h100"]
>>> dgx.gpus, round(dgx.total), round(sum(dgx.parts.values()) + dgx.datasheet_nic_watts)
(8, 10200, 10200)
>>> round(SYSTEMS["gb200-nvl72"].total / 1e3, 1)      # kW, added up from its parts
117.9
"""

from dataclasses import dataclass
from types import MappingProxyType

from fabric.catalog import GPUS, NICS
from fabric.checks import require_positive
from fabric.errors import InvalidSpec


@dataclass(frozen=True)
class SystemPower:
    """One compute system's power by part.

    Attributes
    ----------
    name : str
    gpu : str
        The catalog GPU it carries.
    gpus : int
        GPUs per system (8 per DGX, 72 per NVL72 rack).
    parts : dict
        Watts per system by part, without the scale-out NICs.
    datasheet_nic_watts : float
        Watts of the scale-out NICs the datasheet's system carries (one per GPU), which
        the fabric graph's own NICs replace.
    cooling : str
        ``"air"`` or ``"liquid"``.
    source : str
    """

    name: str
    gpu: str
    gpus: int
    parts: dict
    datasheet_nic_watts: float
    cooling: str
    source: str

    def __post_init__(self):
        for part, watts in self.parts.items():
            require_positive(f"{self.name} part {part!r} watts", watts)
        if self.cooling not in ("air", "liquid"):
            raise InvalidSpec(f"cooling={self.cooling!r} must be 'air' or 'liquid'")

    @property
    def total(self):
        """Watts of the whole system with the datasheet's NICs."""
        return sum(self.parts.values()) + self.datasheet_nic_watts


def _dgx(name, gpu, datasheet_watts, cpu_watts, nic, extra_nics, source):
    """A DGX of 8 GPUs: GPUs, CPUs and NICs at their published power, the rest the balance to
    the datasheet's maximum."""
    gpus = 8 * GPUS[gpu].power
    compute_nics = 8 * NICS[nic].power
    known = gpus + cpu_watts + compute_nics + extra_nics
    return SystemPower(
        name=name, gpu=gpu, gpus=8,
        parts={"GPUs": gpus, "CPUs": cpu_watts, "other NICs and DPUs": extra_nics,
               "rest of the system": datasheet_watts - known},
        datasheet_nic_watts=compute_nics, cooling="air", source=source,
    )


# Per NVL72 compute tray (2 superchips, 4 GPUs): NICs and DPUs from the catalog, the rest
# estimated. DGX GB200 user guide (hardware): 4 x ConnectX-7 single-port 400G for the compute
# fabric and 2 x BlueField-3 for storage and management per tray; 4 E1.S drives per tray
# (ServeTheHome's GTC 2024 photos as reported).
NVL72_TRAYS = 18
NVL72_SWITCH_TRAYS = 9  # DGX GB200 user guide: 9 x 1RU NVLink switch trays per rack
# Grace CPU with its LPDDR5X: the GB200 superchip's "configurable up to 2,700 W" (2 GPUs and
# 1 Grace, NVIDIA's GB200 figures as reported [3p]) less two 1,200 W GPUs.
GRACE_WATTS = 2700 - 2 * 1200
TRAY_DRIVES_WATTS = 4 * 20  # [estimate: ~20 W per E1.S NVMe drive at full load]
TRAY_BOARD_WATTS = 150  # [estimate: fans for the air-cooled parts, BMC, board; not published]
# [estimate: an NVLink switch tray holds 2 NVLink 5 switch chips; NVIDIA publishes no power]
NVLINK_SWITCH_TRAY_WATTS = 1000
RACK_MANAGEMENT_WATTS = 2 * 100  # [estimate: 2 management ToR switches per rack (user guide)]
# [estimate: rack power shelves converting at ~97.5% (80 PLUS Titanium class): the loss as a
# share of the load they feed]
POWER_SHELF_LOSS = 0.025


def _nvl72(name, gpu, nic, source):
    gpus = 72 * GPUS[gpu].power
    parts = {
        "GPUs": gpus,
        "CPUs": 36 * GRACE_WATTS,
        "NVLink switch trays": NVL72_SWITCH_TRAYS * NVLINK_SWITCH_TRAY_WATTS,
        "other NICs and DPUs": NVL72_TRAYS * 2 * NICS["bluefield3"].power,
        "rest of the system": NVL72_TRAYS * (TRAY_DRIVES_WATTS + TRAY_BOARD_WATTS) + RACK_MANAGEMENT_WATTS,
    }
    compute_nics = 72 * NICS[nic].power
    parts["power conversion"] = POWER_SHELF_LOSS * (sum(parts.values()) + compute_nics)
    return SystemPower(name=name, gpu=gpu, gpus=72, parts=parts, datasheet_nic_watts=compute_nics,
                       cooling="liquid", source=source)


SYSTEMS = MappingProxyType({
    s.name: s for s in (
        # DGX A100 datasheet: 6.5 kW max; 2 x AMD EPYC 7742 (225 W TDP each, AMD spec); 8 single-port
        # ConnectX-6 for the compute fabric and 2 dual-port ConnectX-6 for storage
        _dgx("dgx-a100", "A100", 6500, 2 * 225, "cx6", 2 * NICS["cx6"].power,
             "DGX A100 datasheet (6.5 kW max); AMD EPYC 7742 TDP 225 W"),
        # DGX H100 datasheet: ~10.2 kW max; 2 x Intel Xeon Platinum 8480C (350 W TDP each [3p]);
        # 8 x ConnectX-7 compute and 2 x BlueField-3 DPUs for storage and in-band management
        _dgx("dgx-h100", "H100", 10200, 2 * 350, "cx7", 2 * NICS["bluefield3"].power,
             "DGX H100 datasheet (10.2 kW max); Xeon Platinum 8480C TDP 350 W [3p]"),
        # DGX H200 datasheet: ~10.2 kW max, the DGX H100 system with H200 GPUs
        _dgx("dgx-h200", "H200", 10200, 2 * 350, "cx7", 2 * NICS["bluefield3"].power,
             "DGX H200 datasheet (10.2 kW max); Xeon Platinum 8480C TDP 350 W [3p]"),
        # DGX B200 datasheet: ~14.3 kW max; 2 x Intel Xeon Platinum 8570 (350 W TDP each [3p]);
        # 8 x ConnectX-7 compute and 2 x BlueField-3
        _dgx("dgx-b200", "B200", 14300, 2 * 350, "cx7", 2 * NICS["bluefield3"].power,
             "DGX B200 datasheet (14.3 kW max); Xeon Platinum 8570 TDP 350 W [3p]"),
        _nvl72("gb200-nvl72", "GB200", "cx7",
               "GB200 NVL72: 72 GPUs at 1,200 W, 36 Grace, 18 compute and 9 NVLink switch trays (DGX GB200 user "
               "guide); superchip 2,700 W [3p]; tray and switch-tray figures estimated"),
        # GB300 NVL72: ConnectX-8 800G per GPU; the tray layout taken as GB200's [estimate]
        _nvl72("gb300-nvl72", "GB300", "cx8",
               "GB300 NVL72: 72 GPUs at 1,400 W [3p], ConnectX-8 per GPU; the rest as GB200 NVL72 (estimated)"),
    )
})

# Rack power as reported, to compare the added-up racks with: GB200 NVL72 ~120 kW (NVIDIA at
# GTC 2024, as ServeTheHome reported it: "consumes 120 kW"); integrators quote up to ~132 kW [3p].
PUBLISHED_RACK_WATTS = MappingProxyType({"gb200-nvl72": (120e3, 132e3)})

# The system a fabric's servers are, by GPU (8-GPU servers) or rack (NVL72 domains).
SERVER_OF_GPU = MappingProxyType({"A100": "dgx-a100", "H100": "dgx-h100", "H200": "dgx-h200", "B200": "dgx-b200"})
RACK_OF_GPU = MappingProxyType({"GB200": "gb200-nvl72", "GB300": "gb300-nvl72"})
