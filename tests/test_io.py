"""JSON round trips keep every attribute, with its type and exact value."""

import math

import numpy as np
import pytest

import fabric
from fabric.catalog import NICS
from fabric.io import from_json, load, save, to_json


def _typed(value):
    """``value`` with the type of every leaf attached, so 1 and 1.0 or a tuple and a list differ."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return (type(value), [_typed(item) for item in value])
    return (type(value), value)


def _snapshot(G):
    return (
        _typed(dict(G.graph)),
        [(node, _typed(data)) for node, data in G.nodes(data=True)],
        [(u, v, _typed(data)) for u, v, data in G.edges(data=True)],
    )


BUILDS = [
    lambda: fabric.dgx_superpod(40),
    lambda: fabric.dgx_superpod(20, gpu="A100"),
    lambda: fabric.dgx_superpod(257, gpu="B200"),  # three tiers
    lambda: fabric.spectrum_x(70),
    lambda: fabric.fat_tree(48, switch="tomahawk4", pod_nodes=24, oversubscription=3, rail_optimized=False),
    lambda: fabric.fat_tree(8, gpu="A100", nic_bandwidth=200 * fabric.units.Gbps, switch="qm8700", qps=4),
    lambda: fabric.rail_only(8),
    lambda: fabric.nvl72(2),
]


@pytest.mark.parametrize("build", BUILDS)
def test_round_trip_is_identical_on_every_builder(build):
    G = build()
    H = from_json(to_json(G))
    assert _snapshot(H) == _snapshot(G)
    assert H.graph["gpu"] == G.graph["gpu"] and type(H.graph["gpu"]) is type(G.graph["gpu"])


def test_round_trip_after_user_changes():
    G = fabric.dgx_superpod(31)
    G.remove_node("spine2")
    G.edges["leaf0", "spine0"]["bandwidth"] *= 0.5
    G.edges["gpu0", "nic0"]["latency"] = 0.1 + 0.2  # not a short decimal
    G.nodes["gpu1"]["note"] = {"tags": ("hot", 2), "limit": None, "ok": True, "ratio": 1 / 3, "big": 2**70}
    G.graph["nic"] = NICS["bluefield3"]  # a spec holding a tuple field
    G.graph["params"]["limit"] = math.inf
    H = from_json(to_json(G))
    assert _snapshot(H) == _snapshot(G)
    assert "spine2" not in H
    assert H.edges["leaf0", "spine0"]["bandwidth"] == 8 * 400e9 / 8 / 2
    assert H.edges["gpu0", "nic0"]["latency"] == 0.30000000000000004
    assert H.nodes["gpu1"]["note"]["tags"] == ("hot", 2)
    assert H.graph["nic"] == NICS["bluefield3"] and type(H.graph["nic"].transports) is tuple


def test_numpy_scalars_come_back_as_equal_python_numbers():
    G = fabric.dgx_superpod(2)
    G.nodes["gpu2"]["peak"] = np.float64(1e-300)
    G.nodes["gpu3"]["spares"] = np.int64(7)
    H = from_json(to_json(G))
    assert _typed(H.nodes["gpu2"]["peak"]) == (float, 1e-300)
    assert _typed(H.nodes["gpu3"]["spares"]) == (int, 7)


def test_save_and_load(tmp_path):
    G = fabric.nvl72(1)
    save(G, tmp_path / "rack.json")
    assert _snapshot(load(tmp_path / "rack.json")) == _snapshot(G)
    save(G, str(tmp_path / "again.json"))
    assert _snapshot(load(str(tmp_path / "again.json"))) == _snapshot(G)


def test_node_names_keep_their_type():
    G = fabric.dgx_superpod(2)
    G.add_edge(("rack", 0), 7, bandwidth=1.0, latency=0.0, medium="pcie", links=1)
    H = from_json(to_json(G), strict=False)  # not a valid fabric any more: nodes without a kind
    assert list(H) == list(G) and H.has_edge(("rack", 0), 7)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda G: G.nodes["gpu0"].update(seen={1}), r"node 'gpu0'\['seen'\]=\{1\} has type set"),
        (lambda G: G.graph.update(extra={1: "a"}), r"G.graph\['extra'\] has key 1; keys must be str"),
        (lambda G: G.graph.update(extra={"__fabric__": 1}), "has key '__fabric__', which fabric.io reserves"),
        (lambda G: G.edges["gpu0", "nic0"].update(f=len), r"edge \('gpu0', 'nic0'\)\['f'\]=<built-in"),
    ],
)
def test_values_json_cannot_hold_exactly_are_refused(edit, message):
    G = fabric.dgx_superpod(2)
    edit(G)
    with pytest.raises(fabric.InvalidSpec, match=message):
        to_json(G)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "text is not JSON"),
        ('{"format": "fabric-graph", "version": 99}', "version=99 must be 1"),
        ("[1, 2]", r"format=\[1, 2\] must be 'fabric-graph'"),
        ('{"format": "fabric-graph", "version": 1, "graph": {}}', "malformed fabric-graph document: KeyError"),
        ('{"format": "fabric-graph", "version": 1, "graph": {}, "nodes": [["a"]], "edges": []}',
         "malformed fabric-graph document: ValueError"),
        ('{"format": "fabric-graph", "version": 1, "graph": {"x": {"__fabric__": "tuple"}}}',
         "malformed tagged value in the document: KeyError"),
        ('{"x": {"__fabric__": "GPUSpec", "fields": {"name": "X"}}}', "malformed tagged value .*TypeError"),
        ('{"x": {"__fabric__": "set", "items": []}}', "__fabric__='set' must be one of 'tuple', 'GPUSpec'"),
    ],
)
def test_bad_documents_are_refused(text, message):
    with pytest.raises(fabric.InvalidSpec, match=message):
        from_json(text)


def test_a_tampered_spec_is_validated_again():
    text = to_json(fabric.dgx_superpod(2)).replace('"power":700', '"power":-700', 1)
    with pytest.raises(fabric.InvalidSpec, match="power=-700 must be > 0"):
        from_json(text)


def test_refuses_multigraphs():
    import networkx as nx

    with pytest.raises(fabric.InvalidSpec, match="G must be a networkx.DiGraph, got MultiDiGraph"):
        to_json(nx.MultiDiGraph())


def _document(edit):
    G = fabric.dgx_superpod(2)
    edit(G)
    return to_json(G)


@pytest.mark.parametrize("edit, message", [
    (lambda G: G.edges["nic0", "leaf0"].update(bandwidth="abc"), "bandwidth='abc'"),
    (lambda G: G.nodes["gpu3"].pop("rank"), "node 'gpu3' has no attribute 'rank'"),
    (lambda G: G.add_edge("gpu0", "ghost", bandwidth=1e9, latency=0.0, medium="pcie", links=1), "ghost"),
])
def test_a_loaded_fabric_is_checked(edit, message, tmp_path):
    text = _document(edit)
    with pytest.raises(fabric.InvalidSpec, match=message):
        from_json(text)
    (tmp_path / "bad.json").write_text(text, encoding="utf-8")
    with pytest.raises(fabric.InvalidSpec, match=message):
        load(tmp_path / "bad.json")


@pytest.mark.parametrize("text, message", [
    ('{"format": "fabric-graph", "version": 1, "graph": {"x": ' + "9" * 5000 + "}}", "cannot read"),
    ("[" * 2000 + "]" * 2000, "nests too deeply|format="),
    (None, "must be the JSON text of a fabric"),
])
def test_unreadable_documents_are_typed_errors(text, message):
    with pytest.raises(fabric.InvalidSpec, match=message):
        from_json(text)


def test_a_file_that_is_not_utf8_is_a_typed_error(tmp_path):
    (tmp_path / "latin.json").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(fabric.InvalidSpec, match="is not UTF-8"):
        load(tmp_path / "latin.json")
