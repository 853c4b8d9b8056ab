"""What a training step's communication costs: its collectives and sends on the plan's groups.

The training estimator asks for the same few collectives (a TP all-gather of one size, a
DP reduce-scatter...) thousands of times; :class:`Communication` prices each once per
prepared fabric with the collective models of :mod:`collectives.api`, at the analytic or
the flow level.
"""

import warnings

import numpy as np

from fabric.compiled import compile_fabric
from fabric.errors import TooLarge
from fabric.limits import check_memory
from fabric.clos_blocks import clos_blocks
from fabric.next_hops import all_leaves_table_bytes

from collectives import api
from collectives.array_memo import ArrayMemo, read_only
from collectives.engine import UniformFabric, site_of_ranks
from collectives.errors import FabricBlindWarning
from collectives.patterns import PatternProbes, PatternTable, send_phase

ACTIVATION_BYTES = 2  # activations move between GPUs in BF16 (Megatron-LM)


def check_routing_memory(compiled):
    """``TooLarge`` unless the routing tables a training step builds on ``compiled`` fit in
    memory: its data-parallel traffic reaches every leaf, so refuse up front what cannot fit.
    A healthy Clos needs none, adaptive or ECMP (:mod:`fabric.clos_blocks`)."""
    if clos_blocks(compiled) is not None:
        return
    check_memory(f"routing a training step on {compiled.n_gpus:,} GPUs (tables toward every leaf)",
                 all_leaves_table_bytes(compiled),
                 "model a smaller fabric of the same structure, or set fabric.limits.MEMORY_BUDGET if the machine "
                 "has the memory")


class Communication:
    """Collective and send times of a plan's groups on one fabric, remembered by collective,
    groups and size; the fabric is compiled once.

    At the analytic level on a fabric graph the closed forms are fabric-aware: each pattern
    that leaves the NVLink domains (all concurrent groups of a collective, all sends of a
    pipeline boundary) has its bandwidth time scaled by its flow-level slowdown, measured
    once (:class:`collectives.patterns.PatternProbes`). On a fabric summary
    (:class:`collectives.engine.UniformFabric`) they read the rates of one GPU only.

    Examples
    --------
    >>> import fabric
    >>> from collectives import DEFAULT_PARAMS
    >>> comm = Communication(fabric.dgx_superpod(2), "analytic", DEFAULT_PARAMS)
    >>> 0 < comm.time("all_reduce", [[0, 8]], 2**20) < comm.time("all_reduce", [[0, 8]], 2**24)
    True
    """

    def __init__(self, G, level, params, ranks=None, seed=0, background=None, compiled=None):
        self.G, self.level, self.params, self.seed = G, level, params, seed
        # other jobs' flows on the same fabric (fabric ranks), present in every flow-level solve
        self.background = background
        # the job's GPUs: group member i of a plan is fabric rank ranks[i] (None: rank i)
        self.ranks = ranks
        graph = not isinstance(G, UniformFabric)
        self.compiled = (compiled or compile_fabric(G)) if graph else None
        self.probes = None
        if graph:
            try:
                check_routing_memory(self.compiled)
            except TooLarge as error:
                if level == "flow":
                    raise
                warnings.warn(FabricBlindWarning(f"{error}; the analytic level reads one GPU's links instead"),
                              stacklevel=4)
            else:
                if level == "analytic":
                    self.probes = PatternProbes(G, params, seed, self.compiled, background)
        elif G.slowdowns is not None:  # a summary of a graph carries the slowdowns probed on it, if any
            self.probes = PatternTable(G.slowdowns, G.gpus_per_domain)
        self._memo = {}
        self._first = {}
        self._arrays = ArrayMemo()
        # the site of each job rank where the job spans sites (fabric.join_sites), else None
        sites = G.sites if not graph else site_of_ranks(G)
        if sites is not None and graph and ranks is not None:
            sites = tuple(sites[r] for r in ranks.tolist())
        self.sites = None if sites is None or len(set(sites)) < 2 else np.asarray(sites, dtype=np.int64)

    def _key(self, groups):
        """``groups``' shape and bytes (remembered for the read-only arrays plans share)."""
        return self._arrays.get(groups, "key", lambda: (groups.shape, groups.tobytes()))

    @property
    def sees_groups(self):
        """Whether prices depend on where all groups sit (the flow level, and the analytic
        level on a graph); if not, one representative group is enough."""
        return self.level == "flow" or self.probes is not None

    @property
    def fabric_aware(self):
        """Whether every price so far saw the fabric: :attr:`sees_groups`, and no pattern
        was too large to probe (:data:`collectives.patterns.BLIND`)."""
        return self.sees_groups and not (self.probes is not None and self.probes.blind)

    def time(self, collective, groups, nbytes, concurrent=False):
        """Seconds of ``collective`` on ``groups`` (all at once when ``concurrent``; otherwise
        one representative group, which has the fabric alone)."""
        groups = np.atleast_2d(groups)
        if nbytes <= 0 or groups.shape[1] < 2:
            return 0.0
        job_groups = groups if concurrent else groups[:1]
        groups = job_groups if self.ranks is None else self.ranks[job_groups]
        key = (collective, self._key(groups), nbytes)
        if key not in self._memo:
            layouts = self._arrays.get(groups, "layouts", lambda: self._layouts(groups)) if len(groups) > 1 else None
            if layouts is not None and layouts.max() > 0:
                # groups laid out differently over the NVLink domains (some inside one, some
                # across) run different algorithms, as NCCL picks one per communicator: each
                # layout is priced on its own, and the slowest sets the time
                self._memo[key] = max(self.time(collective, job_groups[layouts == i], nbytes, concurrent)
                                      for i in range(layouts.max() + 1))
                return self._memo[key]
            # Pick the algorithm with the instant closed forms, then price it at the level.
            choice = api.evaluate(self.G, collective, groups[:1], nbytes, level="analytic", params=self.params)[0]
            if self.level == "analytic":
                scale, far = 1.0, 0.0
                if self.probes is not None:
                    scale = self.probes.slowdown(collective, choice.algorithm, job_groups, groups)
                    far = self.probes.far(collective, choice.algorithm, job_groups, groups)
                self._memo[key] = choice.latency + far + scale * (choice.time - choice.latency)
            else:
                results = api.evaluate(
                    self.G, collective, groups, nbytes, algorithm=choice.algorithm, level=self.level,
                    params=self.params, seed=self.seed, compiled=self.compiled, background=self.background,
                )
                self._memo[key] = max(r.time for r in results)
        return self._memo[key]

    def _layouts(self, groups):
        """Each row of ``groups`` (fabric ranks) labelled by its layout over NVLink domains
        (domains met, fewest and most members in one), 0 for the first row's, a read-only
        array."""
        domain = groups // self.G.gpus_per_domain if isinstance(self.G, UniformFabric) else self.compiled.domain[groups]
        domain = np.sort(domain, axis=1)
        starts = np.ones(domain.shape, dtype=bool)
        starts[:, 1:] = domain[:, 1:] != domain[:, :-1]
        rows, columns = np.nonzero(starts)  # row-major: each row's runs start in order
        ends = np.append(columns[1:], 0)
        ends[np.append(rows[1:] != rows[:-1], True)] = domain.shape[1]  # a row's last run ends with it
        runs = ends - columns
        first = np.flatnonzero(np.append(True, rows[1:] != rows[:-1]))
        # (domains, fewest, most) in one integer: each is at most the group size
        width = domain.shape[1] + 1
        layout = (np.diff(np.append(first, len(rows))) * width + np.minimum.reduceat(runs, first)) * width \
            + np.maximum.reduceat(runs, first)
        _, leads, labels = np.unique(layout, return_index=True, return_inverse=True)
        order = np.argsort(np.argsort(leads))  # labels numbered by first appearance: the first row's is 0
        return read_only(order[labels.ravel()])

    def data_parallel(self, collective, groups, nbytes):
        """Seconds of a data-parallel ``collective`` ("all_reduce", "reduce_scatter" or
        "all_gather") on all ``groups`` at once, hierarchically where they span sites: inside
        each site on the full buffer, then across sites on each rank's share (a reduce-scatter
        in the site, then across; an all-gather across, then in the site; an all-reduce
        reduce-scatters in the site, all-reduces across, all-gathers back), so each byte crosses
        once. Groups that do not split evenly over their sites are priced as they are."""
        split = None if self.sites is None else self._by_site(np.atleast_2d(groups))
        if split is None:
            return self.time(collective, groups, nbytes, concurrent=True)
        inside, across, k = split
        share = nbytes / k
        if collective == "reduce_scatter":
            return self.time("reduce_scatter", inside, nbytes, True) + self.time("reduce_scatter", across, share, True)
        if collective == "all_gather":
            return self.time("all_gather", across, share, True) + self.time("all_gather", inside, nbytes, True)
        return (self.time("reduce_scatter", inside, nbytes, True) + self.time("all_reduce", across, share, True)
                + self.time("all_gather", inside, nbytes, True))

    def _by_site(self, groups):
        """(groups inside each site, groups across sites, members per site) of ``groups``, or
        None when no group leaves its site or some group has unequal shares of its sites."""
        def split():
            sites = self.sites[groups]
            if (sites == sites[:, :1]).all():
                return None
            order = np.argsort(sites, axis=1, kind="stable")
            members, by_site = np.take_along_axis(groups, order, 1), np.take_along_axis(sites, order, 1)
            n_sites = len(np.unique(by_site[0]))
            k = groups.shape[1] // n_sites
            if k * n_sites != groups.shape[1]:
                return None
            site_blocks = by_site.reshape(len(groups), n_sites, k)
            if not (site_blocks == site_blocks[:, :, :1]).all():  # each site holds k members of every group
                return None
            blocks = members.reshape(len(groups), n_sites, k)
            return read_only(blocks.reshape(-1, k)), read_only(blocks.transpose(0, 2, 1).reshape(-1, n_sites)), k
        return self._arrays.get(groups, "by site", split)

    def send(self, pairs, nbytes):
        """Seconds until the slowest of ``pairs`` (sender, receiver rows) has sent ``nbytes``,
        all sending at once (one representative pair on a fabric summary)."""
        job_pairs = np.atleast_2d(pairs)
        if nbytes <= 0 or not len(job_pairs):
            return 0.0
        pairs = job_pairs if self.ranks is None else self.ranks[job_pairs]
        key = ("send", self._key(pairs), nbytes)
        if key not in self._memo:
            # the closed form of the first pair, shared by the patterns that start with it
            lead = (int(pairs[0, 0]), int(pairs[0, 1]), nbytes)
            first = self._first.get(lead)
            if first is None:
                first = self._first[lead] = api.send_recv(self.G, nbytes, ranks=pairs[0], level="analytic",
                                                          params=self.params)
            if self.level == "flow" and len(pairs) > 1:
                phase = send_phase(self.G, pairs, nbytes, self.params, self.seed, self.compiled, self.background)
                self._memo[key] = first.latency + phase.far_latency + phase.time
            elif self.probes is not None:
                scale = self.probes.slowdown("send_recv", first.algorithm, job_pairs, pairs)
                far = self.probes.far("send_recv", first.algorithm, job_pairs, pairs)
                self._memo[key] = first.latency + far + scale * (first.time - first.latency)
            else:
                self._memo[key] = first.time
        return self._memo[key]
