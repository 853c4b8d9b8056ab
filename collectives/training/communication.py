"""What a training step's communication costs: its collectives and sends on the plan's groups.

The training estimator asks for the same few collectives (a TP all-gather of one size, a
DP reduce-scatter...) thousands of times; :class:`Communication` prices each once per
prepared fabric with the collective models of :mod:`collectives.api`, at the analytic or
the flow level.
"""

import numpy as np

from fabric.compiled import compile_fabric

from collectives import api
from collectives.engine import Step, solve_steps

ACTIVATION_BYTES = 2  # activations move between GPUs in BF16 (Megatron-LM)


class Communication:
    """Collective and send times of a plan's groups on one fabric, remembered by collective,
    groups and size; the fabric is compiled once at the flow level.

    Examples
    --------
    >>> import fabric
    >>> from collectives import DEFAULT_PARAMS
    >>> comm = Communication(fabric.dgx_superpod(2), "analytic", DEFAULT_PARAMS)
    >>> 0 < comm.time("all_reduce", [[0, 8]], 2**20) < comm.time("all_reduce", [[0, 8]], 2**24)
    True
    """

    def __init__(self, G, level, params, ranks=None):
        self.G, self.level, self.params = G, level, params
        # the job's GPUs: group member i of a plan is fabric rank ranks[i] (None: rank i)
        self.ranks = ranks
        self.compiled = compile_fabric(G) if level == "flow" else None
        self._memo = {}

    def time(self, collective, groups, nbytes, concurrent=False):
        """Seconds of ``collective`` on ``groups`` (all at once at the flow level when
        ``concurrent``; otherwise one representative group, which has the fabric alone)."""
        groups = np.atleast_2d(groups)
        if nbytes <= 0 or groups.shape[1] < 2:
            return 0.0
        groups = groups if concurrent and self.level == "flow" else groups[:1]
        if self.ranks is not None:
            groups = self.ranks[groups]
        key = (collective, groups.shape, groups.tobytes(), nbytes)
        if key not in self._memo:
            # Pick the algorithm with the instant closed forms, then price it at the level.
            choice = api.evaluate(self.G, collective, groups[:1], nbytes, level="analytic", params=self.params)[0]
            if self.level == "analytic":
                self._memo[key] = choice.time
            else:
                results = api.evaluate(
                    self.G, collective, groups, nbytes, algorithm=choice.algorithm, level=self.level,
                    params=self.params, compiled=self.compiled,
                )
                self._memo[key] = max(r.time for r in results)
        return self._memo[key]

    def send(self, pairs, nbytes):
        """Seconds until the slowest of ``pairs`` (sender, receiver rows) has sent ``nbytes``,
        all sending at once at the flow level (one representative pair otherwise)."""
        pairs = np.atleast_2d(pairs)
        if nbytes <= 0 or not len(pairs):
            return 0.0
        if self.ranks is not None:
            pairs = self.ranks[pairs]
        key = ("send", pairs.shape, pairs.tobytes(), nbytes)
        if key not in self._memo:
            first = api.send_recv(self.G, nbytes, ranks=pairs[0], level="analytic", params=self.params)
            if self.level == "flow" and len(pairs) > 1:
                ctx = api.contexts_for(self.G, "send_recv", [pairs[0]], nbytes, level="flow", params=self.params,
                                       compiled=self.compiled)[0]
                step = Step("send", nbytes, 1, pairs[:, 0], pairs[:, 1])
                bandwidth = solve_steps(ctx, [[step]])[0][0].time
                self._memo[key] = first.latency + bandwidth
            else:
                self._memo[key] = first.time
        return self._memo[key]
