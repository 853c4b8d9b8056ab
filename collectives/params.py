"""Named, documented parameters of the communication cost models.

Efficiencies turn line rates into what NCCL achieves on each medium; they scale link
capacities at the flow level and bandwidths in the closed forms alike, so the two levels
agree. ``nvlink`` and ``nvls`` are fitted to the package data's nccl.csv as a whole by
:func:`collectives.calibration.fit` (rerun it when that file changes); the rest come
from published figures cited beside them.

Latencies are constants, not parameters: NCCL's own tuning model (NVIDIA/nccl src/graph/tuning.cc, v2.30): a base
latency per algorithm and protocol plus a per-hop latency by hop kind, in microseconds.

Examples
--------
>>> p = DEFAULT_PARAMS
>>> round(p.efficiency("nvlink"), 3), p.efficiency("infiniband")
(0.804, 0.94)
>>> p.hop_latency("ring", "network", "simple") * 1e6
14.0
"""

from dataclasses import dataclass
from types import MappingProxyType

from fabric.checks import require_positive
from fabric.units import us

from collectives.errors import InvalidSpec

PROTOCOLS = ("ll", "ll128", "simple")

# Fraction of the Simple protocol's bandwidth each protocol reaches: LL moves 8 bytes of
# data per 16-byte flagged store, LL128 120 of every 128 bytes (NCCL tuning.cc: "Ring LL
# gets half the bus bandwidth, LL128 0.92 of it").
PROTOCOL_BANDWIDTH = MappingProxyType({"ll": 0.5, "ll128": 0.92, "simple": 1.0})

# NCCL tuning.cc base latencies (us) by latency family and protocol (LL, LL128, Simple).
_BASE = {
    "ring": (6.6, 14.0, 8.4),
    "tree": (6.8, 14.0, 8.4),
    "nvls": (0.0, 0.0, 0.0),
    "collnet": (0.0, 0.0, 0.0),
}
# NCCL tuning.cc hardware latencies per hop (us) by family, hop kind, protocol. NVLS and
# CollNet run the Simple protocol only; their LL/LL128 entries are unused (None).
_HOP = {
    "ring": {"nvlink": (0.6, 1.9, 3.4), "pcie": (1.0, 2.5, 5.7), "network": (2.7, 4.0, 14.0)},
    "tree": {"nvlink": (0.6, 1.25, 4.0), "pcie": (1.0, 1.9, 4.0), "network": (5.0, 8.5, 14.0)},
    "nvls": {"nvlink": (None, None, 25.0), "network": (None, None, 18.0)},
    "collnet": {"nvlink": (None, None, 3.7), "network": (None, None, 31.0)},
}


@dataclass(frozen=True, kw_only=True)
class CommParams:
    """Efficiencies and latency tables of the communication models.

    Attributes
    ----------
    nvlink_efficiency : float
        Fraction of NVLink line rate a ring (Simple protocol) reaches. Fitted to the ring
        rows of nccl.csv (DGX H100 ~370 of 450 GB/s; DGX A100 ~230 of 300 GB/s).
    nvls_efficiency : float
        Fraction of NVLink line rate NVLink SHARP (multimem) traffic reaches; fitted to
        the NVLS rows of nccl.csv (4, 6, 8 GPUs).
    multinode_nvls_efficiency : float
        The same when the NVLink domain spans several hosts (GB200 NVL72: 18 compute trays
        through NVLink switch trays); fitted to the three NVL72 rows of nccl_multinode.csv
        (one rack at 512 MiB and 8 GiB, two racks at 16 GiB).
    multinode_nvls_latency : float
        Seconds an NVLS all-reduce across hosts' trays costs beyond NCCL's own NVLS latency
        (the pipeline's fill over the NVLink switch trays): a rack's measured bus bandwidth
        climbs from 586 GB/s at 512 MiB to 835 at 8 GiB, which one bandwidth with NCCL's
        25 us cannot give. Fitted with ``multinode_nvls_efficiency`` to the same rows.
    network_efficiency : float
        Fraction of NIC line rate NCCL reaches over InfiniBand or RoCE: "46-48 GB/s per
        NIC" at NDR 400 Gb/s (NCCL maintainers, NVIDIA/nccl-tests issue #290): 47/50.
    pcie_efficiency : float
        Fraction of PCIe line rate usable for GPU-NIC transfers (PCIe TLP overhead with
        256-byte payloads, ~0.9; PCI-SIG Gen5 encoding and header sizes).
    collnet : bool
        Whether ``algorithm="auto"`` may pick in-network SHARP reductions (NCCL's CollNet).
        NCCL needs ``NCCL_COLLNET_ENABLE=1`` and the SHARP plugin for them (off by default,
        NCCL environment-variable docs), so False, as in NCCL; ``algorithm="sharp"`` asked
        for by name is priced either way. NVLink SHARP (NVLS) is on by default in NCCL
        (``NCCL_NVLS_ENABLE``) and stays in ``auto``.
    """

    nvlink_efficiency: float = 0.804
    nvls_efficiency: float = 0.686
    multinode_nvls_efficiency: float = 0.477  # fitted: python -m collectives.calibration
    multinode_nvls_latency: float = 488e-6  # fitted with it, same run
    network_efficiency: float = 0.94
    pcie_efficiency: float = 0.90
    collnet: bool = False

    def __post_init__(self):
        if not isinstance(self.collnet, bool):
            raise InvalidSpec(f"collnet={self.collnet!r} must be True or False")
        for name in ("nvlink_efficiency", "nvls_efficiency", "multinode_nvls_efficiency", "network_efficiency",
                     "pcie_efficiency"):
            value = require_positive(name, getattr(self, name))
            if value > 1:
                raise InvalidSpec(f"{name}={value} must be <= 1")
        if not self.multinode_nvls_latency >= 0:
            raise InvalidSpec(f"multinode_nvls_latency={self.multinode_nvls_latency!r} must be >= 0")

    def nvls(self, multinode_nvlink):
        """NVLS efficiency inside one host's NVSwitch domain or across hosts (NVL72)."""
        return self.multinode_nvls_efficiency if multinode_nvlink else self.nvls_efficiency

    def efficiency(self, medium):
        """Achievable fraction of line rate on a link of ``medium``."""
        if medium == "nvlink":
            return self.nvlink_efficiency
        if medium == "pcie":
            return self.pcie_efficiency
        if medium in ("infiniband", "ethernet"):
            return self.network_efficiency
        raise InvalidSpec(f"medium={medium!r} must be one of 'nvlink', 'pcie', 'infiniband', 'ethernet'")

    def base(self, family, protocol):
        """Base latency (s) of an algorithm family with a protocol."""
        return _BASE[family][PROTOCOLS.index(protocol)] * us

    def hop_latency(self, family, hop, protocol):
        """Latency (s) of one hop of kind ``"nvlink"``, ``"pcie"`` or ``"network"``."""
        value = _HOP[family][hop][PROTOCOLS.index(protocol)]
        if value is None:
            raise InvalidSpec(f"protocol={protocol!r} is not available for the {family} family")
        return value * us

    def protocols(self, family):
        """Protocols the family can run (NVLS and CollNet: Simple only)."""
        return tuple(p for p in PROTOCOLS if _HOP[family]["nvlink"][PROTOCOLS.index(p)] is not None)


DEFAULT_PARAMS = CommParams()


def checked_params(params):
    """``params``, or :data:`DEFAULT_PARAMS` for None; ``InvalidSpec`` for anything that is
    not a :class:`CommParams` (a dict of overrides is ``CommParams(**overrides)``).

    Examples
    --------
    >>> checked_params(None) is DEFAULT_PARAMS
    True
    >>> checked_params({"collnet": True})
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: params={'collnet': True} must be a collectives.CommParams (CommParams(**overrides)) or None
    """
    if params is None:
        return DEFAULT_PARAMS
    if not isinstance(params, CommParams):
        raise InvalidSpec(f"params={params!r:.80} must be a collectives.CommParams (CommParams(**overrides)) or None")
    return params
