"""Adaptive paths as block segments and ECMP's next hops from blocks (fabric.clos_blocks)
against the distance-table paths they stand in for: the same hops, rates and latencies (for
ECMP, the same hashed cables) on healthy fabrics, and no blocks where a change breaks the
structure."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fabric
from fabric import flows, routing
from fabric import strategies as fst
from fabric.clos_blocks import clos_blocks
from fabric.compiled import compile_fabric
from fabric.next_hops import distances_to, leaf_positions


def _routes(C, src, dst, blocks, **options):
    """Routes with the blocks or with the tables."""
    saved = routing.clos_blocks
    if not blocks:
        routing.clos_blocks = lambda C: None
    try:
        return routing.route(C, src, dst, **options)
    finally:
        routing.clos_blocks = saved


def _routed(C, src, dst, blocks):
    """Rates and latencies of adaptive routes, with the blocks or with the tables."""
    r = _routes(C, src, dst, blocks, routing="adaptive")
    rates = flows.max_min_rates(r)[0]
    return np.bincount(r.owner, rates, minlength=r.n_flows), r.latency


def _same_as_tables(C, src, dst):
    keep = src != dst
    rates, latency = _routed(C, src[keep], dst[keep], True)
    want_rates, want_latency = _routed(C, src[keep], dst[keep], False)
    np.testing.assert_allclose(rates, want_rates, rtol=1e-12)
    np.testing.assert_allclose(latency, want_latency, rtol=1e-12)


def _same_ecmp_cables_as_tables(C, src, dst, qps):
    """Every queue pair hashed onto the same cables at every hop, with blocks and with tables."""
    keep = src != dst
    got = _routes(C, src[keep], dst[keep], True, routing="ecmp", qps=qps, seed=7)
    want = _routes(C, src[keep], dst[keep], False, routing="ecmp", qps=qps, seed=7)
    assert got.host.shape == want.host.shape and (got.host != want.host).nnz == 0
    np.testing.assert_array_equal(got.owner, want.owner)
    np.testing.assert_array_equal(got.latency, want.latency)


BUILDS = [
    lambda: fabric.dgx_superpod(600),  # 3 tiers, a partly filled pod
    lambda: fabric.fat_tree(200, switch="qm9700", pod_nodes=32, oversubscription=2, rail_optimized=False),
    lambda: fabric.fat_tree(100, switch="tomahawk4", pod_nodes=24, oversubscription=3, rail_optimized=False),
    lambda: fabric.nvl72(20),
    lambda: fabric.fat_tree(64, planes=2, dual_tor=True, switch="tomahawk5", transport="ethernet"),
    lambda: fabric.fat_tree(64, dual_tor=True, switch="tomahawk5", transport="ethernet"),
]


@pytest.mark.parametrize("build", BUILDS)
def test_blocks_give_the_hops_rates_and_latencies_of_the_tables(build):
    C = compile_fabric(build())
    blocks = clos_blocks(C)
    assert blocks is not None
    leaves = leaf_positions(C)
    a, b = np.repeat(leaves, len(leaves)), np.tile(leaves, len(leaves))
    assert (blocks.hops(a, b) == distances_to(C, leaves)[np.searchsorted(leaves, b), a]).all()
    rng = np.random.default_rng(0)
    n = C.n_gpus
    for src, dst in [(rng.integers(0, n, 3 * n), rng.integers(0, n, 3 * n)),  # many flows per GPU
                     (np.arange(n), (np.arange(n) + n // 2 + 8) % n),         # all far
                     (rng.integers(0, n, 20), rng.integers(0, n, 20))]:       # a few
        _same_as_tables(C, src, dst)


@pytest.mark.parametrize("build", BUILDS + [
    lambda: fabric.fat_tree(256, switch="tomahawk5", transport="ethernet", rail_optimized=False),  # RoCE ToR
    lambda: fabric.spectrum_x(64),
])
def test_blocks_give_ecmp_the_cables_of_the_tables(build):
    C = compile_fabric(build())
    assert clos_blocks(C) is not None
    rng = np.random.default_rng(1)
    n = C.n_gpus
    pairs = [(rng.integers(0, n, 3 * n), rng.integers(0, n, 3 * n)), (np.arange(n), (np.arange(n) + n // 2 + 8) % n)]
    for src, dst in pairs:
        for qps in (1, 4):
            _same_ecmp_cables_as_tables(C, src, dst, qps)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_blocks_match_the_tables_after_random_changes(data):
    G = data.draw(fst.fabrics(max_gpus=128), label="G")
    H = data.draw(fst.topology_changes(G), label="change").apply(G)
    C = compile_fabric(H)
    n = C.n_gpus
    src = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=64), label="src"))
    dst = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=len(src), max_size=len(src)), label="dst"))
    try:
        _routed(C, src[src != dst], dst[src != dst], False)
    except fabric.NoRoute:
        with pytest.raises(fabric.NoRoute):
            _routed(C, src[src != dst], dst[src != dst], True)
        return
    _same_as_tables(C, src, dst)
    _same_ecmp_cables_as_tables(C, src, dst, data.draw(st.integers(1, 4), label="qps"))


def test_a_failed_cable_leaves_no_blocks_and_a_failed_spine_a_smaller_clos():
    G = fabric.dgx_superpod(64)
    assert clos_blocks(compile_fabric(G)) is not None
    G.remove_edges_from([("leaf0", "spine0"), ("spine0", "leaf0")])
    assert clos_blocks(compile_fabric(G)) is None  # leaf0 now spreads over fewer spines
    G = fabric.dgx_superpod(64)
    G.remove_node("spine0")  # every leaf loses the same spine: still even everywhere
    C = compile_fabric(G)
    assert clos_blocks(C) is not None
    _same_as_tables(C, np.arange(512), (np.arange(512) + 264) % 512)
