"""The training step on top of the collectives: model, plan, memory, compute, pipeline, step.

One concept per module:

=================  ====================================================================================
``model``          :class:`Transformer`: shapes, parameter and FLOP counts
``presets``        :data:`MODELS`: published shapes with their sources
``plan``           :class:`Parallelism` and its rank groups in Megatron-LM order
``activations``    what one layer keeps for backward, by recompute choice
``memory``         what a plan keeps on each GPU (:func:`memory_per_gpu`)
``compute``        GEMM, attention and memory-bound kernel times on one GPU
``communication``  the collectives and sends of a plan's groups on a fabric
``layer``          one transformer layer's time: compute plus exposed communication
``pipeline``       the 1F1B / interleaved pipeline schedule, simulated
``step``           :func:`estimate_step`, :func:`step_spread`, :class:`Cluster`, :class:`StepEstimate`
``search``         :func:`search` over every plan that fits
``jobs``           :func:`estimate_jobs`: jobs side by side, each with the others' traffic
``failures``       field failure rates per part and hour (the Llama 3 paper's breakdown)
``goodput``        :func:`goodput`: step time, goodput and tokens per day with failures
``scaling``        :func:`scaling_study`: one model over cluster sizes, batch growing with them
``published``      the published runs of the package data, rebuilt as model, plan, fabric
``calibration``    fitting the compute efficiencies to published runs
``validation``     every published measurement against the model (the report)
``plot``           figures of estimates and of the validation (plotly, imported on use)
``plot_study``     the figure of a scaling study
=================  ====================================================================================

The collective layer (:mod:`collectives.api` and below) never imports this package.

Examples
--------
>>> import fabric
>>> from collectives.training import MODELS, Cluster, Parallelism, estimate_step
>>> G = fabric.dgx_superpod(2)
>>> cluster = Cluster(G, "analytic")          # prepared once, for many estimates
>>> est = estimate_step(MODELS["llama3-8b"], Parallelism(tp=8, dp=2, global_batch=32), G, cluster=cluster)
>>> est.fits, est.level
(True, 'analytic')
"""

from collectives.training.memory import memory_per_gpu, memory_per_stage
from collectives.training.model import Transformer, padded_vocab
from collectives.training.plan import Parallelism
from collectives.training.presets import MODELS
from collectives.training.jobs import JobEstimate, estimate_jobs
from collectives.training.goodput import Goodput, goodput
from collectives.training.scaling import ScalingStudy, scaling_study
from collectives.training.search import search
from collectives.training.step import Cluster, StepEstimate, estimate_step, step_spread

__all__ = [
    "MODELS",
    "Transformer",
    "padded_vocab",
    "Parallelism",
    "memory_per_gpu",
    "memory_per_stage",
    "Cluster",
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
]
