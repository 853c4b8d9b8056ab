"""validate() names each schema problem; check() raises on them."""

import pytest

import fabric
from fabric.validate import check, validate

BUILDS = [
    lambda: fabric.dgx_superpod(40),
    lambda: fabric.dgx_superpod(20, gpu="A100"),
    lambda: fabric.spectrum_x(70),
    lambda: fabric.fat_tree(48, switch="tomahawk4", pod_nodes=24, oversubscription=3, rail_optimized=False),
    lambda: fabric.rail_only(8),
    lambda: fabric.nvl72(2),
]


@pytest.mark.parametrize("build", BUILDS)
def test_builders_make_valid_fabrics(build):
    G = build()
    assert validate(G) == []
    assert check(G) is G


def _delete(mapping, key):
    del mapping[key]


def _set(mapping, key, value):
    mapping[key] = value


def _rerank(G, node, rank):
    G.nodes[node]["rank"] = rank


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda G: _delete(G.graph, "routing"), "graph has no attribute 'routing' (G.graph['routing'])"),
        (lambda G: _set(G.graph, "routing", "ospf"), "G.graph: routing='ospf' must be one of 'adaptive', 'ecmp'"),
        (lambda G: _set(G.graph, "transport", "myrinet"), "G.graph: transport='myrinet' must be one of"),
        (lambda G: _set(G.graph, "qps", 0), "G.graph: qps=0 must be >= 1"),
        (lambda G: _set(G.graph, "gpus_per_node", 8.0), "G.graph: gpus_per_node=8.0 must be an integer"),
        (lambda G: _set(G.graph, "gpu", "H100"), "G.graph['gpu']='H100' must be a GPU spec"),
        (lambda G: _delete(G.nodes["leaf0"], "tier"), "node 'leaf0' has no attribute 'tier'"),
        (lambda G: _delete(G.nodes["gpu3"], "local_rank"), "node 'gpu3' has no attribute 'local_rank'"),
        (lambda G: _delete(G.nodes["nic3"], "kind"), "node 'nic3' has no attribute 'kind'"),
        (lambda G: _set(G.nodes["leaf0"], "kind", "router"), "node 'leaf0': kind='router' must be one of 'gpu',"),
        (lambda G: _delete(G.edges["nic0", "leaf0"], "latency"), "edge ('nic0', 'leaf0') has no attribute 'latency'"),
        (lambda G: _set(G.edges["nic0", "leaf0"], "medium", "copper"),
         "edge ('nic0', 'leaf0'): medium='copper' must be one of 'nvlink', 'pcie', 'infiniband', 'ethernet'"),
        (lambda G: _set(G.edges["leaf0", "spine1"], "bandwidth", 0.0),
         "edge ('leaf0', 'spine1'): bandwidth=0.0 must be a finite number >= 1 bytes/s"),
        (lambda G: _set(G.edges["leaf0", "spine1"], "bandwidth", -5),
         "edge ('leaf0', 'spine1'): bandwidth=-5 must be a finite number >= 1 bytes/s"),
        (lambda G: _set(G.edges["leaf0", "spine1"], "bandwidth", 1e-300),
         "edge ('leaf0', 'spine1'): bandwidth=1e-300 must be a finite number >= 1 bytes/s"),
        (lambda G: _set(G.nodes["leaf0"], "tier", None), "node 'leaf0': tier=None must be an integer"),
        (lambda G: _set(G.nodes["leaf0"], "rail", "r"), "node 'leaf0': rail='r' must be an integer"),
        (lambda G: _set(G.nodes["gpu3"], "host", -1), "node 'gpu3': host=-1 must be >= 0"),
        (lambda G: _set(G.nodes["gpu0"], "rank", [1]), "node 'gpu0' rank=[1] must be an integer"),
        (lambda G: _set(G.edges["gpu0", "nic0"], "latency", -1e-9),
         "edge ('gpu0', 'nic0'): latency=-1e-09 must be >= 0"),
        (lambda G: _set(G.edges["leaf0", "spine1"], "links", 0), "edge ('leaf0', 'spine1'): links=0 must be >= 1"),
        (lambda G: _set(G.edges["leaf0", "spine1"], "links", 1.5),
         "edge ('leaf0', 'spine1'): links=1.5 must be an integer"),
        (lambda G: G.remove_edge("spine1", "leaf0"),
         "edge ('leaf0', 'spine1') has no reverse edge ('spine1', 'leaf0')"),
        (lambda G: _rerank(G, "gpu15", 99), "GPU ranks must be 0..15; rank 15 is missing"),
        (lambda G: _rerank(G, "gpu15", 3), "rank=3 is carried by both 'gpu3' and 'gpu15'"),
    ],
)
def test_each_problem_is_named(edit, problem):
    G = fabric.dgx_superpod(2)
    edit(G)
    found = validate(G)
    assert len(found) == 1, found
    assert found[0].startswith(problem)


def test_gpus_that_cannot_reach_the_others_are_named():
    G = fabric.dgx_superpod(4)
    for rank in (8, 9):  # cut two GPUs off both ways, keeping every remaining edge paired
        G.remove_node(f"nic{rank}")
        G.remove_edges_from([(f"gpu{rank}", "nvswitch1"), ("nvswitch1", f"gpu{rank}")])
    assert validate(G) == ["GPUs not mutually reachable with the other 30 GPUs: 'gpu8', 'gpu9'"]


def test_one_way_reachability_is_a_problem_too():
    G = fabric.dgx_superpod(2)
    G.remove_node("nic5")
    G.remove_edge("gpu5", "nvswitch0")  # gpu5 still receives over NVLink but cannot send
    problems = validate(G)
    assert problems[-1] == "GPUs not mutually reachable with the other 15 GPUs: 'gpu5'"


def test_every_problem_is_listed():
    G = fabric.dgx_superpod(2)
    del G.graph["qps"]
    del G.nodes["spine0"]["model"]
    G.edges["nic1", "leaf1"]["links"] = -2
    assert validate(G) == [
        "graph has no attribute 'qps' (G.graph['qps'])",
        "node 'spine0' has no attribute 'model'",
        "edge ('nic1', 'leaf1'): links=-2 must be >= 1",
    ]


def test_check_quotes_the_first_problems():
    G = fabric.dgx_superpod(2)
    for rank in range(12):
        del G.nodes[f"gpu{rank}"]["domain"]
    with pytest.raises(fabric.InvalidSpec, match=r"^12 problems in the fabric: node 'gpu0' has no attribute 'domain'; "
                       r".*node 'gpu9' has no attribute 'domain'; and 2 more$"):
        check(G)
