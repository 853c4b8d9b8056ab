"""Field failure rates of training clusters, per part and hour, by what each failure hits.

The one published breakdown with its exposure is the Llama 3 paper's (Llama Team, "The
Llama 3 Herd of Models", 2024, section 3.3.4, Table 5): over a 54-day snapshot of the
405B pre-training on 16,384 H100 GPUs (2,048 servers of 8) on Meta's RoCE cluster, 466
interruptions, 47 of them planned and 419 unexpected, by root cause [mem: the table as
recalled; its causes add up to the paper's 419]. :data:`LLAMA3_CAUSES` keeps those counts
and :data:`LLAMA3_RATES` divides them by what was exposed: GPU-hours for GPU and software
causes (software runs one process per GPU), server-hours for host causes, NIC-hours, and
for "network switch/cable" the hours of the parts whose failure cuts a GPU off: the 1,024
rack switches and 16,384 NIC cables that job used on that cluster (one NIC per GPU on one
rack switch, 16 GPUs per rack: :func:`fabric.preset` ``"meta-llama3"``; failures above the
racks are routed around, so none are charged to them). Planned interruptions (automated
maintenance) are per job and day.

Examples
--------
>>> sum(LLAMA3_CAUSES.values())
419
>>> round(LLAMA3_RATES.per_gpu_hour["gpu"] * 1e6, 2)      # GPU failures per million GPU-hours
12.62
"""

from dataclasses import dataclass, field
from types import MappingProxyType

from collectives.errors import InvalidSpec

# Llama 3 paper, Table 5: unexpected interruptions in the 54-day snapshot, by root cause,
# grouped by the part they take down.
LLAMA3_CAUSES = MappingProxyType({
    "faulty GPU": 148, "GPU HBM3 memory": 72, "GPU SRAM memory": 19, "GPU system processor": 17,
    "silent data corruption": 6, "GPU thermal interface and sensor": 6,
    "software bug": 54, "NCCL watchdog timeouts": 7, "dependency": 2,
    "host maintenance": 32, "SSD": 3, "power supply": 3, "server chassis": 2, "IO expansion board": 2,
    "CPU": 2, "system memory": 2,
    "NIC": 7,
    "network switch/cable": 35,
})
LLAMA3_GROUPS = MappingProxyType({
    "gpu": ("faulty GPU", "GPU HBM3 memory", "GPU SRAM memory", "GPU system processor", "silent data corruption",
            "GPU thermal interface and sensor"),
    "software": ("software bug", "NCCL watchdog timeouts", "dependency"),
    "host": ("host maintenance", "SSD", "power supply", "server chassis", "IO expansion board", "CPU",
             "system memory"),
    "nic": ("NIC",),
    "network": ("network switch/cable",),
})
LLAMA3_PLANNED = 47
LLAMA3_DAYS = 54
LLAMA3_GPUS = 16_384
LLAMA3_HOSTS = LLAMA3_GPUS // 8
# the job's rack switches (16 GPUs each) and NIC cables on the meta-llama3 preset at 16,384 GPUs
LLAMA3_ATTACHMENTS = LLAMA3_GPUS // 16 + LLAMA3_GPUS


@dataclass(frozen=True)
class FailureRates:
    """Failures per part-hour, by the part they hit.

    Attributes
    ----------
    per_gpu_hour : dict
        ``{"gpu": ..., "software": ...}``: per GPU-hour of the job.
    per_host_hour, per_nic_hour : float
    per_attachment_hour : float
        Per hour of a leaf switch or switch cable (the network's switch and cable
        failures; the same rate is taken for the parts that only slow a job).
    planned_per_day : float
        Planned interruptions of a job per day.
    source : str
    """

    per_gpu_hour: dict = field(default_factory=dict)
    per_host_hour: float = 0.0
    per_nic_hour: float = 0.0
    per_attachment_hour: float = 0.0
    planned_per_day: float = 0.0
    source: str = ""

    def __post_init__(self):
        for name in ("per_host_hour", "per_nic_hour", "per_attachment_hour", "planned_per_day"):
            if not getattr(self, name) >= 0:
                raise InvalidSpec(f"{name}={getattr(self, name)!r} must be a rate >= 0")
        for name, rate in self.per_gpu_hour.items():
            if not rate >= 0:
                raise InvalidSpec(f"per_gpu_hour[{name!r}]={rate!r} must be a rate >= 0")


def _llama3_rates():
    hours = LLAMA3_DAYS * 24
    count = {group: sum(LLAMA3_CAUSES[c] for c in causes) for group, causes in LLAMA3_GROUPS.items()}
    return FailureRates(
        per_gpu_hour={"gpu": count["gpu"] / (LLAMA3_GPUS * hours), "software": count["software"] / (LLAMA3_GPUS * hours)},
        per_host_hour=count["host"] / (LLAMA3_HOSTS * hours),
        per_nic_hour=count["nic"] / (LLAMA3_GPUS * hours),
        per_attachment_hour=count["network"] / (LLAMA3_ATTACHMENTS * hours),
        planned_per_day=LLAMA3_PLANNED / LLAMA3_DAYS,
        source="Llama 3 paper, section 3.3.4 and Table 5: 54 days of the 16,384-GPU 405B job",
    )


LLAMA3_RATES = _llama3_rates()
