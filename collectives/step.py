"""``collectives.step``: the path of the step estimator before it moved to :mod:`collectives.training`.

Kept so that ``from collectives.step import Cluster`` (the prepared fabric of the public
contract) keeps working; new code imports from :mod:`collectives.training` or
:mod:`collectives.training.step`, where these names are defined.

Examples
--------
>>> from collectives.step import Cluster
>>> from collectives.training.step import Cluster as Defined
>>> Cluster is Defined
True
"""

from collectives.training.step import Cluster, StepEstimate, estimate_step

__all__ = ["Cluster", "StepEstimate", "estimate_step"]
