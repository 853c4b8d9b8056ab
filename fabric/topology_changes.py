"""Hypothesis strategies that draw topology changes of a given fabric: failed cables,
failed switches, degraded links, or a mix (:class:`TopologyChange`, applied to a copy).
:mod:`fabric.strategies` exports them beside its fabric strategies; import this module
only in tests, as it imports :mod:`hypothesis`.
"""

from collections import Counter
from dataclasses import dataclass

from hypothesis import strategies as st

from fabric.checks import require_int, require_positive
from fabric.errors import InvalidSpec
from fabric.schema import edge_attr, node_attr

@dataclass(frozen=True, kw_only=True, repr=False)
class TopologyChange:
    """A set of failures and degradations, applied to a copy of a fabric.

    Cables are named by their two end nodes, either order. An edge of the graph stands
    for ``links`` parallel cables (schema ``links``); failing one removes its share of
    the bandwidth, failing the last removes the edge pair.

    Attributes
    ----------
    failed_links : tuple of (str, str)
        One entry per failed cable, in both directions; repeat a pair to fail several
        of its parallel cables. Failing a NIC's only cable can cut a host off.
    failed_switches : tuple of str
        Switch nodes removed with all their edges; may disconnect the fabric.
    degraded_links : tuple of (str, str, float)
        Edge pairs whose bandwidth, both directions, is multiplied by a factor in (0, 1].

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(31)
    >>> G.edges["leaf0", "spine0"]["links"]
    8
    >>> H = TopologyChange(failed_links=(("leaf0", "spine0"), ("spine0", "leaf0"))).apply(G)
    >>> H.edges["leaf0", "spine0"]["links"]
    6
    >>> H.edges["spine0", "leaf0"]["bandwidth"] / G.edges["spine0", "leaf0"]["bandwidth"]
    0.75
    >>> TopologyChange(degraded_links=(("leaf0", "spine0", 1.5),))
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: degraded_links factor=1.5 of ('leaf0', 'spine0') must be <= 1
    """

    failed_links: tuple = ()
    failed_switches: tuple = ()
    degraded_links: tuple = ()

    def __post_init__(self):
        # Normalise lists to tuples so equal changes compare and hash equal.
        object.__setattr__(self, "failed_links", tuple(_pair("failed_links", p) for p in self.failed_links))
        object.__setattr__(self, "failed_switches", tuple(self.failed_switches))
        object.__setattr__(self, "degraded_links", tuple(_degradation(d) for d in self.degraded_links))

    def apply(self, G):
        """Return a changed copy of ``G``; ``G`` is left as it was.

        Degradations apply first, then cable failures, then switch failures, so any
        combination drawn from the same graph is well defined.

        Raises
        ------
        fabric.errors.InvalidSpec
            A named node or edge is not in ``G``, a failed node is not a switch, or
            more cables fail than an edge has.
        """
        H = G.copy()
        for u, v, factor in self.degraded_links:
            for a, b in ((u, v), (v, u)):
                H.edges[a, b]["bandwidth"] = edge_attr(H, a, b, "bandwidth") * factor
        for (u, v), count in Counter(tuple(sorted(p)) for p in self.failed_links).items():
            _fail_cables(H, u, v, count)
        for node in self.failed_switches:
            kind = node_attr(H, node, "kind")
            if kind != "switch":
                raise InvalidSpec(f"failed_switches names {node!r}, whose kind={kind!r} is not 'switch'")
            H.remove_node(node)
        return H

    def __str__(self):
        parts = [f"degrade {u}<->{v} to {factor:.3g}x bandwidth" for u, v, factor in self.degraded_links]
        for (u, v), count in Counter(tuple(sorted(p)) for p in self.failed_links).items():
            parts.append(f"fail {count} cable{'s' if count > 1 else ''} {u}<->{v}")
        parts += [f"fail switch {node}" for node in self.failed_switches]
        return "; ".join(parts) or "no change"

    def __repr__(self):
        fields = [f"{name}={value!r}" for name, value in vars(self).items() if value]
        return f"TopologyChange({', '.join(fields)})"

    def _repr_pretty_(self, printer, cycle):
        # Hypothesis and IPython print dataclasses field by field; the repr is shorter.
        printer.text(repr(self))


def _pair(field, pair):
    pair = tuple(pair)
    if len(pair) != 2:
        raise InvalidSpec(f"{field} entry {pair!r} must be a (u, v) pair of node names")
    return pair


def _degradation(entry):
    entry = tuple(entry)
    if len(entry) != 3:
        raise InvalidSpec(f"degraded_links entry {entry!r} must be a (u, v, factor) triple")
    u, v, factor = entry
    require_positive(f"degraded_links factor of {(u, v)!r}", factor)
    if factor > 1:
        raise InvalidSpec(f"degraded_links factor={factor} of {(u, v)!r} must be <= 1")
    return entry


def _fail_cables(H, u, v, count):
    """Fail ``count`` of the parallel cables between ``u`` and ``v``, both directions."""
    for a, b in ((u, v), (v, u)):
        links = edge_attr(H, a, b, "links")
        if count > links:
            raise InvalidSpec(f"failed_links fails {count} cables of ({a!r}, {b!r}), which has links={links}")
        if count == links:
            H.remove_edge(a, b)
        else:
            H.edges[a, b]["bandwidth"] = edge_attr(H, a, b, "bandwidth") * (links - count) / links
            H.edges[a, b]["links"] = links - count


def _cables(G):
    """Edge pairs that are network cables: NIC-to-switch and switch-to-switch.

    Each pair once, as (lower, upper): the NIC or the lower-tier switch first.
    """
    cables = []
    for u, v in G.edges:
        kind_u, kind_v = node_attr(G, u, "kind"), node_attr(G, v, "kind")
        if kind_v != "switch":
            continue
        if kind_u == "nic" or (kind_u == "switch" and node_attr(G, u, "tier") < node_attr(G, v, "tier")):
            cables.append((u, v))
    if not cables:
        raise InvalidSpec(f"G has no NIC-to-switch or switch-to-switch cable (G has {G.number_of_edges()} edges)")
    return cables


def failed_links(G, *, max_count=3):
    """Strategy for 1 to ``max_count`` failed cables of ``G``.

    Draws among NIC-to-switch and switch-to-switch cables, each of an edge's ``links``
    parallel cables separately. Failing a NIC's cable (or every cable of an edge) can
    disconnect the fabric; tests that need a connected fabric should check.

    Examples
    --------
    >>> import fabric
    >>> from hypothesis import given, settings
    >>> G = fabric.rail_only(4)
    >>> @settings(max_examples=5, deadline=None)
    ... @given(failed_links(G, max_count=2))
    ... def test_fewer_edges(change):
    ...     assert change.apply(G).number_of_edges() <= G.number_of_edges() - 2
    >>> test_fewer_edges()
    """
    require_int("max_count", max_count, minimum=1)
    cables = [(u, v) for u, v in _cables(G) for _ in range(edge_attr(G, u, v, "links"))]
    indices = st.lists(st.integers(0, len(cables) - 1), min_size=1, max_size=max_count, unique=True)
    return indices.map(lambda drawn: TopologyChange(failed_links=tuple(sorted(cables[i] for i in drawn))))


def failed_switches(G, *, max_count=1, tiers=None):
    """Strategy for 1 to ``max_count`` failed switches of ``G`` (leaves, spines, cores).

    Parameters
    ----------
    G : networkx.DiGraph
    max_count : int
    tiers : sequence of int or None
        Tiers to draw from, e.g. ``(2, 3)`` for spines and cores only; None for all.

    Examples
    --------
    >>> import fabric
    >>> from hypothesis import given, settings
    >>> G = fabric.dgx_superpod(31)
    >>> @settings(max_examples=5, deadline=None)
    ... @given(failed_switches(G, tiers=(2,)))
    ... def test_a_spine_dies(change):
    ...     (spine,) = change.failed_switches
    ...     assert G.nodes[spine]["tier"] == 2 and spine not in change.apply(G)
    >>> test_a_spine_dies()
    >>> failed_switches(G, tiers=(3,))
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: tiers=(3,) selects no switch of G (its tiers: 1, 2)
    """
    require_int("max_count", max_count, minimum=1)
    tier_of = {node: node_attr(G, node, "tier") for node, kind in G.nodes(data="kind") if kind == "switch"}
    switches = [node for node, tier in tier_of.items() if tiers is None or tier in tiers]
    if not switches:
        present = ", ".join(str(t) for t in sorted(set(tier_of.values())))
        raise InvalidSpec(f"tiers={tiers!r} selects no switch of G (its tiers: {present or 'none'})")
    indices = st.lists(st.integers(0, len(switches) - 1), min_size=1, max_size=max_count, unique=True)
    return indices.map(lambda drawn: TopologyChange(failed_switches=tuple(switches[i] for i in sorted(drawn))))


def degraded_links(G, *, max_count=3, min_factor=1e-3):
    """Strategy for 1 to ``max_count`` edge pairs of ``G`` running at reduced bandwidth.

    Each drawn NIC-to-switch or switch-to-switch edge pair gets its bandwidth, both
    directions, multiplied by a factor in ``[min_factor, 1]``.

    Parameters
    ----------
    G : networkx.DiGraph
    max_count : int
    min_factor : float
        Smallest factor, in (0, 1]; the default keeps bandwidths where float round-off
        in rate solvers stays negligible. Pass a smaller one to probe extremes.

    Examples
    --------
    >>> import fabric
    >>> from hypothesis import given, settings
    >>> G = fabric.spectrum_x(8)
    >>> @settings(max_examples=5, deadline=None)
    ... @given(degraded_links(G, max_count=1))
    ... def test_slower(change):
    ...     ((u, v, factor),) = change.degraded_links
    ...     assert change.apply(G).edges[u, v]["bandwidth"] == G.edges[u, v]["bandwidth"] * factor
    >>> test_slower()
    """
    require_int("max_count", max_count, minimum=1)
    require_positive("min_factor", min_factor)
    if min_factor > 1:
        raise InvalidSpec(f"min_factor={min_factor} must be <= 1")
    cables = _cables(G)
    entries = st.tuples(st.integers(0, len(cables) - 1), st.floats(min_factor, 1.0))
    drawn = st.lists(entries, min_size=1, max_size=max_count, unique_by=lambda entry: entry[0])
    return drawn.map(
        lambda picks: TopologyChange(degraded_links=tuple((*cables[i], factor) for i, factor in sorted(picks)))
    )


def topology_changes(G, *, max_count=3):
    """Strategy for any mix of failed links, failed switches and degraded links of ``G``.

    At least one kind is drawn, each with up to ``max_count`` items.

    Examples
    --------
    >>> import fabric
    >>> from hypothesis import given, settings
    >>> G = fabric.nvl72(1)
    >>> @settings(max_examples=10, deadline=None)
    ... @given(topology_changes(G))
    ... def test_never_mutates(change):
    ...     before = G.number_of_nodes(), G.number_of_edges()
    ...     change.apply(G)
    ...     assert (G.number_of_nodes(), G.number_of_edges()) == before
    >>> test_never_mutates()
    """
    kinds = (
        failed_links(G, max_count=max_count),
        failed_switches(G, max_count=max_count),
        degraded_links(G, max_count=max_count),
    )
    return _merged_changes(kinds)


@st.composite
def _merged_changes(draw, kinds):
    chosen = draw(st.sets(st.sampled_from(range(len(kinds))), min_size=1))
    changes = [draw(kinds[i]) for i in sorted(chosen)]
    return TopologyChange(
        failed_links=sum((c.failed_links for c in changes), ()),
        failed_switches=sum((c.failed_switches for c in changes), ()),
        degraded_links=sum((c.degraded_links for c in changes), ()),
    )
