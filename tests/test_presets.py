"""Presets of published clusters against the figures their sources give, computed from the
graph (not from the builder's arguments)."""

from collections import Counter

import pytest

import fabric
from fabric.presets import META_OVERSUBSCRIPTION, describe


def _switches(G):
    return dict(sorted(Counter((d["tier"], d["model"]) for _, d in G.nodes(data=True) if d["kind"] == "switch")
                       .items()))


def _capacity(G, edges):
    return sum(G.edges[e]["bandwidth"] for e in edges)


@pytest.fixture(scope="module")
def meta():
    return fabric.preset("meta-llama3")


def test_meta_llama3_is_the_cluster_the_llama3_paper_describes(meta):
    G = meta
    kinds = dict(G.nodes(data="kind"))
    tier = dict(G.nodes(data="tier"))
    gpus = [n for n, k in kinds.items() if k == "gpu"]
    assert len(gpus) == 24_576
    # Llama 3 paper: each rack's ToR serves 2 servers of 8 GPUs (one NIC per GPU)
    tors = [n for n in G if tier.get(n) == 1]
    assert len(tors) == 1_536
    nics_under = {t: sum(1 for u in G.predecessors(t) if kinds[u] == "nic") for t in tors}
    assert set(nics_under.values()) == {16}
    hosts_under = {t: {G.nodes[u]["host"] for u in G.predecessors(t) if kinds[u] == "nic"} for t in tors}
    assert {len(h) for h in hosts_under.values()} == {2}
    # 8 pods of 192 racks (3,072 GPUs), each at full bisection: every ToR sends up what it takes in
    pods = Counter(G.nodes[t]["pod"] for t in tors)
    assert sorted(pods.values()) == [192] * 8
    for t in tors:
        down = _capacity(G, [(u, t) for u in G.predecessors(t) if kinds[u] == "nic"])
        up = _capacity(G, [(t, v) for v in G.successors(t) if tier.get(v) == 2])
        assert up == down
    # above each pod, 1:7 as nearly as whole cables allow: GPU-facing over aggregation-facing capacity
    for pod in range(8):
        spines = {n for n in G if tier.get(n) == 2 and G.nodes[n]["pod"] == pod}
        facing_pod = _capacity(G, [(t, s) for t in tors if G.nodes[t]["pod"] == pod for s in G.successors(t)
                                   if s in spines])
        facing_up = _capacity(G, [(s, v) for s in spines for v in G.successors(s) if tier.get(v) == 3])
        assert facing_pod / facing_up == pytest.approx(META_OVERSUBSCRIPTION)
        assert abs(facing_pod / facing_up - 7) < 0.12
    assert G.graph["routing"] == "ecmp" and G.graph["qps"] == 16  # 16 flows per GPU pair (Llama 3 paper)
    assert fabric.validate(G) == []


@pytest.mark.parametrize("gpus, pods", [(8_192, [2048, 3072, 3072]), (16_384, [1024] + [3072] * 5)])
def test_meta_llama3_scaled_down_is_partly_filled_pods(gpus, pods):
    # Llama 3 pre-training used 8,192 and 16,384 GPUs of the 24k cluster: pods fill in order
    G = fabric.preset("meta-llama3", gpus=gpus)
    per_pod = Counter()
    for n, d in G.nodes(data=True):
        if d["kind"] == "nic":
            leaf = next(v for v in G.successors(n) if G.nodes[v]["kind"] == "switch")
            per_pod[G.nodes[leaf]["pod"]] += 1
    assert sorted(per_pod.values()) == pods


@pytest.mark.parametrize("name", ["dgx-h100-superpod", "dgx-b200-superpod"])
def test_dgx_superpods_match_nvidias_compute_fabric_table(name):
    # DGX SuperPOD reference architectures, compute fabric table, 4 SU (127 servers): 32 leaf
    # and 16 spine QM9700 switches
    assert _switches(fabric.preset(name)) == {(1, "qm9700"): 32, (2, "qm9700"): 16}


def test_every_preset_builds_valid_and_says_where_it_comes_from():
    for name, line in fabric.PRESETS.items():
        if name == "xai-colossus":
            G = fabric.preset(name, gpus=4096)  # the full 100k takes seconds; the design is the same
        else:
            G = fabric.preset(name)
        assert fabric.validate(G) == [], name
        assert G.graph["preset"] == name and G.graph["name"].startswith(name)
        text = describe(name)
        assert line in text and "sources:" in text and "assumed:" in text


def test_preset_overrides_and_errors():
    G = fabric.preset("meta-llama3", gpus=2048, routing="adaptive", qps=1)
    assert (G.graph["routing"], G.graph["qps"]) == ("adaptive", 1)
    with pytest.raises(fabric.InvalidSpec, match="name='meta' must be one of 'meta-llama3'"):
        fabric.preset("meta")
    with pytest.raises(fabric.InvalidSpec, match="name='alibaba-hpn': .*dual-ToR, dual-plane.*cannot be built yet"):
        fabric.preset("alibaba-hpn")
    with pytest.raises(fabric.InvalidSpec, match=r"gpus=24 must be a multiple of 16 \(whole racks of meta-llama3\)"):
        fabric.preset("meta-llama3", gpus=24)
    with pytest.raises(fabric.InvalidSpec, match="built by fabric.nvl72, which takes no pod_nodes; it takes"):
        fabric.preset("dgx-gb200-superpod", pod_nodes=4)
