"""Communication and training on top of a fabric: collective cost models and the step estimator.

The collective layer is this package (:mod:`collectives.api` and below); the training step on
top of it is :mod:`collectives.training`, whose public names are re-exported here.

Examples
--------
>>> import fabric, collectives
>>> G = fabric.dgx_superpod(2, gpu="H100")
>>> r = collectives.all_reduce(G, 2**30, algorithm="ring", level="analytic")
>>> r.algorithm, r.ranks
('ring', 16)
"""

from collectives.api import (
    all_gather,
    all_reduce,
    all_to_all,
    broadcast,
    concurrent,
    concurrent_send_recv,
    reduce_scatter,
    send_recv,
    sweep,
)
from collectives.errors import CollectivesError, FabricBlindWarning, Infeasible, InvalidSpec, MemoryWarning, Unsupported
from collectives.params import DEFAULT_PARAMS, CommParams
from collectives.result import CollectiveResult, Phase
from collectives.spread import Spread, collective_spread
# The training-step estimator (collectives.training), re-exported as the public contract names it.
from collectives.training import (
    MODELS,
    Parallelism,
    StepEstimate,
    Transformer,
    estimate_step,
    step_spread,
    estimate_jobs,
    JobEstimate,
    Goodput,
    goodput,
    ScalingStudy,
    scaling_study,
    memory_per_gpu,
    memory_per_stage,
    padded_vocab,
    search,
)

__all__ = [
    "MODELS",
    "Parallelism",
    "Transformer",
    "memory_per_gpu",
    "memory_per_stage",
    "padded_vocab",
    "StepEstimate",
    "estimate_step",
    "step_spread",
    "search",
    "estimate_jobs",
    "JobEstimate",
    "Goodput",
    "goodput",
    "ScalingStudy",
    "scaling_study",
    "all_gather",
    "all_reduce",
    "all_to_all",
    "broadcast",
    "concurrent",
    "concurrent_send_recv",
    "reduce_scatter",
    "send_recv",
    "sweep",
    "Spread",
    "collective_spread",
    "CollectivesError",
    "Infeasible",
    "InvalidSpec",
    "MemoryWarning",
    "FabricBlindWarning",
    "Unsupported",
    "DEFAULT_PARAMS",
    "CommParams",
    "CollectiveResult",
    "Phase",
]
