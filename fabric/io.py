"""Save and load fabrics as JSON, preserving every node, edge and graph attribute exactly.

The document is ``{"format": "fabric-graph", "version": 1, "graph": {...}, "nodes":
[[name, {...}], ...], "edges": [[u, v, {...}], ...]}`` in the graph's node and edge order.
Values are stored as JSON where JSON has the type (None, bool, int, float, str, list,
dict with str keys); floats are written with :func:`repr`, which reads back to the same
float (``inf`` and ``nan`` as ``Infinity`` and ``NaN``, as Python's json module does).
Other values are tagged objects ``{"__fabric__": type, ...}``: tuples, and the catalog
specs (:class:`~fabric.catalog.GPUSpec`, ``NICSpec``, ``SwitchSpec``, ``OpticSpec``),
which are validated again when read. numpy scalars come back as the Python ``int`` or
``float`` of the same value. Anything else is refused with ``InvalidSpec`` naming where
it is, rather than stored approximately.

Examples
--------
>>> import fabric
>>> G = fabric.dgx_superpod(2)
>>> H = from_json(to_json(G))
>>> H.graph == G.graph, list(H.nodes(data=True)) == list(G.nodes(data=True))
(True, True)
"""

import dataclasses
import json
import numbers
from pathlib import Path

import networkx as nx

from fabric.catalog import GPUSpec, NICSpec, OpticSpec, SwitchSpec
from fabric.checks import require_bool
from fabric.errors import InvalidSpec
from fabric.validate import check

FORMAT = "fabric-graph"
VERSION = 1
_TAG = "__fabric__"
_SPECS = {cls.__name__: cls for cls in (GPUSpec, NICSpec, SwitchSpec, OpticSpec)}
_JSON_SCALARS = (str, int, float, bool, type(None))


def _encode(value, where):
    """``value`` as JSON-ready data; ``where`` names it in error messages."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list):
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, dict):
        return _encode_dict(value, where)
    if type(value) is _SPECS.get(type(value).__name__):
        fields = {f.name: _encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
        return {_TAG: type(value).__name__, "fields": fields}
    raise InvalidSpec(f"{where}={value!r} has type {type(value).__name__}, which fabric.io cannot store")


def _encode_dict(value, where):
    for key in value:
        if not isinstance(key, str):
            raise InvalidSpec(f"{where} has key {key!r}; keys must be str to be stored as JSON")
        if key == _TAG:
            raise InvalidSpec(f"{where} has key {_TAG!r}, which fabric.io reserves")
    # Plain JSON scalars, almost every attribute, skip the recursion: it doubles the time.
    return {
        key: item if type(item) in _JSON_SCALARS else _encode(item, f"{where}[{key!r}]") for key, item in value.items()
    }


def _decode(obj):
    """json object_hook: turn tagged objects back into tuples and specs."""
    tag = obj.get(_TAG)
    if tag is None:
        return obj
    if tag == "tuple":
        return tuple(obj["items"])
    if tag in _SPECS:
        return _SPECS[tag](**obj["fields"])
    raise InvalidSpec(f"{_TAG}={tag!r} must be one of 'tuple', {', '.join(repr(name) for name in _SPECS)}")


def to_json(G):
    """Serialize a fabric to a JSON string that :func:`from_json` reads back exactly.

    Parameters
    ----------
    G : networkx.DiGraph

    Returns
    -------
    str

    Raises
    ------
    InvalidSpec
        If an attribute holds a value JSON cannot store exactly (named in the message).

    Examples
    --------
    >>> import fabric
    >>> text = to_json(fabric.dgx_superpod(2))
    >>> text[:40]
    '{"format":"fabric-graph","version":1,"gr'
    >>> G = fabric.dgx_superpod(2)
    >>> G.nodes["gpu0"]["note"] = {1, 2}
    >>> to_json(G)
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: node 'gpu0'['note']={1, 2} has type set, which fabric.io cannot store
    """
    if not isinstance(G, nx.DiGraph) or G.is_multigraph():
        raise InvalidSpec(f"G must be a networkx.DiGraph, got {type(G).__name__}")
    document = {
        "format": FORMAT,
        "version": VERSION,
        "graph": _encode_dict(G.graph, "G.graph"),
        "nodes": [[_encode(n, "node name"), _encode_dict(d, f"node {n!r}")] for n, d in G.nodes(data=True)],
        "edges": [
            [_encode(u, "node name"), _encode(v, "node name"), _encode_dict(d, f"edge ({u!r}, {v!r})")]
            for u, v, d in G.edges(data=True)
        ],
    }
    return json.dumps(document, separators=(",", ":"))


def from_json(text, *, strict=True):
    """Rebuild a fabric from :func:`to_json` output.

    The graph is checked as :func:`fabric.validate.check` does: a document that parses but is
    not a valid fabric (a bandwidth ``"abc"``, an edge to a node that does not exist, a GPU
    without a rank) raises ``InvalidSpec`` listing what is wrong.

    Parameters
    ----------
    text : str
    strict : bool
        False returns the graph as stored, unchecked (a draft that is not a fabric yet).

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> import fabric
    >>> G = from_json(to_json(fabric.dgx_superpod(2, gpu="A100")))
    >>> G.graph["gpu"].name, G.edges["leaf0", "spine0"]["links"]
    ('A100', 5)
    >>> from_json('{"format": "csv"}')
    Traceback (most recent call last):
    ...
    fabric.errors.InvalidSpec: format='csv' must be 'fabric-graph'
    """
    if not isinstance(text, (str, bytes, bytearray)):
        raise InvalidSpec(f"text={text!r:.80} must be the JSON text of a fabric")
    try:
        document = json.loads(text, object_hook=_decode)
    except json.JSONDecodeError as error:
        raise InvalidSpec(f"text is not JSON: {error}") from None
    except (KeyError, TypeError) as error:  # a tagged value without its fields, or with unknown ones
        raise InvalidSpec(f"malformed tagged value in the document: {error!r}") from None
    except RecursionError:
        raise InvalidSpec("the document nests too deeply to be a fabric") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise InvalidSpec(f"the document holds a value Python cannot read: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else document
        raise InvalidSpec(f"format={found!r} must be {FORMAT!r}")
    if document.get("version") != VERSION:
        raise InvalidSpec(f"version={document.get('version')!r} must be {VERSION}")
    G = nx.DiGraph()
    try:
        G.graph.update(document["graph"])
        G.add_nodes_from((name, data) for name, data in document["nodes"])
        G.add_edges_from((u, v, data) for u, v, data in document["edges"])
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidSpec(f"malformed {FORMAT} document: {error!r}") from None
    return check(G) if require_bool("strict", strict) else G


def save(G, path):
    """Write :func:`to_json` of ``G`` to ``path`` (UTF-8).

    Examples
    --------
    >>> import fabric, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pod.json")
    >>> save(fabric.dgx_superpod(2), path)
    >>> load(path).number_of_nodes()  # 16 GPUs, 16 NICs, 2 NVSwitch nodes, 8 leaves, 4 spines
    46
    """
    Path(path).write_text(to_json(G), encoding="utf-8")


def load(path, *, strict=True):
    """Read a fabric written by :func:`save`, checked as :func:`from_json` checks it
    (``strict=False``: unchecked).

    Examples
    --------
    >>> import fabric, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "pod.json")
    >>> save(fabric.spectrum_x(2), path)
    >>> load(path).graph["transport"]
    'ethernet'
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InvalidSpec(f"{path} is not UTF-8 text (as save writes): {error}") from None
    return from_json(text, strict=strict)
