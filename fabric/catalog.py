"""Hardware catalog: GPUs, NICs, switches and optical transceivers.

Specs are frozen, keyword-only dataclasses validated at construction. Derive a variant
with :func:`dataclasses.replace`, which validates again. Every number carries its source
in a comment. A vendor document named without a tag was read; "[3p]" means a third-party
page quoting the vendor figure (the vendor page itself was not reachable); "[unverified]"
means no public copy of the figure was found; "[estimate: how]" marks a number no public
source gives, with how it was estimated. "Sparse" figures use 2:4 structured sparsity;
this catalog stores dense peaks (half the sparse figure).

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
from fabric.errors import InvalidSpec
from fabric.schema import TRANSPORTS
from fabric.units import GB, GBps, Gbps, GiB, TFLOPS, ns


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
    matmul_efficiency : float
        Fraction of ``bf16_flops`` the best large BF16 matmul reaches on the GPU (its
        "maximum achievable matmul FLOPS"): what a real GEMM can approach, the clock the
        board sustains under load included.
    fp8_matmul_efficiency : float, optional
        The same for FP8 matmuls, of ``fp8_flops``; None where FP8 is unsupported or not
        measured (then ``matmul_efficiency`` applies).
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
    matmul_efficiency: float
    fp8_matmul_efficiency: Optional[float] = None

    def __post_init__(self):
        _check_positive_fields(
            self,
            ("bf16_flops", "hbm_bytes", "hbm_bandwidth", "nvlink_bandwidth", "pcie_bandwidth", "power",
             "matmul_efficiency"),
        )
        if self.matmul_efficiency > 1:
            raise InvalidSpec(f"matmul_efficiency={self.matmul_efficiency} must be <= 1")
        require_int("nvlink_generation", self.nvlink_generation, minimum=1)
        if self.fp8_flops is not None:
            require_positive("fp8_flops", self.fp8_flops)
        if self.fp8_matmul_efficiency is not None:
            require_positive("fp8_matmul_efficiency", self.fp8_matmul_efficiency)
            if self.fp8_matmul_efficiency > 1:
                raise InvalidSpec(f"fp8_matmul_efficiency={self.fp8_matmul_efficiency} must be <= 1")


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


# All GPU figures are [3p]: NVIDIA's datasheet/spec-table values as reproduced by several third-party
# pages (nvidia.com itself was not reachable), which agreed with each other on every number below.
# matmul_efficiency: measured maximum achievable BF16 matmul TFLOPS over the dense peak, from the
# MAMF tables of S. Bekman's "Machine Learning Engineering" (github.com/stas00/ml-engineering,
# compute/accelerator/README.md and its H200-vs-B200 guide), measured with its mamf-finder.py;
# fp8_matmul_efficiency: the FP8 MAMF of that guide (H200 SXM 1,453.4 of 1,979 TFLOPS; B200 SXM
# 3,432.5 of 4,500).
#
# Blackwell is the exception. Its MAMF fractions (B200: 0.776 BF16, 0.763 FP8) are what an isolated
# matmul reaches; the training runs published on Blackwell (NVIDIA dgxc-benchmarking 2025, GB200)
# reach much less. So every Blackwell GPU takes the fractions fitted to the GB200 runs:
# collectives.training.calibration.fit_gpu_rates fits them to all ten GB200 rows of the package data
# (training_runs.csv, training_runs_added.csv) together, 1,578 BF16 and 2,590 FP8 TFLOP/s on GB200
# (times the training GEMMs' gemm_efficiency, which is fitted to the other GPUs' runs).
# B200 and GB300 borrow them [estimate: the same Blackwell die and software, no training run of
# theirs published], which keeps the family in the order of its peaks (B200 at B200's MAMF would
# out-run GB200 by 14%).
BLACKWELL_MATMUL_EFFICIENCY = 0.631
BLACKWELL_FP8_MATMUL_EFFICIENCY = 0.518
GPUS = _table(
    GPUSpec(
        name="A100",
        bf16_flops=312 * TFLOPS,  # A100 datasheet: BF16 312 TFLOPS dense, 624 sparse [3p copies]
        fp8_flops=None,  # Ampere tensor cores have no FP8 (A100 datasheet lists TF32/BF16/FP16/INT8/INT4)
        hbm_bytes=80 * GiB,  # A100 "80GB" HBM2e is 80 GiB: nvidia-smi reports 81,920 MiB [3p]
        hbm_bandwidth=2039 * GBps,  # A100 80GB SXM datasheet: 2,039 GB/s [3p]
        nvlink_bandwidth=300 * GBps,  # A100 datasheet: NVLink3 600 GB/s bidirectional (12 links) -> 300 per direction
        nvlink_generation=3,  # NVLink3 (A100 datasheet)
        pcie_bandwidth=32 * GBps,  # A100 datasheet: PCIe Gen4 64 GB/s bidirectional -> 32 per direction
        power=400,  # A100 SXM max TDP 400 W (datasheet) [3p]
        matmul_efficiency=0.859,  # MAMF A100 SXM: 267.9 of 312 TFLOPS (CUDA 12.1)
    ),
    GPUSpec(
        name="H100",
        # H100 SXM datasheet: BF16 1,979 TFLOPS sparse -> 989.5 dense; Hopper whitepaper: 989.4 dense.
        # Rounded to 989 (within 0.05%).
        bf16_flops=989 * TFLOPS,
        fp8_flops=1979 * TFLOPS,  # H100 SXM datasheet: FP8 3,958 TFLOPS sparse; whitepaper 1,978.9 dense
        hbm_bytes=80 * GiB,  # H100 SXM "80 GB" HBM3 is 80 GiB: nvidia-smi reports 81,559 MiB [3p]
        hbm_bandwidth=3350 * GBps,  # H100 SXM datasheet: 3.35 TB/s
        nvlink_bandwidth=450 * GBps,  # H100 SXM datasheet: NVLink4 900 GB/s bidirectional (18 links) -> 450
        nvlink_generation=4,  # NVLink4 (H100 datasheet)
        pcie_bandwidth=64 * GBps,  # H100 SXM datasheet: PCIe Gen5 128 GB/s bidirectional -> 64 per direction
        power=700,  # H100 SXM datasheet: max TDP up to 700 W (configurable)
        matmul_efficiency=0.801,  # MAMF H100 SXM: 792.1 of 989 TFLOPS (CUDA 12.1)
        fp8_matmul_efficiency=0.734,  # FP8 MAMF of the H200 SXM, the same GH100 compute: 1,453.4 of 1,979
    ),
    GPUSpec(
        name="H200",
        bf16_flops=989 * TFLOPS,  # H200 SXM datasheet: BF16 1,979 TFLOPS sparse (same GH100 as H100) -> ~989 dense
        fp8_flops=1979 * TFLOPS,  # H200 SXM datasheet: FP8 3,958 TFLOPS sparse -> 1,979 dense
        hbm_bytes=141 * GB,  # H200 datasheet: 141 GB HBM3e
        hbm_bandwidth=4800 * GBps,  # H200 datasheet: 4.8 TB/s
        nvlink_bandwidth=450 * GBps,  # H200 datasheet: NVLink4 900 GB/s bidirectional -> 450 per direction
        nvlink_generation=4,  # NVLink4 (H200 datasheet)
        pcie_bandwidth=64 * GBps,  # H200 datasheet: PCIe Gen5 128 GB/s bidirectional -> 64 per direction
        power=700,  # H200 SXM datasheet: max TDP up to 700 W (configurable)
        matmul_efficiency=0.803,  # MAMF H100/H200 SXM: 794.5 of 989 TFLOPS
        fp8_matmul_efficiency=0.734,  # FP8 MAMF H200 SXM: 1,453.4 of 1,979 TFLOPS
    ),
    GPUSpec(
        name="B200",
        # HGX B200 spec table: BF16 36 PF / FP8 72 PF with sparsity per 8 GPUs, i.e. 4.5 / 9 PF sparse
        # per GPU -> 2.25 / 4.5 PF dense [3p copies of the NVIDIA table]
        bf16_flops=2250 * TFLOPS,
        fp8_flops=4500 * TFLOPS,
        hbm_bytes=180 * GB,  # HGX B200 per-GPU spec: 180 GB HBM3e (DGX B200: 1,440 GB over 8 GPUs) [3p]
        # HGX B200 per-GPU spec: 7.7 TB/s ("up to 62 TB/s" per 8 GPUs) [3p]; the DGX B200 datasheet's
        # 64 TB/s total would give 8.0
        hbm_bandwidth=7700 * GBps,
        nvlink_bandwidth=900 * GBps,  # HGX B200 spec: NVLink5 1.8 TB/s per GPU (bidirectional) -> 900
        nvlink_generation=5,  # NVLink5 (HGX B200 spec)
        pcie_bandwidth=64 * GBps,  # HGX B200 per-GPU spec: PCIe Gen5 128 GB/s bidirectional -> 64 [3p]
        power=1000,  # HGX B200 per-GPU spec: max TDP configurable up to 1,000 W [3p]
        # Blackwell's fitted fractions (above); B200 SXM's own MAMF is 1,745.0 of 2,250 TFLOPS BF16
        # and 3,432.5 of 4,500 FP8
        matmul_efficiency=BLACKWELL_MATMUL_EFFICIENCY,
        fp8_matmul_efficiency=BLACKWELL_FP8_MATMUL_EFFICIENCY,
    ),
    GPUSpec(
        name="GB200",
        # GB200 NVL72 spec: BF16 360 PF / FP8 720 PF with sparsity per 72 GPUs, i.e. 5 / 10 PF sparse
        # per GPU -> 2.5 / 5 PF dense [3p copies of the NVIDIA table]
        bf16_flops=2500 * TFLOPS,
        fp8_flops=5000 * TFLOPS,
        hbm_bytes=186 * GB,  # GB200 NVL72 per-GPU spec: 186 GB HBM3e (13.4 TB per 72 GPUs) [3p]
        hbm_bandwidth=8000 * GBps,  # GB200 NVL72 per-GPU spec: 8 TB/s (576 TB/s per 72 GPUs) [3p]
        nvlink_bandwidth=900 * GBps,  # GB200 NVL72 spec: NVLink5 1.8 TB/s per GPU (bidirectional) -> 900
        nvlink_generation=5,  # NVLink5 (GB200 NVL72 spec)
        pcie_bandwidth=64 * GBps,  # GB200 NVL72 per-GPU spec: PCIe Gen5 128 GB/s bidirectional -> 64 [3p]
        power=1200,  # GB200 NVL72 per-GPU spec: max TDP configurable up to 1,200 W [3p]
        # [fitted: no GB200 matmul benchmark is published; Blackwell's fractions (above) are the fit
        # to the GB200 runs: B200's MAMF fractions of this higher peak made them 6-37% too fast]
        matmul_efficiency=BLACKWELL_MATMUL_EFFICIENCY,
        fp8_matmul_efficiency=BLACKWELL_FP8_MATMUL_EFFICIENCY,
    ),
    GPUSpec(
        name="GB300",
        # GB300 NVL72 (Blackwell Ultra): FP8 360 PF and BF16 180 PF dense per 72 GPUs, i.e. 5 / 2.5 PF
        # dense per GPU, as GB200; its gains are FP4 and attention [3p: Verda's GB300 NVL72 page,
        # G. Lockwood's B300 notes quoting NVIDIA's GTC 2025 figures]
        bf16_flops=2500 * TFLOPS,
        fp8_flops=5000 * TFLOPS,
        hbm_bytes=288 * GB,  # 288 GB HBM3e in 12-high stacks, 20 TB per 72 GPUs [3p, as above]
        hbm_bandwidth=8000 * GBps,  # 8 TB/s (576 TB/s per 72 GPUs) [3p, as above]
        nvlink_bandwidth=900 * GBps,  # NVLink5 1.8 TB/s per GPU bidirectional (130 TB/s per rack) -> 900 [3p]
        nvlink_generation=5,
        # [unverified: B300 moves to PCIe Gen6 (256 GB/s per direction per Lockwood's notes); the NIC
        # path is ConnectX-8's, so Gen5's 64 GB/s is kept as the conservative figure]
        pcie_bandwidth=64 * GBps,
        power=1400,  # 1,400 W max TDP per GPU [3p, as above]
        matmul_efficiency=BLACKWELL_MATMUL_EFFICIENCY,  # [estimate: Blackwell's fitted fractions (above)]
        fp8_matmul_efficiency=BLACKWELL_FP8_MATMUL_EFFICIENCY,
    ),
)

NICS = _table(
    NICSpec(
        name="cx6",
        bandwidth=200 * Gbps,  # ConnectX-6 VPI MCX653105A-HDAT: 1 x 200 Gb/s HDR IB / 200GbE (NVIDIA CX6 manual)
        host_bandwidth=32 * GBps,  # NVIDIA CX6 VPI manual: PCIe Gen 3.0/4.0 x16 -> Gen4 16 GT/s x16 ~ 32 GB/s
        # [estimate: the CX6 manual's power table was not reachable; placed between the 7 nm ConnectX-7
        # NDR200 card (16.7 W) and NDR card (24.9 W), since CX6 is the older 16 nm part]
        power=23,
        transports=("infiniband", "ethernet"),
    ),
    NICSpec(
        name="cx7",
        bandwidth=400 * Gbps,  # ConnectX-7 MCX75310AAS-NEAT: 1 x OSFP 400 Gb/s NDR IB / 400GbE (CX7 manual)
        host_bandwidth=64 * GBps,  # NVIDIA CX7 manual: PCIe Gen5 x16 (32 GT/s) -> ~64 GB/s per direction
        power=24.9,  # CX7 manual: MCX75310AAS-NEAT typical power, passive cables, PCIe Gen5 x16: 24.9 W [3p]
        transports=("infiniband", "ethernet"),
    ),
    NICSpec(
        name="bluefield3",
        # BlueField-3 B3140H HHHL SuperNIC: 1 x QSFP112, 400GbE (default mode) / NDR IB (NVIDIA BF3 user guide)
        bandwidth=400 * Gbps,
        host_bandwidth=64 * GBps,  # NVIDIA BF3 user guide: B3140H PCIe Gen 5.0 x16 edge connector
        # [estimate: upper bound; no published figure found. The HHHL B3140H has no auxiliary power
        # connector (the FHHL B3220/B3240 need an 8-pin ATX, DOCA release notes), so it is limited to
        # the 75 W of a PCIe CEM x16 slot]
        power=75,
        transports=("ethernet", "infiniband"),  # 400GbE default mode, NDR IB supported (BF3 user guide)
    ),
    NICSpec(
        name="cx8",
        # ConnectX-8 C8180 SuperNIC: 1 x OSFP, 800 Gb/s XDR InfiniBand (CX8 manual). Ethernet runs as
        # 2 x 400GbE; a single 800GbE port is not supported (CX8 firmware release notes v40.44)
        bandwidth=800 * Gbps,
        host_bandwidth=128 * GBps,  # CX8 manual: PCIe Gen6 x16 edge connector (64 GT/s x16) ~ 128 GB/s per direction
        # [estimate: no published figure found; ConnectX-7 NDR card 24.9 W scaled up for twice the
        # line rate and the integrated PCIe Gen6 switch]
        power=35,
        transports=("infiniband", "ethernet"),
    ),
)

SWITCHES = _table(
    SwitchSpec(
        name="qm8700",
        ports=40,  # QM8700 product brief: 40 x HDR 200 Gb/s QSFP56; "16 Tb/s" counts both directions [3p]
        port_bandwidth=200 * Gbps,
        max_breakout=2,  # QM8700 product brief: 80 x HDR100 100 Gb/s with splitter cables [3p]
        latency=90 * ns,  # QM8700 product brief: 90 ns switch latency [3p: IT4I Barbora network docs]
        # [unverified: attributed to the NVIDIA QM87xx manual (typical, passive cables); no public
        # copy found. The model has no field for max power with active cables/optics]
        power=253,
        transport="infiniband",
        in_network_reduction=True,  # Quantum HDR: SHARP (SHARPv2), QM8700 product brief [3p]
    ),
    SwitchSpec(
        name="qm9700",
        # NVIDIA QM97xx manual: 32 OSFP cages, 2 logical NDR ports each -> 64 x 400 Gb/s (also the
        # NVIDIA mlx-platform Linux driver commit for MQM97xx). The quoted 51.2 Tb/s is bidirectional.
        ports=64,
        port_bandwidth=400 * Gbps,
        max_breakout=2,  # 128 x NDR200: a twin-port cage splits 1:4 into 200 Gb/s (NVIDIA MCP7Y50 splitter spec)
        latency=130 * ns,  # Quantum-2 port-to-port ~130 ns, "< 130 ns" in some copies [3p]
        # QM9700 system power 747 W (typical; the unmanaged QM9790 is 640 W) [3p]. Max power with
        # active optics is not modelled
        power=747,
        transport="infiniband",
        in_network_reduction=True,  # Quantum-2: SHARPv3 [3p]
    ),
    SwitchSpec(
        name="q3400",
        # Quantum-X800 Q3400-RA: 144 x 800 Gb/s XDR (4 x 200G lanes) on 72 twin-port OSFP cages,
        # 115.2 Tb/s, 4U [3p; NVIDIA Quantum-X800 page]
        ports=144,
        port_bandwidth=800 * Gbps,
        # [unverified: a 2 x 400 Gb/s split (288 logical ports) is assumed by analogy with Quantum-2's
        # 1:2 split; no public source for the Q3400 split modes was found]
        max_breakout=2,
        latency=130 * ns,  # [estimate: Quantum-X800 port latency not published; taken equal to Quantum-2]
        # [estimate: no public typical power. Same energy per bit as QM9700 (747 W for 64 x 400 Gb/s)
        # scaled to 144 x 800 Gb/s (4.5x) gives ~3,360 W; likely high, as Quantum-X800 is newer silicon]
        power=3360,
        transport="infiniband",
        in_network_reduction=True,  # Quantum-X800: SHARPv4 [3p]
    ),
    SwitchSpec(
        name="sn5600",
        ports=64,  # NVIDIA SN5000 manual (Data Interfaces): SN5600 64 x 800GbE (100 Gb/s lanes), 51.2 Tb/s
        port_bandwidth=800 * Gbps,
        max_breakout=4,  # SN5000 manual: 128 x 400GbE or 256 x 200GbE (256 ports also at 100/50/25/10GbE)
        # [estimate: no public port-to-port figure for Spectrum-4; 500 ns taken as a sub-microsecond
        # cut-through Ethernet ASIC figure, well above Quantum-2's ~130 ns]
        latency=500 * ns,
        power=940,  # SN5000 manual: SN5600 typical power with passive cables (ATIS) 940 W, 2U [3p]
        transport="ethernet",
        in_network_reduction=False,
    ),
    SwitchSpec(
        name="sn6810",
        # Spectrum-6 SN6810, SN5600's successor (Spectrum-X Photonics, GTC 2025; shipping 2H 2026):
        # 102.4 Tb/s, 128 x 800G, co-packaged optics, liquid-cooled [3p: NVIDIA announcement as reported]
        ports=128,
        port_bandwidth=800 * Gbps,
        max_breakout=2,  # [unverified: 200G lanes, so 800G ports split 2 x 400G as on SN5600's ports]
        latency=500 * ns,  # [estimate: as SN5600]
        # [estimate: two SN5600s' 940 W for twice the bandwidth, plus ~9 W of co-packaged optics per
        # port (NVIDIA's Hot Chips 2025 figure); the bill of materials still counts a pluggable optic
        # per port, an upper bound for this part]
        power=3000,
        transport="ethernet",
        in_network_reduction=False,
    ),
    SwitchSpec(
        name="tomahawk4",
        # Broadcom Tomahawk 4 (BCM56990): 25.6 Tb/s from 512 x 50G PAM4 SerDes, 64 x 400GbE [3p: Linley
        # Group, Tom's Hardware on Broadcom's announcement]
        ports=64,
        port_bandwidth=400 * Gbps,
        max_breakout=4,  # 128 x 200GbE or 256 x 100GbE [3p: Linley Group]
        latency=450 * ns,  # [estimate: Broadcom publishes no port-to-port latency; sub-microsecond cut-through]
        # [estimate: ASIC ~450 W (TechInsights puts Tomahawk 5 at ~500 W, ~10% above Tomahawk 4) plus
        # ~440 W system overhead taken from SN5600 (940 W box minus ~500 W Spectrum-4 ASIC)]
        power=900,
        transport="ethernet",
        in_network_reduction=False,
    ),
    SwitchSpec(
        name="tomahawk5",
        # Broadcom Tomahawk 5 (BCM78900): 51.2 Tb/s from 512 x 100G PAM4 SerDes, 64 x 800GbE
        # [3p: Broadcom launch release as reported by Converge Digest, TechInsights]
        ports=64,
        port_bandwidth=800 * Gbps,
        # Broadcom: 128 x 400GbE or 256 x 200GbE, the highest 200GbE radix; 100GbE also tops out at
        # 256 ports [3p], so no 1:8 split (was 8)
        max_breakout=4,
        latency=500 * ns,  # [estimate: Broadcom publishes no port-to-port latency; sub-microsecond cut-through]
        # [estimate: ASIC ~450-500 W (TechInsights estimate ~500 W; 450 W typical per ChipCraft) plus
        # ~440 W system overhead taken from SN5600, a 2U 64 x 800G box]
        power=950,
        transport="ethernet",
        in_network_reduction=False,
    ),
    SwitchSpec(
        name="tomahawk6",
        # Broadcom Tomahawk 6 (BCM78910): 102.4 Tb/s, 64 x 1.6TbE, or 512 x 200G from 200G PAM4
        # SerDes (1,024 x 100G on the 100G-SerDes part) [3p: ServeTheHome and All About Circuits on
        # Broadcom's June 2025 launch]
        ports=64,
        port_bandwidth=1600 * Gbps,
        max_breakout=8,  # 512 x 200G [3p, as above]
        latency=500 * ns,  # [estimate: no published port-to-port latency; taken equal to Tomahawk 5's]
        # [estimate: no published box power; Tomahawk 5's box energy per bit (950 W for 51.2 Tb/s)
        # at twice the bandwidth]
        power=1900,
        transport="ethernet",
        in_network_reduction=False,
    ),
    SwitchSpec(
        name="arista-7808r3",
        # Arista 7800R3 white paper: the 8-slot 7808R3 "enables 288 x 400G" (16 RU; the 4-slot 7804R3
        # 144 x 400G), a deep-buffer VoQ chassis on Broadcom Jericho2-class packet processors, the
        # "universal spine" class Meta's RoCE clusters use above the racks [3p: a copy of the paper]
        ports=288,
        port_bandwidth=400 * Gbps,
        max_breakout=4,  # [unverified: 400G ports split 4 x 100G as on Arista's fixed 400G boxes]
        # [estimate: no published figure; a cell-switched chassis crosses an ingress and an egress
        # packet processor and the fabric: ~2 us, several times a single-ASIC box]
        latency=2000 * ns,
        # [estimate: no typical power found; ~36 W per Tb/s (twice a fixed 51.2T box's 18 W per Tb/s,
        # for fabric cards, line-card processors and their packet memory) x 115.2 Tb/s]
        power=4150,
        transport="ethernet",
        in_network_reduction=False,
    ),
    SwitchSpec(
        name="arista-7816r4",
        # Arista 7800R4 (Jericho3-AI class line cards, 800G): [unverified: a 16-slot chassis of 36 x 800G
        # line cards, 576 x 800G, by analogy with the 7800R3's 36-port 400G cards; Arista's R4 pages
        # were not reachable]
        ports=576,
        port_bandwidth=800 * Gbps,
        max_breakout=2,  # [unverified: 800G ports split 2 x 400G]
        latency=2000 * ns,  # [estimate: as arista-7808r3]
        # [estimate: ~36 W per Tb/s, as arista-7808r3, x 460.8 Tb/s]
        power=16600,
        transport="ethernet",
        in_network_reduction=False,
    ),
)

OPTICS = _table(
    # 200G QSFP56 SR4 (HDR / 200GbE): 4.5 W typical, 5.0 W max (NVIDIA MMA1T00-VS specifications)
    OpticSpec(name="qsfp56-200g", bandwidth=200 * Gbps, power=4.5),
    # 400G single-port OSFP: SR4 MMA4Z00-NS400 8 W typical / 9 W max, DR4 MMS4X00-NS400 9 W (NVIDIA LinkX specs)
    OpticSpec(name="osfp-400g", bandwidth=400 * Gbps, power=9),
    # 800G twin-port (2 x 400G) switch-side OSFP: single-mode DR8 MMS4X00-NS 17 W, multimode SR8
    # MMA4Z00-NS 15 W (NVIDIA LinkX specs); the Class 8 17 W cage limit of QM97xx (NVIDIA manual)
    OpticSpec(name="osfp-800g", bandwidth=800 * Gbps, power=17),
    # [estimate: no public figure for NVIDIA's 1.6T (2 x 800G XDR) twin-port OSFP found; the 800G
    # DR8's 17 W (~21 pJ/bit) at ~19 pJ/bit for 200G-per-lane optics gives ~30 W]
    OpticSpec(name="osfp-1600g", bandwidth=1600 * Gbps, power=30),
)
