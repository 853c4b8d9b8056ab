"""Hypothesis strategies for property tests of fabrics and of code that runs on them.

Import this module only in tests: it imports :mod:`hypothesis` (the ``test`` extra).

:func:`fabrics` draws small, valid fabrics over every builder and its parameters.
:func:`failed_links`, :func:`failed_switches`, :func:`degraded_links` and
:func:`topology_changes` take a graph and draw a :class:`TopologyChange` for it;
``change.apply(G)`` returns a changed copy and never touches ``G``. Because the change
strategies need the graph, draw them with ``st.data()``. Falsifying examples print as
the builder call and the change that reproduce them, e.g.
``fat_tree(nodes=2, gpu='A100', ...)`` and ``TopologyChange(failed_switches=('spine1',))``.

Examples
--------
A user's property: failing a switch never adds switch-to-switch bandwidth.

>>> from hypothesis import given, settings, strategies as st
>>> from fabric import strategies as fst
>>> def fabric_capacity(G):
...     return sum(b for u, v, b in G.edges(data="bandwidth")
...                if G.nodes[u]["kind"] == G.nodes[v]["kind"] == "switch")
>>> @settings(max_examples=10, deadline=None)
... @given(st.data())
... def test_a_failed_switch_never_adds_capacity(data):
...     G = data.draw(fst.fabrics(max_gpus=128), label="G")
...     change = data.draw(fst.failed_switches(G), label="change")
...     assert fabric_capacity(change.apply(G)) <= fabric_capacity(G)
>>> test_a_failed_switch_never_adds_capacity()

A change is a plain value; build one by hand to replay a failure:

>>> import fabric
>>> G = fabric.dgx_superpod(31)
>>> change = fst.TopologyChange(failed_switches=("spine0",), degraded_links=(("leaf0", "spine1", 0.5),))
>>> print(change)
degrade leaf0<->spine1 to 0.5x bandwidth; fail switch spine0
>>> H = change.apply(G)
>>> "spine0" in G, "spine0" in H
(True, False)
"""


from hypothesis import strategies as st

from fabric import topologies
from fabric.catalog import GPUS, NICS, SWITCHES
from fabric.checks import require_choice, require_int
from fabric.clos import design_clos
from fabric.scale_out import check_size
from fabric.errors import FabricError, InvalidSpec
from fabric.schema import ROUTINGS
from fabric.topologies import HGX_GPUS, NVL72_TRAY_GPUS, NVL72_TRAYS, SUPERPOD_HARDWARE
# the topology-change strategies, part of this module's public names
from fabric.topology_changes import (  # noqa: F401
    TopologyChange, degraded_links, failed_links, failed_switches, topology_changes)

BUILDERS = ("fat_tree", "dgx_superpod", "spectrum_x", "rail_only", "nvl72")

# Oversubscription ratios tried; each drawn fabric gets only those its switches realise
# exactly (the builders reject the others).
OVERSUBSCRIPTIONS = (1.0, 1.5, 2.0, 3.0, 4.0)
# Tier counts tried; None lets the builder pick the fewest.
TIERS = (None, 1, 2, 3)
# Enough for ECMP to hash some connections apart, small enough to stay fast.
MAX_QPS = 4
# NVL72 racks hold 72 GPUs; two racks already exercise the scale-out between domains.
MAX_NVL72_RACKS = 2
NVL72_GPUS = NVL72_TRAYS * NVL72_TRAY_GPUS

_MIN_GPUS = {"fat_tree": HGX_GPUS, "dgx_superpod": HGX_GPUS, "spectrum_x": HGX_GPUS,
             "rail_only": HGX_GPUS, "nvl72": NVL72_GPUS}


# --- fabrics -------------------------------------------------------------------------


def fabrics(*, builders=BUILDERS, max_gpus=256):
    """Strategy for small, valid fabrics over the builders and their parameters.

    Parameters are drawn so that the builders accept them: switches whose ports run at
    the NIC's speed, tier counts and oversubscription ratios that :func:`fabric.clos.design_clos`
    realises exactly. ``pod_nodes`` and ``gpus_per_node`` keep their defaults.

    Parameters
    ----------
    builders : str or sequence of str
        Builders to draw from, among :data:`BUILDERS`.
    max_gpus : int
        Upper bound on the GPUs of a drawn fabric; the default keeps an example to
        ~15 ms. Builders whose smallest fabric is larger (``nvl72``: 72 GPUs) are
        left out.

    Returns
    -------
    hypothesis.strategies.SearchStrategy of networkx.DiGraph

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(fabrics(builders=("nvl72",), max_gpus=144))
    ... def test_nvl72_racks(G):
    ...     assert G.graph["builder"] == "nvl72"
    >>> test_nvl72_racks()
    >>> fabrics(max_gpus=4)
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: max_gpus=4 must be >= 8 for builders=('fat_tree', ...)
    """
    builders = (builders,) if isinstance(builders, str) else tuple(builders)
    if not builders:
        raise InvalidSpec(f"builders={builders!r} must name at least one of {BUILDERS}")
    for name in builders:
        require_choice("builders", name, BUILDERS)
    require_int("max_gpus", max_gpus, minimum=1)
    usable = tuple(name for name in builders if _MIN_GPUS[name] <= max_gpus)
    if not usable:
        smallest = min(_MIN_GPUS[name] for name in builders)
        raise InvalidSpec(f"max_gpus={max_gpus} must be >= {smallest} for builders={builders!r}")
    return _fabric(usable, max_gpus)


@st.composite
def _fabric(draw, builders, max_gpus):
    name = draw(st.sampled_from(builders))
    kwargs = _PARAMETERS[name](draw, max_gpus)
    # builds() records the call, so a falsifying example prints as `fat_tree(nodes=...)`.
    builder = getattr(topologies, name)
    return draw(st.builds(builder, **{key: st.just(value) for key, value in kwargs.items()}))


def _switches_for(nic_bandwidth, transport=None):
    """Catalog switches whose ports run at ``nic_bandwidth`` (and speak ``transport``)."""
    return [
        name
        for name, spec in SWITCHES.items()
        if spec.radix(nic_bandwidth) and transport in (None, spec.transport)
    ]


def _nics_for(transport):
    return [name for name, spec in NICS.items() if transport in spec.transports]


def _draw_clos(draw, *, hosts, rails, link, switch, rail_optimized, ratios=OVERSUBSCRIPTIONS, copies=1):
    """Draw ``(tiers, oversubscription)`` that :func:`design_clos` realises for this fabric
    (``copies`` of it side by side: one per rail of a rail-only fabric).

    A one-tier fabric has no uplinks to oversubscribe, so it only gets ratio 1.
    """
    radix = SWITCHES[switch].radix(link)

    def design(tiers, ratio):
        try:
            found = design_clos(
                hosts=hosts, rails=rails, radix=radix, rail_optimized=rail_optimized,
                tiers=tiers, oversubscription=ratio,
            )
            check_size([found] * copies, hosts * rails * copies)  # the builder refuses tiers that dwarf the GPUs
            return found
        except FabricError:
            return None

    def realised(tiers, ratio):
        found = design(tiers, ratio)
        return found is not None and (ratio == 1.0 or found.tiers > 1)

    tiers = draw(st.sampled_from([t for t in TIERS if realised(t, 1.0)]))
    return tiers, draw(st.sampled_from([r for r in ratios if realised(tiers, r)]))


def _fat_tree(draw, max_gpus):
    nodes = draw(st.integers(1, max_gpus // HGX_GPUS))
    gpu = draw(st.sampled_from(sorted(GPUS)))
    nic_bandwidth = draw(st.sampled_from(sorted({spec.bandwidth for spec in NICS.values()})))
    switch = draw(st.sampled_from(_switches_for(nic_bandwidth)))
    rail_optimized = draw(st.booleans())
    tiers, oversubscription = _draw_clos(
        draw, hosts=nodes, rails=HGX_GPUS, link=nic_bandwidth, switch=switch, rail_optimized=rail_optimized
    )
    return dict(
        nodes=nodes, gpu=gpu, nic_bandwidth=nic_bandwidth, switch=switch,
        routing=draw(st.sampled_from(ROUTINGS)), qps=draw(st.integers(1, MAX_QPS)),
        rail_optimized=rail_optimized, tiers=tiers, oversubscription=oversubscription,
    )


def _dgx_superpod(draw, max_gpus):
    nodes = draw(st.integers(1, max_gpus // HGX_GPUS))
    gpu = draw(st.sampled_from(sorted(SUPERPOD_HARDWARE)))
    nic, switch = SUPERPOD_HARDWARE[gpu]
    tiers, _ = _draw_clos(
        draw, hosts=nodes, rails=HGX_GPUS, link=NICS[nic].bandwidth, switch=switch, rail_optimized=True,
        ratios=(1.0,),
    )
    return dict(nodes=nodes, gpu=gpu, routing=draw(st.sampled_from(ROUTINGS)), tiers=tiers)


def _spectrum_x(draw, max_gpus):
    nodes = draw(st.integers(1, max_gpus // HGX_GPUS))
    gpu = draw(st.sampled_from(sorted(GPUS)))
    nic = draw(st.sampled_from(_nics_for("ethernet")))
    switch = draw(st.sampled_from(_switches_for(NICS[nic].bandwidth, "ethernet")))
    tiers, oversubscription = _draw_clos(
        draw, hosts=nodes, rails=HGX_GPUS, link=NICS[nic].bandwidth, switch=switch, rail_optimized=True
    )
    return dict(nodes=nodes, gpu=gpu, switch=switch, nic=nic, tiers=tiers, oversubscription=oversubscription)


def _rail_only(draw, max_gpus):
    nodes = draw(st.integers(1, max_gpus // HGX_GPUS))
    gpu = draw(st.sampled_from(sorted(GPUS)))
    nic_bandwidth = draw(st.sampled_from(sorted({spec.bandwidth for spec in NICS.values()})))
    switch = draw(st.sampled_from(_switches_for(nic_bandwidth)))
    # Each rail is its own Clos of one NIC per server.
    tiers, _ = _draw_clos(
        draw, hosts=nodes, rails=1, link=nic_bandwidth, switch=switch, rail_optimized=False, ratios=(1.0,),
        copies=HGX_GPUS,
    )
    return dict(
        nodes=nodes, gpu=gpu, nic_bandwidth=nic_bandwidth, switch=switch,
        routing=draw(st.sampled_from(ROUTINGS)), qps=draw(st.integers(1, MAX_QPS)), tiers=tiers,
    )


def _nvl72(draw, max_gpus):
    racks = draw(st.integers(1, min(MAX_NVL72_RACKS, max_gpus // NVL72_GPUS)))
    nic = draw(st.sampled_from(_nics_for("infiniband")))
    switch = draw(st.sampled_from(_switches_for(NICS[nic].bandwidth, "infiniband")))
    rail_optimized = draw(st.booleans())
    tiers, oversubscription = _draw_clos(
        draw, hosts=racks * NVL72_TRAYS, rails=NVL72_TRAY_GPUS, link=NICS[nic].bandwidth, switch=switch,
        rail_optimized=rail_optimized,
    )
    return dict(
        racks=racks, nic=nic, switch=switch, routing=draw(st.sampled_from(ROUTINGS)),
        rail_optimized=rail_optimized, tiers=tiers, oversubscription=oversubscription,
    )


_PARAMETERS = {
    "fat_tree": _fat_tree,
    "dgx_superpod": _dgx_superpod,
    "spectrum_x": _spectrum_x,
    "rail_only": _rail_only,
    "nvl72": _nvl72,
}
