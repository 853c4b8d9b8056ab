"""Check the max-min solver against the two solvers it replaced.

``fabric.flows.max_min_rates`` fills in rounds (``_fill``: every locally tightest resource
at once). Before it, adaptive routes were filled one saturation level per pass over the
whole matrix (``_fill_by_level``, slow when flows have thousands of distinct rates) and
ECMP routes by a heap of fill levels (``_fill_by_bottleneck``); both are copied below
verbatim as references. All compute the max-min fair allocation, which is unique, so
they must agree up to the tie tolerance ``_SATURATED`` (1e-9 relative) and round-off.

Run: ``python tests/benchmarks/check_solver.py`` (about 8 minutes: the references are slow). Prints one row per
case and exits non-zero if any rate or completion time differs by more than 1e-9
relative.
"""

import heapq
import sys
import time

import numpy as np

import fabric
from fabric.compiled import compile_fabric
from fabric.flows import _SATURATED, fluid_completion, max_min_rates
from fabric.routing import class_load, class_matrix, route

TOLERANCE = 1e-9

# ---- reference solvers, as in fabric/flows.py before the round-based solver ----


def _load_rate(routes, active):
    """Per resource, the load added per unit rate given to every active variable."""
    a = active.astype(np.float64)
    g = routes.host @ a
    if routes.cls:
        member = active & (routes.class_of >= 0)
        totals = np.bincount(routes.class_of[member], minlength=len(routes.cls[0].column)).astype(np.float64)
        g += class_load(routes.cls, totals)
    return g


def _crossing(routes, resources):
    """Per variable, whether it crosses any resource flagged in ``resources``."""
    r = resources.astype(np.float64)
    hit = routes.host.T @ r
    if routes.cls:
        per_class = class_matrix(routes.cls, len(r)).T @ r
        member = routes.class_of >= 0
        hit[member] += per_class[routes.class_of[member]]
    return hit > 0


def _fill_by_level(routes, active):
    """Progressive filling, one saturation level per pass over the whole matrix.

    Suits few distinct levels (adaptive routing) and keeps the class factorisation.
    """
    rates = np.zeros(len(routes.owner))
    load = np.zeros(len(routes.capacity))
    cap = routes.capacity
    while active.any():
        g = _load_rate(routes, active)
        used = g > 0
        step = max(0.0, float(np.min((cap[used] - load[used]) / g[used])))
        rates[active] += step
        load += step * g
        full = used & (cap - load <= _SATURATED * cap)
        frozen = active & _crossing(routes, full)
        if not frozen.any():  # round-off left the tightest resource a hair short
            full = used & (cap - load <= np.min((cap - load)[used]) + _SATURATED * cap)
            frozen = active & _crossing(routes, full)
        active &= ~frozen
    return rates


def _fill_by_bottleneck(A, cap, active):
    """Progressive filling driven by a heap of per-resource fill levels.

    A resource's level is (capacity - load of frozen variables) / (active coefficient
    sum); the lowest is the next bottleneck, and freezing its variables only changes the
    levels of the resources they cross, which never fall. Suits many distinct levels
    (ECMP collisions): each step touches only what changes.
    """
    by_resource = A.tocsr()
    by_variable = A.tocsc()
    weight = by_resource @ active.astype(np.float64)
    frozen_load = np.zeros(len(cap))
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(weight > 0, cap / weight, np.inf)
    heap = list(zip(level[weight > 0].tolist(), np.flatnonzero(weight > 0).tolist()))
    heapq.heapify(heap)
    rates = np.zeros(A.shape[1])
    negligible = _SATURATED * max(1.0, float(by_resource.data.max(initial=0.0)))
    while heap:
        lam, r = heapq.heappop(heap)
        if lam != level[r]:
            if np.isfinite(level[r]):  # its level rose since it was pushed
                heapq.heappush(heap, (float(level[r]), r))
            continue
        batch = [r]
        while heap and heap[0][0] <= lam * (1 + _SATURATED):
            lam2, r2 = heapq.heappop(heap)
            if lam2 == level[r2]:
                batch.append(r2)
            elif np.isfinite(level[r2]):
                heapq.heappush(heap, (float(level[r2]), r2))
        level[batch] = np.inf
        cols = np.concatenate([by_resource.indices[by_resource.indptr[b] : by_resource.indptr[b + 1]] for b in batch])
        cols = np.unique(cols[active[cols]])
        rates[cols] = lam
        active[cols] = False
        start, stop = by_variable.indptr[cols], by_variable.indptr[cols + 1]
        deg = stop - start
        pos = np.repeat(start, deg) + np.arange(deg.sum()) - np.repeat(np.cumsum(deg) - deg, deg)
        rows, coef = by_variable.indices[pos], by_variable.data[pos]
        np.add.at(frozen_load, rows, lam * coef)
        np.add.at(weight, rows, -coef)
        touched = np.unique(rows)
        touched = touched[np.isfinite(level[touched])]
        # Levels only rise: the heap keeps stale (lower) entries and re-pushes them on pop.
        alive = weight[touched] > negligible
        level[touched[~alive]] = np.inf
        touched = touched[alive]
        level[touched] = np.maximum((cap[touched] - frozen_load[touched]) / weight[touched], lam)
    return rates


def reference_rates(routes, active):
    if not routes.cls:
        return _fill_by_bottleneck(routes.host, routes.capacity, active.copy())
    return _fill_by_level(routes, active.copy())


def reference_completion(routes, nbytes):
    """``fabric.flows.fluid_completion`` with the reference solver."""
    return fluid_completion(routes, nbytes, solve=reference_rates)


# ---- cases ----


def _fabrics():
    rng = np.random.default_rng(1)
    yield "dgx_superpod(4)", fabric.dgx_superpod(4)
    yield "dgx_superpod(127)", fabric.dgx_superpod(127)
    yield "dgx_superpod(300)", fabric.dgx_superpod(300)
    yield "spectrum_x(200)", fabric.spectrum_x(200)
    yield "fat_tree(64, os=3, ToR)", fabric.fat_tree(64, oversubscription=3, rail_optimized=False)
    yield "fat_tree(256, qm9700, 3 tiers, os=2)", fabric.fat_tree(256, switch="qm9700", tiers=3, oversubscription=2)
    yield "rail_only(64)", fabric.rail_only(64)
    yield "nvl72(4)", fabric.nvl72(4)
    G = fabric.dgx_superpod(127)
    up = [(u, v) for u, v in G.edges if u.startswith("leaf") and v.startswith("spine")]
    for i in rng.choice(len(up), 40, replace=False):
        G.remove_edge(*up[i])
    yield "dgx_superpod(127) - 40 uplinks", G
    G = fabric.dgx_superpod(127)
    for u, v in list(G.edges):
        if u.startswith("spine") and rng.random() < 0.3:
            G.edges[u, v]["bandwidth"] *= rng.uniform(0.2, 1.0)
    yield "dgx_superpod(127), slowed spines", G


def _patterns(n, rng):
    src = np.arange(n)
    p = rng.permutation(n)
    yield "permutation", src, np.where(p == src, (src + 1) % n, p)
    many = np.repeat(src, 4)
    dst = rng.integers(0, n - 1, len(many))
    yield "4 random per GPU", many, dst + (dst >= many)
    yield "ring r->r+1", src, (src + 1) % n
    hot = rng.integers(0, n, 3)
    dst = hot[rng.integers(0, 3, n)]
    keep = dst != src
    yield "incast to 3 GPUs", src[keep], dst[keep]


def _relative(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300), initial=0.0))


def main():
    rng = np.random.default_rng(0)
    worst = 0.0
    print(f"{'fabric':38} {'routing':9} {'pattern':17} {'what':12} {'vars':>6} "
          f"{'ref s':>7} {'new s':>7} {'max rel diff':>12}")
    for name, G in _fabrics():
        C = compile_fabric(G)
        for pattern, src, dst in _patterns(C.n_gpus, rng):
            for routing, qps in (("adaptive", 1), ("ecmp", 1), ("ecmp", 4)):
                R = route(C, src, dst, routing=routing, qps=qps, seed=3)
                label = routing if routing == "adaptive" else f"ecmp/{qps}"
                cases = [("all", np.ones(len(R.owner), dtype=bool)), ("60% active", rng.random(len(R.owner)) < 0.6)]
                for what, active in cases:
                    t0 = time.perf_counter()
                    ref = reference_rates(R, active)
                    t1 = time.perf_counter()
                    new, _ = max_min_rates(R, active)
                    t2 = time.perf_counter()
                    diff = _relative(new, ref)
                    worst = max(worst, diff)
                    print(f"{name:38} {label:9} {pattern:17} {what:12} {int(active.sum()):6d} "
                          f"{t1 - t0:7.3f} {t2 - t1:7.3f} {diff:12.2e}")
                if pattern == "4 random per GPU" or C.n_gpus > 1100:
                    continue  # the reference fluid simulation is slow there
                nbytes = rng.uniform(1e6, 1e8, R.n_flows)
                t0 = time.perf_counter()
                ref = reference_completion(R, nbytes)
                t1 = time.perf_counter()
                new = fluid_completion(R, nbytes)
                t2 = time.perf_counter()
                diff = _relative(new, ref)
                worst = max(worst, diff)
                print(f"{name:38} {label:9} {pattern:17} {'completion':12} {R.n_flows:6d} "
                      f"{t1 - t0:7.3f} {t2 - t1:7.3f} {diff:12.2e}")
    verdict = "PASS" if worst <= TOLERANCE else "FAIL"
    print(f"worst relative difference {worst:.2e} (tolerance {TOLERANCE:g}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
