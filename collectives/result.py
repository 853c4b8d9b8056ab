"""Result of a collective: time, nccl-tests bandwidths, the algorithm and its phases."""

from dataclasses import asdict, dataclass

from fabric.tables import format_rate, format_time, html_table, text_table

# nccl-tests doc/PERFORMANCE.md: busbw = algbw x factor(n), so that busbw compares with
# the hardware's link bandwidth whatever the rank count.
BUS_FACTOR = {
    "all_reduce": lambda n: 2 * (n - 1) / n,
    "all_gather": lambda n: (n - 1) / n,
    "reduce_scatter": lambda n: (n - 1) / n,
    "all_to_all": lambda n: (n - 1) / n,
    "broadcast": lambda n: 1.0,
    "send_recv": lambda n: 1.0,
}


@dataclass(frozen=True)
class Phase:
    """One step of an algorithm: concurrent flows repeated ``repeats`` times.

    ``time`` covers all repeats (bandwidth only; latency is accounted once for the whole
    collective, as NCCL's pipelined model does). ``far_latency``: across sites, the
    long-haul propagation its rounds wait for (repeats times the slowest flow's), which the
    collective's latency includes.
    """

    name: str
    flows: int
    bytes_per_flow: float
    repeats: float
    rate: float
    time: float
    far_latency: float = 0.0


@dataclass(frozen=True)
class CollectiveResult:
    """What one collective costs.

    Attributes
    ----------
    collective, algorithm, protocol, level : str
    ranks : int
        Group size.
    nbytes : float
        Message size as nccl-tests counts it.
    time : float
        Seconds.
    algbw, busbw : float
        nccl-tests algorithm and bus bandwidth, bytes/s.
    latency : float
        Seconds of the time that are latency, not bandwidth.
    phases : tuple of Phase
    far_latency : float
        Seconds of ``latency`` spent crossing long-haul links between sites.
    """

    collective: str
    algorithm: str
    protocol: str
    level: str
    ranks: int
    nbytes: float
    time: float
    algbw: float
    busbw: float
    latency: float
    phases: tuple
    far_latency: float = 0.0

    def to_dict(self):
        """The fields as plain dicts and lists."""
        return asdict(self)

    def _rows(self):
        return [
            ("collective", f"{self.collective} of {self.nbytes:,.0f} B over {self.ranks} ranks"),
            ("algorithm", f"{self.algorithm} ({self.protocol}, {self.level} level)"),
            ("time", format_time(self.time)),
            ("of which latency", format_time(self.latency)),
        ] + ([("of which long-haul", format_time(self.far_latency))] if self.far_latency else []) + [
            ("algbw", format_rate(self.algbw)),
            ("busbw", format_rate(self.busbw)),
        ] + [
            (f"phase {p.name}", f"{p.repeats:g} x {p.flows} flows of {p.bytes_per_flow:,.0f} B at "
             f"{format_rate(p.rate)}: {format_time(p.time)}")
            for p in self.phases
        ]

    def __str__(self):
        return text_table("Collective", self._rows())

    def _repr_html_(self):
        return html_table("Collective", self._rows())


def make_result(*, collective, algorithm, protocol, level, ranks, nbytes, latency, phases, bandwidth_time,
                far_latency=0.0):
    """Assemble a result; time is latency (``far_latency`` of it long-haul) plus the phases'
    bandwidth time."""
    time = latency + bandwidth_time
    algbw = nbytes / time if time > 0 else 0.0
    return CollectiveResult(
        collective=collective,
        algorithm=algorithm,
        protocol=protocol,
        level=level,
        ranks=ranks,
        nbytes=float(nbytes),
        time=time,
        algbw=algbw,
        busbw=algbw * BUS_FACTOR[collective](ranks),
        latency=latency,
        phases=tuple(phases),
        far_latency=far_latency,
    )
