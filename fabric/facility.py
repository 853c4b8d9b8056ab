"""Facility power: a cluster's IT load by part, and what cooling and power distribution add.

:func:`facility_power` reads the compute systems (:mod:`fabric.systems`) and the scale-out
network (:func:`fabric.bill_of_materials`) from a fabric graph; :func:`cluster_for_power`
builds the largest cluster of one rack type that a power budget feeds.

PUE (power usage effectiveness) is facility power over IT power; it carries cooling and
power distribution. It is an argument, never a default: a liquid-cooled AI hall and an
average enterprise data center differ by half. :data:`PUE_REFERENCES` lists published ones.

Examples
--------
>>> import fabric
>>> p = fabric.facility_power(fabric.dgx_superpod(4), pue=1.3)
>>> p.systems, p.system, round(p.it_watts / 1e3), round(p.facility_watts / p.it_watts, 2)
(4, 'dgx-h100', 58, 1.3)
"""

import math
import sys
from dataclasses import asdict, dataclass

from fabric.checks import require_non_negative, require_positive
from fabric.errors import Infeasible, InvalidSpec
from fabric.materials import bill_of_materials
from fabric.schema import graph_attr, gpu_nodes
from fabric.systems import RACK_OF_GPU, SERVER_OF_GPU, SYSTEMS, SystemPower
from fabric.tables import format_watts, html_table, text_table

# Published PUEs, for choosing ``pue=``: the Uptime Institute's 2023 survey average over the
# industry, 1.58; Google's fleet-wide trailing-twelve-month PUE in 2023, 1.10 (Google 2023
# environmental report) [mem: figures as recalled from those reports].
PUE_REFERENCES = {"uptime-2023-average": 1.58, "google-fleet-2023": 1.10}
MAX_PUE = 3.0  # above any facility the surveys report; a larger value is a typo
# Storage, front-end network and management as a share of the compute and scale-out IT load
# [estimate: the DGX SuperPOD reference architectures add storage, in-band and out-of-band
# management racks without publishing their share; a named parameter to change].
STORAGE_AND_FRONTEND = 0.05

# cluster_for_power: the published cluster each rack type is built as, with builder overrides
RACK_PRESETS = {
    "dgx-a100": ("dgx-h100-superpod", {"gpu": "A100"}),
    "dgx-h100": ("dgx-h100-superpod", {}),
    "dgx-h200": ("dgx-h100-superpod", {"gpu": "H200"}),
    "dgx-b200": ("dgx-b200-superpod", {}),
    "gb200-nvl72": ("dgx-gb200-superpod", {}),
    "gb300-nvl72": ("gb300-nvl72-x800", {}),
}
_MAX_BUILDS = 30


@dataclass(frozen=True, kw_only=True)
class FacilityPower:
    """The power a cluster draws from the grid, by part.

    Attributes
    ----------
    system : str
        The compute system counted (a key of :data:`fabric.systems.SYSTEMS`).
    systems, gpus : int
    it : dict
        IT watts by part: the systems' GPUs, CPUs and the rest, scale-out NICs, switches
        and optics, storage and front-end.
    it_watts : float
    pue : float
    cooling_and_distribution : float
        Watts the facility adds: ``(pue - 1) * it_watts``.
    facility_watts : float
        ``pue * it_watts``.
    cooling : str
        How the systems are cooled (``"air"`` or ``"liquid"``).
    switches : int
        Scale-out switches of the fabric (its bill of materials).
    """

    system: str
    systems: int
    gpus: int
    it: dict
    it_watts: float
    pue: float
    cooling_and_distribution: float
    facility_watts: float
    cooling: str
    switches: int

    @property
    def watts_per_gpu(self):
        """Facility watts per GPU."""
        return self.facility_watts / self.gpus

    @property
    def network_watts(self):
        """IT watts of the scale-out network: switches, optics and NICs (the bill of
        materials' ``network_watts``)."""
        return self.it["scale-out switches"] + self.it["optics"] + self.it["scale-out NICs"]

    def to_dict(self):
        """The fields as a plain dict."""
        return asdict(self)

    def _rows(self):
        rows = [("systems", f"{self.systems:,} {self.system} ({self.gpus:,} GPUs, {self.cooling}-cooled)")]
        rows += [(part, format_watts(w)) for part, w in self.it.items()]
        rows += [("IT power", format_watts(self.it_watts)),
                 (f"cooling and distribution (PUE {self.pue:g})", format_watts(self.cooling_and_distribution)),
                 ("facility power", format_watts(self.facility_watts)),
                 ("per GPU", f"{self.watts_per_gpu:,.0f} W")]
        return rows

    def __str__(self):
        return text_table("Facility power", self._rows())

    def _repr_html_(self):
        return html_table("Facility power", self._rows())

    def figure(self):
        """A plotly bar of the facility's power by part (:func:`fabric.plot.facility`)."""
        from fabric.plot import facility

        return facility(self)


def _system_of(G, system):
    """The SystemPower of ``G``'s servers: ``system`` (a name or a spec), or the one its GPU
    and NVLink domains say."""
    gpu = graph_attr(G, "gpu")
    if system is None:
        name = RACK_OF_GPU.get(gpu.name)
        if name is None and graph_attr(G, "gpus_per_node") == 8:
            name = SERVER_OF_GPU.get(gpu.name)
        if name is None:
            raise InvalidSpec(f"no system power is known for {gpu.name} servers of {graph_attr(G, 'gpus_per_node')} "
                              f"GPUs: give system= one of {', '.join(SYSTEMS)} or a fabric.systems.SystemPower")
        return SYSTEMS[name]
    if isinstance(system, str):
        if system not in SYSTEMS:
            raise InvalidSpec(f"system={system!r} must be one of {', '.join(map(repr, SYSTEMS))} or a SystemPower")
        system = SYSTEMS[system]
    if not isinstance(system, SystemPower):
        raise InvalidSpec(f"system={system!r:.80} must be a name in fabric.systems.SYSTEMS or a SystemPower")
    if system.gpu != gpu.name:
        raise InvalidSpec(f"system={system.name!r} carries {system.gpu} GPUs; this fabric has {gpu.name}")
    return system


def _check_pue(pue):
    require_positive("pue", pue)
    if not 1 <= pue <= MAX_PUE:
        raise InvalidSpec(f"pue={pue!r} must be between 1 and {MAX_PUE:g} (facility power over IT power; "
                          f"published: {', '.join(f'{k} {v}' for k, v in PUE_REFERENCES.items())})")


def facility_power(G, *, pue, storage_and_frontend=STORAGE_AND_FRONTEND, system=None):
    """The power the cluster ``G`` draws, by part, at ``pue``.

    IT load: each compute system's parts (:mod:`fabric.systems`: GPUs, CPUs, NVLink switch
    trays, DPUs and the rest at their datasheet maximum), the scale-out NICs, switches and
    optics of the graph (:func:`fabric.bill_of_materials`), and ``storage_and_frontend``
    times all that for storage, front-end network and management. The facility adds
    cooling and power distribution: ``(pue - 1)`` times the IT load.

    Parameters
    ----------
    G : networkx.DiGraph
    pue : float
        Power usage effectiveness, 1 to 3 (:data:`PUE_REFERENCES`).
    storage_and_frontend : float
        Share added for storage, front-end and management (:data:`STORAGE_AND_FRONTEND`).
    system : str, SystemPower or None
        The compute system; None picks it from the GPU (8-GPU servers as the DGX of that
        GPU, GB200/GB300 as NVL72 racks).

    Returns
    -------
    FacilityPower

    Examples
    --------
    >>> import fabric
    >>> p = facility_power(fabric.nvl72(8), pue=1.2)
    >>> p.system, p.systems, round(p.it["GPUs"] / 1e3, 1)
    ('gb200-nvl72', 8, 691.2)
    >>> facility_power(fabric.nvl72(1), pue=0.9)
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: pue=0.9 must be between 1 and 3 (facility power over IT power; published: uptime-2023-average 1.58, google-fleet-2023 1.1)
    """
    _check_pue(pue)
    require_non_negative("storage_and_frontend", storage_and_frontend)
    if storage_and_frontend >= 1:
        raise InvalidSpec(f"storage_and_frontend={storage_and_frontend!r} must be a share in [0, 1)")
    spec = _system_of(G, system)
    gpus = len(gpu_nodes(G))
    systems = math.ceil(gpus / spec.gpus)
    bom = bill_of_materials(G)
    it = {part: systems * watts for part, watts in spec.parts.items()}
    it["scale-out NICs"] = bom.nic_watts
    it["scale-out switches"] = bom.switch_watts
    it["optics"] = bom.optic_watts
    it["storage and front-end"] = storage_and_frontend * sum(it.values())
    it_watts = sum(it.values())
    return FacilityPower(system=spec.name, systems=systems, gpus=gpus, it=it, it_watts=it_watts, pue=float(pue),
                         cooling_and_distribution=(pue - 1) * it_watts, facility_watts=pue * it_watts,
                         cooling=spec.cooling,
                         switches=bom.switch_count)


def cluster_for_power(watts, *, rack, pue, storage_and_frontend=STORAGE_AND_FRONTEND, progress=True,
                      **fabric_options):
    """The largest cluster of ``rack`` systems whose facility power fits ``watts``.

    Built as the published cluster of that rack (``RACK_PRESETS``: the DGX SuperPODs, the
    GB200 SuperPOD, GB300 NVL72 on Quantum-X800) with ``fabric_options`` passed to its
    builder, and priced by :func:`facility_power`. The count is found by building: the
    fabric's tiers, and so its power per GPU, change with its size.

    What 1 GW of GB200 NVL72 holds at PUE 1.2, by hand: 1e9 / 1.2 = 833 MW of IT. At the
    published ~120 kW per rack that is 6,944 racks, at the ~132 kW integrators quote 6,313
    (:data:`fabric.systems.PUBLISHED_RACK_WATTS`). Added up here, a rack is ~118 kW with its
    NICs, ~8.8 kW of scale-out switches and optics, and 5% for storage and front-end:
    ~133 kW, so ~6,270 racks; the fabric's third tier moves it a little.

    Parameters
    ----------
    watts : float
        The facility's power budget.
    rack : str
        A key of :data:`fabric.systems.SYSTEMS`.
    pue : float
    storage_and_frontend : float
    progress : bool
        Print each size tried (builds take seconds at hundreds of thousands of GPUs).
    **fabric_options
        Builder arguments for the preset (``routing=``, ``tiers=``, ...).

    Returns
    -------
    networkx.DiGraph
        With ``G.graph["facility_power"]`` (:meth:`FacilityPower.to_dict`) and
        ``G.graph["power_budget"]``.

    Examples
    --------
    >>> G = cluster_for_power(2e6, rack="dgx-h100", pue=1.3, progress=False)
    >>> G.graph["facility_power"]["systems"], G.graph["facility_power"]["facility_watts"] <= 2e6
    (134, True)
    """
    require_positive("watts", watts)
    _check_pue(pue)
    if rack not in RACK_PRESETS:
        raise InvalidSpec(f"rack={rack!r} must be one of {', '.join(map(repr, RACK_PRESETS))}")
    from fabric.presets import preset

    name, overrides = RACK_PRESETS[rack]
    spec = SYSTEMS[rack]

    def build(n):
        G = preset(name, gpus=n * spec.gpus, **{**overrides, **fabric_options})
        p = facility_power(G, pue=pue, storage_and_frontend=storage_and_frontend, system=rack)
        if progress:
            print(f"cluster_for_power: {n:,} x {rack} ({n * spec.gpus:,} GPUs): {p.facility_watts / 1e6:,.2f} MW "
                  f"of {watts / 1e6:,.2f}", file=sys.stderr)
        return G, p

    # first guess: the systems alone (an upper bound, the network adds to it); then in
    # proportion to the budget, kept strictly between the largest size that fits and the
    # smallest that does not
    n = max(1, int(watts / (pue * spec.total * (1 + storage_and_frontend))))
    fits, over, best = 0, None, None
    for _ in range(_MAX_BUILDS):
        G, p = build(n)
        if p.facility_watts <= watts:
            fits, best = n, (G, p)
        else:
            over = n
        if over is not None and fits + 1 >= over:
            break
        guess = int(n * watts / p.facility_watts)
        n = max(guess, fits + 1) if over is None else min(max(guess, fits + 1), over - 1)
    else:
        raise Infeasible(f"cluster_for_power did not settle in {_MAX_BUILDS} builds between {fits} and {over} "
                         f"x {rack}")
    if best is None:
        raise Infeasible(f"watts={watts:g} cannot power one {rack} at pue={pue:g}: it takes "
                         f"{p.facility_watts:,.0f} W")
    G, p = best
    G.graph["facility_power"] = p.to_dict()
    G.graph["power_budget"] = float(watts)
    return G
