"""Presets of published clusters against the figures their sources give, computed from the
graph (not from the builder's arguments)."""

from collections import Counter

import pytest

import fabric
from fabric.presets import HPN_CORE_OVERSUBSCRIPTION, META_OVERSUBSCRIPTION, describe
from fabric.units import Gbps


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


def test_alibaba_hpn_is_the_dual_tor_dual_plane_pod_the_paper_describes():
    G = fabric.preset("alibaba-hpn")
    kinds = dict(G.nodes(data="kind"))
    tier = dict(G.nodes(data="tier"))
    nics = [n for n, k in kinds.items() if k == "nic"]
    assert len(nics) == 15_360  # HPN paper: 15K GPUs per pod, one NIC each
    # every NIC: 2 x 200G, on two ToRs in the two planes
    for nic in nics:
        ports = [v for v in G.successors(nic) if kinds[v] == "switch"]
        assert sorted(G.nodes[v]["plane"] for v in ports) == [0, 1]
        assert [G.edges[nic, v]["bandwidth"] for v in ports] == [200 * Gbps] * 2
    tors = [n for n in G if tier.get(n) == 1]
    hosts_under = {t: {G.nodes[u]["host"] for u in G.predecessors(t) if kinds[u] == "nic"} for t in tors}
    # a segment: 128 hosts (1,024 GPUs) under 16 ToRs, 8 rails x 2 planes; 15 segments
    segments = Counter(frozenset(h) for h in hosts_under.values())
    assert len(segments) == 15 and {len(s) for s in segments} == {128} and set(segments.values()) == {16}
    # two tiers inside the pod at full bandwidth, 1:15 above it, measured per plane
    for plane in (0, 1):
        mine = [t for t in tors if G.nodes[t]["plane"] == plane]
        assert len(mine) == 120
        aggregation = {v for t in mine for v in G.successors(t) if tier.get(v) == 2}
        assert {G.nodes[a]["plane"] for a in aggregation} == {plane}
        up = _capacity(G, [(t, a) for t in mine for a in G.successors(t) if a in aggregation])
        down = _capacity(G, [(u, t) for t in mine for u in G.predecessors(t) if kinds[u] == "nic"])
        assert up == down
        to_core = _capacity(G, [(a, c) for a in aggregation for c in G.successors(a) if tier.get(c) == 3])
        assert up / to_core == HPN_CORE_OVERSUBSCRIPTION == 15
    assert fabric.validate(G) == []


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
    with pytest.raises(fabric.InvalidSpec, match=r"gpus=24 must be a multiple of 16 \(whole racks of meta-llama3\)"):
        fabric.preset("meta-llama3", gpus=24)
    with pytest.raises(fabric.InvalidSpec, match="built by fabric.nvl72, which takes no pod_nodes; it takes"):
        fabric.preset("dgx-gb200-superpod", pod_nodes=4)
