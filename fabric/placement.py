"""Where a job's GPUs are: whole servers handed out as a cluster scheduler would, packed under
as few switches as possible, spread over as many as possible, or at random.

Examples
--------
>>> import fabric
>>> G = fabric.fat_tree(16, rail_optimized=False)       # 4 ToRs of 4 servers
>>> fabric.place(G, 16, policy="packed")[::8], fabric.place(G, 16, policy="spread")[::8]
([0, 8], [0, 32])
"""

import numpy as np

from fabric.checks import require_choice, require_int, require_seed
from fabric.errors import Infeasible, InvalidSpec
from fabric.schema import node_items

POLICIES = ("packed", "spread", "random", "even")


def _hosts(G):
    """Per host, its GPU ranks (sorted), the switch its first NIC is cabled to, and its
    NVLink domain."""
    ranks, leaf_of, domain_of = {}, {}, {}
    for node, data in node_items(G):
        kind = data.get("kind")
        if kind == "gpu":
            ranks.setdefault(data["host"], []).append(data["rank"])
            domain_of[data["host"]] = data.get("domain", data["host"])
        elif kind == "nic" and data["host"] not in leaf_of:
            leaf_of[data["host"]] = next((v for v in G.successors(node) if G.nodes[v].get("kind") == "switch"), None)
    return {h: sorted(r) for h, r in sorted(ranks.items())}, leaf_of, domain_of


def place(G, gpus, *, policy="packed", seed=0, taken=()):
    """GPU ranks for a job of ``gpus`` GPUs on whole free servers of ``G``.

    Parameters
    ----------
    G : networkx.DiGraph
    gpus : int
        A multiple of the servers' GPUs (8 on DGX/HGX, 4 on an NVL72 compute tray).
    policy : {"packed", "spread", "random", "even"}
        ``"packed"``: the first free servers in rank order, so a job fills a leaf (a rack, a
        rail group, an NVL72 rack) before the next; ``"spread"``: one server per leaf in
        turn, the leaves taken pod after pod, over every leaf with free servers (the
        fragmentation a busy cluster hands out); ``"random"``: free servers drawn with
        ``seed``; ``"even"``: the fewest NVLink domains that hold the job in equal shares, in
        rank order (128 GPUs on two NVL72 racks as 64 + 64, as the published GB200 runs use
        them, which ``search(ranks=)`` needs).
    seed : int
    taken : iterable of int
        Ranks other jobs already hold; their servers are not handed out.

    Returns
    -------
    list of int
        Sorted GPU ranks, for ``ranks=`` of :func:`collectives.estimate_step` and
        :func:`collectives.estimate_jobs`.

    Examples
    --------
    >>> import fabric
    >>> G = fabric.dgx_superpod(4)
    >>> first = place(G, 16)
    >>> place(G, 16, taken=first)[:2], len(place(G, 8, policy="random", seed=3))
    ([16, 17], 8)
    """
    require_choice("policy", policy, POLICIES)
    require_seed(seed)
    ranks_of, leaf_of, domain_of = _hosts(G)
    if not ranks_of:
        raise InvalidSpec("G has no GPUs to place a job on")
    per_host = {len(r) for r in ranks_of.values()}
    size = min(per_host)
    require_int("gpus", gpus, minimum=size)
    if len(per_host) > 1 or gpus % size:
        raise InvalidSpec(f"gpus={gpus} must be a multiple of the {size} GPUs of a server (jobs get whole servers)")
    try:
        busy = {int(r) for r in taken}
    except (TypeError, ValueError):
        raise InvalidSpec(f"taken={taken!r:.80} must be the GPU ranks other jobs hold (integers)") from None
    free = [h for h, r in ranks_of.items() if not busy.intersection(r)]
    want = gpus // size
    if want > len(free):
        raise Infeasible(f"gpus={gpus} need {want} free servers; {len(free)} of {len(ranks_of)} are free")
    if policy == "packed":
        chosen = free[:want]
    elif policy == "even":
        chosen = _even(free, want, domain_of, gpus)
    elif policy == "random":
        chosen = sorted(np.random.default_rng(seed).choice(free, size=want, replace=False).tolist())
    else:
        chosen = _spread(G, free, want, leaf_of)
    return sorted(r for h in chosen for r in ranks_of[h])


def _spread(G, free, want, leaf_of):
    """``want`` free hosts round-robin over the leaves, and the leaves over the pods: the
    i-th free host of every leaf, pod after pod, then the (i+1)-th."""
    turn, order, in_pod, leaves_in = {}, [], {}, {}
    for h in free:
        leaf = leaf_of.get(h)
        pod = G.nodes[leaf].get("pod", 0) if leaf is not None else 0
        if leaf not in in_pod:  # the leaf's index among its pod's leaves
            in_pod[leaf] = leaves_in.get(pod, 0)
            leaves_in[pod] = in_pod[leaf] + 1
        order.append((turn.get(leaf, 0), in_pod[leaf], pod, h))
        turn[leaf] = turn.get(leaf, 0) + 1
    return sorted(h for *_, h in sorted(order)[:want])


def _even(free, want, domain_of, gpus):
    """``want`` free hosts in equal shares of the fewest NVLink domains, first domains first."""
    by_domain = {}
    for h in free:
        by_domain.setdefault(domain_of[h], []).append(h)
    for count in range(1, len(by_domain) + 1):
        share = want // count
        if want % count == 0 and sum(1 for hosts in by_domain.values() if len(hosts) >= share) >= count:
            domains = [d for d, hosts in by_domain.items() if len(hosts) >= share][:count]
            return sorted(h for d in domains for h in by_domain[d][:share])
    raise Infeasible(f"gpus={gpus} cannot be split into equal shares of free NVLink domains")
