"""Check a fabric graph against :mod:`fabric.schema`, listing every problem found.

Builders always produce valid graphs; graphs loaded from files or edited by hand may
not. :func:`validate` lists the problems in words, :func:`check` raises on them.

Examples
--------
>>> import fabric
>>> G = fabric.dgx_superpod(2)
>>> validate(G)
[]
>>> G.edges["nic0", "leaf0"]["bandwidth"] = 0
>>> G.remove_edge("leaf0", "nic0")
>>> for problem in validate(G):
...     print(problem)
edge ('nic0', 'leaf0'): bandwidth=0 must be a finite number >= 1 bytes/s
edge ('nic0', 'leaf0') has no reverse edge ('leaf0', 'nic0')
"""

import networkx as nx

from fabric.parts import check_own_specs, model_spec
from fabric.checks import require_choice, require_int, require_non_negative
from fabric.errors import InvalidSpec
from fabric.schema import (
    EDGE_ATTRS,
    GRAPH_ATTRS,
    KINDS,
    MEDIA,
    MIN_BANDWIDTH,
    NODE_ATTRS,
    ROUTINGS,
    TRANSPORTS,
    edge_attr,
    gpu_nodes,
    graph_attr,
    is_bandwidth,
    node_attr,
)

# GPUs named in a reachability problem, and problems quoted by check(), before "... more".
MAX_NAMED = 10

_GRAPH_VALUE_CHECKS = {
    "transport": lambda value: require_choice("transport", value, TRANSPORTS),
    "routing": lambda value: require_choice("routing", value, ROUTINGS),
    "gpus_per_node": lambda value: require_int("gpus_per_node", value, minimum=1),
    "qps": lambda value: require_int("qps", value, minimum=1),
    "specs": check_own_specs,
}
# Integer node attributes: the smallest value each may take. The rail and plane of a switch
# are optional (rail-optimized leaves, multi-plane fabrics), the others are required by NODE_ATTRS.
_NODE_INT_MINIMUM = {"tier": 1, "host": 0, "local_rank": 0, "rail": 0, "domain": 0, "pod": 0, "plane": 0, "site": 0}
_EDGE_VALUE_CHECKS = {
    "bandwidth": lambda value: _bandwidth_check(value),
    "latency": lambda value: require_non_negative("latency", value),
    "medium": lambda value: require_choice("medium", value, MEDIA),
    "links": lambda value: require_int("links", value, minimum=1),
}


def _bandwidth_check(value):
    """The bound :func:`fabric.schema.edge_bandwidth` applies where algorithms read it."""
    if not is_bandwidth(value):
        raise InvalidSpec(f"bandwidth={value!r:.80} must be a finite number >= {MIN_BANDWIDTH:g} bytes/s")


def _error(check, *args):
    """The message of the InvalidSpec that ``check(*args)`` raises, or None."""
    try:
        check(*args)
    except InvalidSpec as error:
        return str(error)
    return None


def _graph_problems(G):
    problems = [_error(graph_attr, G, name) for name in GRAPH_ATTRS]
    for name, check in _GRAPH_VALUE_CHECKS.items():
        if name in G.graph:
            message = _error(check, G.graph[name])
            problems.append(message and f"G.graph: {message}")
    return problems  # graph_attr also says when G.graph["gpu"] is not a GPU spec


def _node_problems(G):
    problems, models = [], set()
    for node in G:
        kind = G.nodes[node].get("kind")
        if kind is None:
            problems.append(_error(node_attr, G, node, "kind"))
        elif kind not in KINDS:
            problems.append(f"node {node!r}: {_error(require_choice, 'kind', kind, KINDS)}")
        else:
            problems += [_error(node_attr, G, node, name) for name in NODE_ATTRS[kind]]
            data = G.nodes[node]
            for name, minimum in _NODE_INT_MINIMUM.items():
                if name in data:
                    message = _error(lambda value: require_int(name, value, minimum=minimum), data[name])
                    problems.append(message and f"node {node!r}: {message}")
            if kind in ("switch", "nic") and "model" in data:
                models.add((kind, data["model"]))
    # each model once: its spec, the graph's own or the catalog's, is what the bill of materials reads
    for kind, model in sorted(models, key=repr):
        message = _error(model_spec, G, kind, model)
        problems.append(message and f"{kind} nodes: {message}")
    return problems


def _edge_problems(G):
    problems = []
    for u, v, data in G.edges(data=True):
        for name in EDGE_ATTRS:
            if name not in data:
                problems.append(_error(edge_attr, G, u, v, name))
            else:
                message = _error(_EDGE_VALUE_CHECKS[name], data[name])
                problems.append(message and f"edge ({u!r}, {v!r}): {message}")
        if not G.has_edge(v, u):
            problems.append(f"edge ({u!r}, {v!r}) has no reverse edge ({v!r}, {u!r})")
    return problems


def _named(nodes):
    names = ", ".join(repr(node) for node in nodes[:MAX_NAMED])
    return names + (f" and {len(nodes) - MAX_NAMED} more" if len(nodes) > MAX_NAMED else "")


def _reachability_problem(G):
    """GPUs outside the strongly connected component holding most GPUs, or None."""
    gpus = {node for node, kind in G.nodes(data="kind") if kind == "gpu"}
    if not gpus:
        return None
    largest = max((component & gpus for component in nx.strongly_connected_components(G)), key=len)
    cut_off = sorted(gpus - largest, key=lambda node: G.nodes[node].get("rank", -1))
    if not cut_off:
        return None
    return f"GPUs not mutually reachable with the other {len(largest)} GPUs: {_named(cut_off)}"


def validate(G):
    """List the problems of a fabric graph; an empty list means it is valid.

    Checks, each problem naming the node, edge or graph attribute:

    - every attribute required by :mod:`fabric.schema` (``GRAPH_ATTRS``, ``NODE_ATTRS`` per
      kind, ``EDGE_ATTRS``) is present;
    - ``kind``, ``medium``, ``transport`` and ``routing`` take known values;
      ``bandwidth`` is finite and at least :data:`~fabric.schema.MIN_BANDWIDTH`,
      ``latency >= 0``, ``links``, ``gpus_per_node`` and ``qps`` are integers >= 1,
      ``tier`` an integer >= 1, ``host``, ``local_rank``, ``rail``, ``domain`` and ``pod``
      integers >= 0, ``G.graph["gpu"]`` is a :class:`~fabric.catalog.GPUSpec`;
    - GPU ranks are exactly 0..n-1;
    - every edge has its reverse (a full-duplex cable is two directed edges);
    - every GPU can reach every other: GPUs outside the strongly connected component that
      holds most GPUs are named.

    Parameters
    ----------
    G : networkx.DiGraph

    Returns
    -------
    list of str

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(2)
    >>> G.remove_edge("gpu3", "nvswitch0")    # one direction of an NVLink
    >>> for problem in validate(G):
    ...     print(problem)
    edge ('nvswitch0', 'gpu3') has no reverse edge ('gpu3', 'nvswitch0')
    >>> G.remove_node("nic3")                 # now gpu3 cannot send at all
    >>> for problem in validate(G):
    ...     print(problem)
    edge ('nvswitch0', 'gpu3') has no reverse edge ('gpu3', 'nvswitch0')
    GPUs not mutually reachable with the other 15 GPUs: 'gpu3'
    """
    problems = _graph_problems(G) + _node_problems(G) + _edge_problems(G)
    problems.append(_error(gpu_nodes, G))
    problems.append(_reachability_problem(G))
    # Drop the checks that passed (None) and what two checks both find (a missing kind or rank).
    return list(dict.fromkeys(problem for problem in problems if problem is not None))


def check(G):
    """Return ``G`` if it is a valid fabric, else raise ``InvalidSpec`` listing the problems.

    Parameters
    ----------
    G : networkx.DiGraph

    Returns
    -------
    networkx.DiGraph
        ``G`` itself, so ``G = check(load(path))`` reads naturally.

    Raises
    ------
    InvalidSpec
        Quoting the first problems that :func:`validate` finds.

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(2)
    >>> del G.nodes["gpu5"]["rank"]
    >>> check(G)
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: 1 problem in the fabric: node 'gpu5' has no attribute 'rank'
    """
    problems = validate(G)
    if problems:
        more = f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
        noun = "problem" if len(problems) == 1 else "problems"
        raise InvalidSpec(f"{len(problems)} {noun} in the fabric: " + "; ".join(problems[:MAX_NAMED]) + more)
    return G
