"""Hardware catalog: GPUs, NICs, switches and optical transceivers.

Specs are frozen, keyword-only dataclasses validated at construction. Derive a variant
with :func:`dataclasses.replace`, which validates again. Every number carries its source
in a comment; "[datasheet]" means the vendor's product page or datasheet, "[estimate]"
marks a number no public source gives, with how it was estimated.

Examples
--------
>>> from fabric.catalog import GPUS, SWITCHES
>>> GPUS["H100"].bf16_flops / 1e12
989.0
>>> SWITCHES["qm9700"].ports
64
>>> import dataclasses
>>> dataclasses.replace(GPUS["H100"], power=-1)
Traceback (most recent call last):
...
fabric.errors.InvalidSpec: power=-1 must be > 0
"""

from dataclasses import dataclass
from types import MappingProxyType
from typing import Optional

from fabric.checks import require_choice, require_int, require_positive
from fabric.units import GB, GBps, Gbps, TFLOPS, ns

TRANSPORTS = ("infiniband", "ethernet")


def _check_positive_fields(spec, names):
    for name in names:
        require_positive(name, getattr(spec, name))


@dataclass(frozen=True, kw_only=True)
class GPUSpec:
    """One accelerator.

    Attributes
    ----------
    name : str
    bf16_flops, fp8_flops : float
        Dense peak FLOP/s (no sparsity). ``fp8_flops`` is None where FP8 is unsupported.
    hbm_bytes, hbm_bandwidth : float
        Memory capacity (bytes) and bandwidth (bytes/s).
    nvlink_bandwidth : float
        NVLink bandwidth per direction, bytes/s (half the bidirectional figure NVIDIA quotes).
    nvlink_generation : int
        NVLink generation (3 Ampere, 4 Hopper, 5 Blackwell); NVLink SHARP (NVLS) needs >= 4.
    pcie_bandwidth : float
        Host PCIe bandwidth per direction, bytes/s (GPU to NIC path).
    power : float
        Board power, watts.
    """

    name: str
    bf16_flops: float
    fp8_flops: Optional[float]
    hbm_bytes: float
    hbm_bandwidth: float
    nvlink_bandwidth: float
    nvlink_generation: int
    pcie_bandwidth: float
    power: float

    def __post_init__(self):
        _check_positive_fields(
            self,
            ("bf16_flops", "hbm_bytes", "hbm_bandwidth", "nvlink_bandwidth", "pcie_bandwidth", "power"),
        )
        require_int("nvlink_generation", self.nvlink_generation, minimum=1)
        if self.fp8_flops is not None:
            require_positive("fp8_flops", self.fp8_flops)


@dataclass(frozen=True, kw_only=True)
class NICSpec:
    """One network adapter port: line rate per direction (bytes/s), host link, power (W)."""

    name: str
    bandwidth: float
    host_bandwidth: float
    power: float
    transports: tuple

    def __post_init__(self):
        _check_positive_fields(self, ("bandwidth", "host_bandwidth", "power"))
        for transport in self.transports:
            require_choice("transports", transport, TRANSPORTS)


@dataclass(frozen=True, kw_only=True)
class SwitchSpec:
    """One switch box.

    Attributes
    ----------
    ports : int
        Physical ports at full speed.
    port_bandwidth : float
        Full port speed per direction, bytes/s.
    max_breakout : int
        How many slower logical ports one physical port can be split into
        (2 means 64 x 400G can also run as 128 x 200G).
    latency : float
        Port-to-port forwarding latency, seconds.
    power : float
        Box power without optics, watts.
    transport : str
        ``"infiniband"`` or ``"ethernet"``.
    in_network_reduction : bool
        Whether the switch can reduce in the network (InfiniBand SHARP).
    """

    name: str
    ports: int
    port_bandwidth: float
    max_breakout: int
    latency: float
    power: float
    transport: str
    in_network_reduction: bool

    def __post_init__(self):
        require_int("ports", self.ports, minimum=2)
        require_int("max_breakout", self.max_breakout, minimum=1)
        _check_positive_fields(self, ("port_bandwidth", "latency", "power"))
        require_choice("transport", self.transport, TRANSPORTS)

    def radix(self, link_bandwidth):
        """Logical ports at ``link_bandwidth``, splitting ports where allowed.

        Returns 0 when the ports cannot run at that speed exactly (faster than the
        port, or a split that is not a whole number up to ``max_breakout``).

        Examples
        --------
        >>> from fabric.units import Gbps
        >>> SWITCHES["sn5600"].radix(400 * Gbps)
        128
        >>> SWITCHES["qm9700"].radix(800 * Gbps)
        0
        """
        split = self.port_bandwidth / link_bandwidth
        whole = round(split)
        if whole < 1 or whole > self.max_breakout or abs(split - whole) > 1e-9 * split:
            return 0
        return self.ports * whole


@dataclass(frozen=True, kw_only=True)
class OpticSpec:
    """One pluggable transceiver (or cable end): bandwidth per direction and power."""

    name: str
    bandwidth: float
    power: float

    def __post_init__(self):
        require_positive("bandwidth", self.bandwidth)
        if self.power < 0:
            require_positive("power", self.power)


def _table(*specs):
    return MappingProxyType({spec.name: spec for spec in specs})


GPUS = _table(
    GPUSpec(
        name="A100",
        bf16_flops=312 * TFLOPS,  # A100 datasheet: 312 TFLOPS BF16 dense
        fp8_flops=None,  # Ampere has no FP8 tensor cores (A100 datasheet)
        hbm_bytes=80 * GB,  # A100 80GB SXM4 datasheet
        hbm_bandwidth=2039 * GBps,  # A100 80GB SXM datasheet: 2,039 GB/s
        nvlink_bandwidth=300 * GBps,  # NVLink3: 600 GB/s bidirectional, 12 links (A100 datasheet)
        nvlink_generation=3,  # NVLink3 (NVIDIA NVLink product page)
        pcie_bandwidth=32 * GBps,  # PCIe Gen4 x16: 16 GT/s x 16 lanes, 128b/130b (PCI-SIG)
        power=400,  # A100 SXM TDP 400 W (datasheet)
    ),
    GPUSpec(
        name="H100",
        bf16_flops=989 * TFLOPS,  # H100 SXM datasheet: 1,979 TFLOPS with sparsity, 989 dense
        fp8_flops=1979 * TFLOPS,  # H100 SXM datasheet: 3,958 with sparsity, 1,979 dense
        hbm_bytes=80 * GB,  # H100 SXM datasheet: 80 GB HBM3
        hbm_bandwidth=3350 * GBps,  # H100 SXM datasheet: 3.35 TB/s
        nvlink_bandwidth=450 * GBps,  # NVLink4: 900 GB/s bidirectional, 18 links (datasheet)
        nvlink_generation=4,  # NVLink4 (NVIDIA NVLink product page)
        pcie_bandwidth=64 * GBps,  # PCIe Gen5 x16: 32 GT/s x 16 lanes (PCI-SIG)
        power=700,  # H100 SXM max TDP 700 W (datasheet)
    ),
    GPUSpec(
        name="H200",
        bf16_flops=989 * TFLOPS,  # H200 SXM datasheet: same tensor cores as H100 SXM
        fp8_flops=1979 * TFLOPS,  # H200 SXM datasheet
        hbm_bytes=141 * GB,  # H200 datasheet: 141 GB HBM3e
        hbm_bandwidth=4800 * GBps,  # H200 datasheet: 4.8 TB/s
        nvlink_bandwidth=450 * GBps,  # NVLink4: 900 GB/s bidirectional (datasheet)
        nvlink_generation=4,  # NVLink4 (NVIDIA NVLink product page)
        pcie_bandwidth=64 * GBps,  # PCIe Gen5 x16 (PCI-SIG)
        power=700,  # H200 SXM max TDP 700 W (datasheet)
    ),
    GPUSpec(
        name="B200",
        bf16_flops=2250 * TFLOPS,  # HGX B200 datasheet: 18 PF BF16 sparse per 8 GPUs -> 2.25 PF dense each
        fp8_flops=4500 * TFLOPS,  # HGX B200 datasheet: 36 PF FP8 sparse per 8 GPUs -> 4.5 PF dense each
        hbm_bytes=180 * GB,  # DGX B200 datasheet: 1,440 GB total over 8 GPUs
        hbm_bandwidth=8000 * GBps,  # DGX B200 datasheet: 64 TB/s over 8 GPUs
        nvlink_bandwidth=900 * GBps,  # NVLink5: 1.8 TB/s bidirectional per GPU (datasheet)
        nvlink_generation=5,  # NVLink5 (NVIDIA NVLink product page)
        pcie_bandwidth=64 * GBps,  # PCIe Gen5 x16 (PCI-SIG)
        power=1000,  # HGX B200: 1,000 W per GPU (datasheet)
    ),
    GPUSpec(
        name="GB200",
        bf16_flops=2500 * TFLOPS,  # GB200 NVL72 datasheet: 180 PF BF16 dense-equivalent / 72 GPUs
        fp8_flops=5000 * TFLOPS,  # GB200 NVL72 datasheet: 360 PF FP8 dense / 72 GPUs
        hbm_bytes=186 * GB,  # GB200 NVL72 datasheet: 13.4 TB HBM3e / 72 GPUs
        hbm_bandwidth=8000 * GBps,  # GB200 NVL72 datasheet: 576 TB/s / 72 GPUs
        nvlink_bandwidth=900 * GBps,  # NVLink5: 1.8 TB/s bidirectional per GPU (datasheet)
        nvlink_generation=5,  # NVLink5 (NVIDIA NVLink product page)
        pcie_bandwidth=64 * GBps,  # Grace-Blackwell superchip: PCIe Gen5 x16 to each NIC (datasheet)
        power=1200,  # GB200 superchip configurable to 2,700 W for 2 GPUs + CPU; ~1.2 kW per GPU [3p]
    ),
)

NICS = _table(
    NICSpec(
        name="cx6",
        bandwidth=200 * Gbps,  # ConnectX-6 VPI: 200 Gb/s HDR InfiniBand / 200GbE (datasheet)
        host_bandwidth=32 * GBps,  # PCIe Gen4 x16 host interface (datasheet)
        power=23,  # ConnectX-6 HDR single port typical power ~23 W [estimate from datasheet range]
        transports=("infiniband", "ethernet"),
    ),
    NICSpec(
        name="cx7",
        bandwidth=400 * Gbps,  # ConnectX-7: 400 Gb/s NDR InfiniBand / 400GbE (datasheet)
        host_bandwidth=64 * GBps,  # PCIe Gen5 x16 host interface (datasheet)
        power=25,  # ConnectX-7 single-port OSFP typical ~25 W [estimate from datasheet range]
        transports=("infiniband", "ethernet"),
    ),
    NICSpec(
        name="bluefield3",
        bandwidth=400 * Gbps,  # BlueField-3 B3140H SuperNIC: 1 x 400GbE (datasheet)
        host_bandwidth=64 * GBps,  # PCIe Gen5 x16 (datasheet)
        power=75,  # BlueField-3 SuperNIC up to 75 W in the low-profile form factor (datasheet)
        transports=("ethernet",),
    ),
    NICSpec(
        name="cx8",
        bandwidth=800 * Gbps,  # ConnectX-8 SuperNIC: 800 Gb/s XDR InfiniBand / 800GbE (datasheet)
        host_bandwidth=128 * GBps,  # PCIe Gen6 x16 host interface (datasheet)
        power=35,  # ConnectX-8 typical ~35 W [estimate]
        transports=("infiniband", "ethernet"),
    ),
)

SWITCHES = _table(
    SwitchSpec(
        name="qm8700",
        ports=40,  # Quantum QM8700: 40 x 200 Gb/s HDR (datasheet)
        port_bandwidth=200 * Gbps,
        max_breakout=2,  # 80 x HDR100 with splitter cables (datasheet)
        latency=130 * ns,  # Quantum HDR port-to-port ~130 ns (datasheet)
        power=253,  # QM8700 typical power with passive cables 253 W (datasheet)
        transport="infiniband",
        in_network_reduction=True,  # SHARPv2 (datasheet)
    ),
    SwitchSpec(
        name="qm9700",
        ports=64,  # Quantum-2 QM9700: 64 x 400 Gb/s NDR on 32 OSFP cages (datasheet)
        port_bandwidth=400 * Gbps,
        max_breakout=2,  # 128 x 200 Gb/s NDR200 (datasheet)
        latency=130 * ns,  # Quantum-2 port-to-port < 150 ns [3p]
        power=747,  # QM9700 typical power with passive cables 747 W (datasheet)
        transport="infiniband",
        in_network_reduction=True,  # SHARPv3 (datasheet)
    ),
    SwitchSpec(
        name="q3400",
        ports=144,  # Quantum-X800 Q3400: 144 x 800 Gb/s XDR, 115.2 Tb/s (datasheet)
        port_bandwidth=800 * Gbps,
        max_breakout=2,  # 288 x 400 Gb/s [datasheet]
        latency=130 * ns,  # Quantum-X800 latency not published; taken equal to Quantum-2 [estimate]
        power=3000,  # liquid-cooled 4U box, no public typical power; ~2x QM9700 per Tb/s [estimate]
        transport="infiniband",
        in_network_reduction=True,  # SHARPv4 (datasheet)
    ),
    SwitchSpec(
        name="sn5600",
        ports=64,  # Spectrum-4 SN5600: 64 x 800GbE, 51.2 Tb/s (datasheet)
        port_bandwidth=800 * Gbps,
        max_breakout=4,  # 128 x 400GbE or 256 x 200GbE (datasheet)
        latency=500 * ns,  # Spectrum-4 cut-through latency not published per port [estimate]
        power=1200,  # SN5600 box without optics; ~500 W ASIC plus system [estimate]
        transport="ethernet",
        in_network_reduction=False,
    ),
    SwitchSpec(
        name="tomahawk4",
        ports=64,  # Broadcom Tomahawk 4 (BCM56990): 64 x 400GbE, 25.6 Tb/s (Broadcom)
        port_bandwidth=400 * Gbps,
        max_breakout=4,  # 256 x 100GbE (Broadcom)
        latency=450 * ns,  # typical Tomahawk-class cut-through latency [estimate]
        power=800,  # 64 x 400G 2U box without optics [estimate]
        transport="ethernet",
        in_network_reduction=False,
    ),
    SwitchSpec(
        name="tomahawk5",
        ports=64,  # Broadcom Tomahawk 5 (BCM78900): 64 x 800GbE, 51.2 Tb/s (Broadcom)
        port_bandwidth=800 * Gbps,
        max_breakout=8,  # 512 x 100GbE (Broadcom)
        latency=500 * ns,  # typical Tomahawk-class cut-through latency [estimate]
        power=1200,  # 64 x 800G box without optics [estimate]
        transport="ethernet",
        in_network_reduction=False,
    ),
)

OPTICS = _table(
    OpticSpec(name="osfp-400g", bandwidth=400 * Gbps, power=9),  # 400G OSFP SR4/DR4 ~9 W [src in FACTS.md]
    OpticSpec(name="osfp-800g", bandwidth=800 * Gbps, power=17),  # 800G twin-port OSFP 17 W (NVIDIA)
    OpticSpec(name="osfp-1600g", bandwidth=1600 * Gbps, power=30),  # 1.6T OSFP ~30 W [estimate]
)
