"""Fitting the compute efficiencies to published training runs as a whole.

:func:`fit` chooses the two fitted :class:`collectives.training.compute.ComputeParams`
(GEMM efficiency and kernel overhead) that minimise the squared log error of seconds per
step over every calibration run at once; the defaults in :mod:`collectives.training.compute`
are its result. The calibration runs are the rows of ``training.csv`` (SC'21 Table 1 on DGX
A100, the Megatron-LM README's weak scaling on DGX H100), rebuilt by
:mod:`collectives.training.published` with the choices it documents (micro-batch 1,
two-chunk interleaving where it splits evenly, each framework's defaults). Every published
run, those of ``training_runs.csv`` too, is compared with the model by
:func:`collectives.training.validation.validate`.

``python -m collectives.training.calibration`` runs the fit (~25 s) and prints the rows.
"""

from dataclasses import replace

import numpy as np
from scipy.optimize import minimize

from collectives.training.compute import DEFAULT_COMPUTE
from collectives.training.published import published_runs
from collectives.training.step import Cluster, estimate_step

FITTED = ("gemm_efficiency", "kernel_overhead")


def calibration_runs():
    """The published runs the compute efficiencies are fitted to (``training.csv``).

    Examples
    --------
    >>> runs = calibration_runs()
    >>> len(runs), sorted({r.gpu for r in runs})
    (19, ['A100', 'H100'])
    """
    return [run for run in published_runs() if run.file == "training.csv"]


def predict(run, compute=DEFAULT_COMPUTE, level="analytic", cluster=None):
    """Predicted seconds per step of one :class:`~collectives.training.published.PublishedRun`
    (``cluster``: its fabric prepared once, as a fit does)."""
    if cluster is None:
        return estimate_step(run.model, run.plan, run.fabric(), level=level, compute=compute).time
    return estimate_step(run.model, run.plan, cluster.G, compute=compute, cluster=cluster).time


def fit(runs=None, start=DEFAULT_COMPUTE):
    """ComputeParams minimising the squared log error of seconds per step over all ``runs``.

    Returns (params, relative errors per run).
    """
    runs = calibration_runs() if runs is None else runs
    clusters = [Cluster(run.fabric(), "analytic") for run in runs]
    measured = np.array([run.seconds for run in runs])

    def params_of(x):
        # kernel_overhead is searched in microseconds so the simplex moves both alike
        return replace(start, gemm_efficiency=min(1.0, abs(x[0])), kernel_overhead=abs(x[1]) * 1e-6)

    def loss(x):
        p = params_of(x)
        predicted = np.array([predict(run, p, cluster=c) for run, c in zip(runs, clusters)])
        return float(np.sum(np.log(predicted / measured) ** 2))

    x0 = [start.gemm_efficiency, start.kernel_overhead * 1e6]
    best = minimize(loss, x0, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400})
    fitted = params_of(best.x)
    fitted = replace(
        start, gemm_efficiency=round(fitted.gemm_efficiency, 3), kernel_overhead=round(fitted.kernel_overhead, 8)
    )
    errors = [predict(run, fitted, cluster=c) / run.seconds - 1 for run, c in zip(runs, clusters)]
    return fitted, errors


def report(params=DEFAULT_COMPUTE, level="analytic"):
    """Lines comparing every calibration run with the model; the median and maximum error last.

    Returns (lines, relative errors).
    """
    errors, lines = [], []
    for run in calibration_runs():
        est = estimate_step(run.model, run.plan, run.fabric(), level=level, compute=params)
        err = est.time / run.seconds - 1
        errors.append(err)
        plan = run.plan
        lines.append(
            f"{run.source:>13} {run.gpus:>5} GPUs tp{plan.tp} pp{plan.pp} dp{plan.dp}: "
            f"published {run.seconds:7.3f} s, model {est.time:7.3f} s ({err:+.1%})"
        )
    abs_err = np.abs(errors)
    lines.append(f"median |error| {np.median(abs_err):.1%}, max |error| {abs_err.max():.1%}")
    return lines, errors


if __name__ == "__main__":
    fitted, errs = fit()
    print("fitted:", ", ".join(f"{n}={getattr(fitted, n)}" for n in FITTED))
    for line in report(fitted)[0]:
        print(line)
