"""Jobs side by side on one fabric: each job's step with the others' traffic on the network.

A job's network traffic is the GPU pairs its collectives exchange across NVLink domains: its
data-parallel and context-parallel rings (neighbour pairs), its pipeline sends and its
expert all-to-all (every pair of an expert group). :func:`estimate_jobs` prices each job with
the other jobs' pairs as flows that never end (:func:`collectives.engine.solve_steps`), in
every flow-level solve of its communication: at the flow level, and in the probes of the
analytic level. Jobs whose communication is partly idle or hidden load the network less
than that, so the slowdown is an upper bound for jobs that communicate all the time
and a worst case for the others; on a fabric where the jobs share no link it is 0.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

from fabric.compiled import compile_fabric
from fabric.tables import format_time

from collectives.errors import InvalidSpec, collectives_errors
from collectives.training.plan import Parallelism, cp_groups, dp_groups, ep_groups, pp_pairs
from collectives.training.step import Cluster, StepEstimate, estimate_step, job_ranks


@dataclass(frozen=True)
class JobEstimate(StepEstimate):
    """A :class:`StepEstimate` of one job of :func:`estimate_jobs`, its step with the other
    jobs' traffic on the fabric, and what it is alone.

    Attributes
    ----------
    alone : StepEstimate
        Its step with the fabric to itself.
    slowdown : float
        ``time / alone.time - 1``.
    gpus : int
    """

    alone: StepEstimate = None
    slowdown: float = 0.0
    gpus: int = 0

    @classmethod
    def of(cls, shared, alone, gpus):
        fields = {f.name: getattr(shared, f.name) for f in dataclasses.fields(StepEstimate)}
        return cls(**fields, alone=alone, slowdown=shared.time / alone.time - 1, gpus=gpus)

    def _rows(self):
        return super()._rows() + [("alone", f"{format_time(self.alone.time)} ({self.slowdown:+.1%} shared)"),
                                  ("GPUs", f"{self.gpus:,}")]

    def summary(self):
        """One line: the job, its step shared and alone."""
        return (f"{self.model or 'model'} on {self.gpus:,} GPUs: {self.time:.3f} s per step shared, "
                f"{self.alone.time:.3f} s alone ({self.slowdown:+.1%})")


def network_pairs(plan, ranks, compiled):
    """``(src, dst)`` fabric ranks of the pairs a job of ``plan`` on ``ranks`` exchanges
    across NVLink domains (each pair once).

    Examples
    --------
    >>> import fabric, collectives
    >>> from fabric.compiled import compile_fabric
    >>> C = compile_fabric(fabric.dgx_superpod(4))
    >>> src, dst = network_pairs(collectives.Parallelism(tp=8, dp=4, global_batch=8), np.arange(32), C)
    >>> len(src)      # 8 rings of 4 servers, 4 neighbour pairs each
    32
    """
    pairs = []

    def ring(groups):
        groups = np.atleast_2d(groups)
        if groups.shape[1] > 1:
            pairs.append(np.stack([groups.ravel(), np.roll(groups, -1, axis=1).ravel()], axis=1))

    if plan.dp > 1:
        ring(dp_groups(plan))
    if plan.cp > 1:
        ring(cp_groups(plan))
    if plan.pp > 1:
        pairs.append(pp_pairs(plan))
    if plan.ep > 1:
        groups = ep_groups(plan)
        i, j = np.nonzero(~np.eye(plan.ep, dtype=bool))
        pairs.append(np.stack([groups[:, i].ravel(), groups[:, j].ravel()], axis=1))
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    both = np.unique(np.asarray(ranks)[np.concatenate(pairs)], axis=0)
    domain = compiled.domain
    crossing = (domain[both[:, 0]] < 0) | (domain[both[:, 0]] != domain[both[:, 1]])
    return both[crossing, 0], both[crossing, 1]


def estimate_jobs(G, jobs, *, level="flow", params=None, compute=None, seed=0):
    """Price ``jobs`` running side by side on ``G``: each job's step with the other jobs'
    network traffic present, and alone.

    Parameters
    ----------
    G : networkx.DiGraph
    jobs : sequence of (model, plan, ranks)
        Each job's model, :class:`collectives.Parallelism` and GPUs (fabric ranks, disjoint
        between jobs; :func:`fabric.place` hands them out as a scheduler would).
    level : {"flow", "analytic"}
        As :func:`collectives.estimate_step`; the analytic level's probes carry the other
        jobs' traffic too.
    params, compute, seed
        As :func:`collectives.estimate_step`.

    Returns
    -------
    list of JobEstimate
        One :class:`StepEstimate` per job, in the order of ``jobs``, each with its step
        alone (``alone``) and ``slowdown``.

    Examples
    --------
    >>> import fabric, collectives
    >>> G = fabric.fat_tree(8, rail_optimized=False, oversubscription=3.0)
    >>> m, plan = collectives.MODELS["llama3-8b"], collectives.Parallelism(tp=8, dp=4, global_batch=32)
    >>> a = fabric.place(G, 32, policy="spread")
    >>> b = fabric.place(G, 32, policy="spread", taken=a)
    >>> shared = collectives.estimate_jobs(G, [(m, plan, a), (m, plan, b)], level="analytic")
    >>> [job.slowdown >= 0 for job in shared]
    [True, True]
    """
    with collectives_errors():
        jobs = list(jobs)
        if not jobs:
            raise InvalidSpec("jobs is empty; give (model, plan, ranks) for each job")
        for i, job in enumerate(jobs):
            if not (isinstance(job, (tuple, list)) and len(job) == 3):
                raise InvalidSpec(f"jobs[{i}]={job!r:.80} must be a (model, plan, ranks) triple")
    compiled = compile_fabric(G)
    ranks = [job_ranks(r, compiled.n_gpus) for _, _, r in jobs]
    for i, ((model, plan, _), r) in enumerate(zip(jobs, ranks)):
        if not isinstance(plan, Parallelism):
            raise InvalidSpec(f"jobs[{i}] plan={plan!r:.80} must be a collectives.Parallelism")
        plan.check_against(model, gpus=len(r), of=f"jobs[{i}]'s ranks")
    owner = np.full(compiled.n_gpus, -1)
    for i, r in enumerate(ranks):
        clash = r[owner[r] >= 0]
        if clash.size:
            raise InvalidSpec(f"jobs {int(owner[clash[0]])} and {i} both use GPU {int(clash[0])}: give jobs disjoint "
                              "ranks (fabric.place(..., taken=) hands out free servers)")
        owner[r] = i
    traffic = [network_pairs(plan, r, compiled) for (_, plan, _), r in zip(jobs, ranks)]
    results = []
    for i, ((model, plan, _), r) in enumerate(zip(jobs, ranks)):
        others = [traffic[j] for j in range(len(jobs)) if j != i]
        background = (np.concatenate([src for src, _ in others]), np.concatenate([dst for _, dst in others])) \
            if others else None
        shared, alone = (estimate_step(model, plan, G, compute=compute, cluster=Cluster(
            G, level, params, ranks=r, seed=seed, background=load, compiled=compiled)) for load in (background, None))
        results.append(JobEstimate.of(shared, alone, len(r)))
    return results
