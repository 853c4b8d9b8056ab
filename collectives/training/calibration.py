"""Fitting the compute efficiencies to published training runs as a whole.

:func:`fit` chooses the two fitted :class:`collectives.training.compute.ComputeParams`
(GEMM efficiency and kernel overhead) that minimise a robust loss (soft L1 of the log error,
:data:`ROBUST_SCALE`) of seconds per step over every calibration run at once; the defaults in
:mod:`collectives.training.compute` are its result. :func:`fit_gpu_rates` fits the achievable
matmul rates of a GPU whose rates no one has measured (GB200: :data:`FITTED_GPUS`) to every
published run on it; the values in :data:`fabric.GPUS` are its result. The calibration runs
are every supported published run on the other GPUs (:func:`calibration_runs`: the SC'21 and
Megatron-LM tables of ``training.csv``, the dgxc-benchmarking, torchtitan and BLOOM runs of
``training_runs.csv`` and ``training_runs_added.csv``), rebuilt by
:mod:`collectives.training.published` with the choices it documents. So every published step
time is in-sample for one fit or the other; :func:`leave_one_out` gives the out-of-sample
error, each run predicted by a fit to all the others.
:func:`collectives.training.validation.validate` compares every row with the model.

``python -m collectives.training.calibration`` runs both fits (~1 min) and prints the rows.
"""

import warnings
from dataclasses import replace

import numpy as np
from scipy.optimize import minimize

import fabric

from collectives.errors import MemoryWarning
from collectives.training.compute import DEFAULT_COMPUTE
from collectives.training.published import published_runs
from collectives.training.step import Cluster, estimate_step

FITTED = ("gemm_efficiency", "kernel_overhead")
# GPUs whose achievable BF16 and FP8 matmul rates are fitted to the runs on them, not read
# from a published matmul benchmark; the other Blackwell GPUs borrow GB200's fit
# (fabric.catalog.BLACKWELL_MATMUL_EFFICIENCY, whose comment says why).
FITTED_GPUS = ("GB200",)
# Scale of the robust loss of fit_gpu_rates, in log error: rows within ~10% weigh as squares,
# rows further off only linearly, so that a run the model misses for a reason no matmul rate
# explains (an MoE mechanism it lacks) does not set the rate of every other run.
ROBUST_SCALE = 0.1


def calibration_runs():
    """The published runs the compute efficiencies are fitted to: every supported run on a GPU
    whose matmul rates are measured (the runs on :data:`FITTED_GPUS` fit those GPUs' rates).

    Examples
    --------
    >>> runs = calibration_runs()
    >>> len(runs), sorted({r.gpu for r in runs})
    (36, ['A100', 'H100', 'H200'])
    """
    return [run for run in published_runs() if not run.unsupported and run.gpu not in FITTED_GPUS]


def predict(run, compute=DEFAULT_COMPUTE, level="analytic", cluster=None):
    """Predicted seconds per step of one :class:`~collectives.training.published.PublishedRun`
    (``cluster``: its fabric prepared once, as a fit does)."""
    if cluster is None:
        return estimate_step(run.model, run.plan, run.fabric(), level=level, compute=compute, ranks=run.ranks).time
    return estimate_step(run.model, run.plan, cluster.G, compute=compute, cluster=cluster).time


def fit(runs=None, start=DEFAULT_COMPUTE):
    """ComputeParams minimising the robust loss of seconds per step over all ``runs``
    (:func:`calibration_runs` by default): rows within ~10% weigh as squares, rows further
    off only linearly, so that a run the model misses for a reason no GEMM rate explains (an
    MoE mechanism it lacks, a framework's unfused kernels) does not set every other run's rate.

    Returns (params, relative errors per run).
    """
    runs = calibration_runs() if runs is None else runs
    return _fit(runs, _clusters(runs), start)


def _clusters(runs):
    """Each run's fabric prepared once, for the many trials of a fit."""
    return [Cluster(run.fabric(), "analytic", ranks=run.ranks) for run in runs]


def _fit(runs, clusters, start):
    """:func:`fit` on prepared ``clusters``."""
    measured = np.array([run.seconds for run in runs])

    def params_of(x):
        # kernel_overhead is searched in microseconds so the simplex moves both alike
        return replace(start, gemm_efficiency=min(1.0, abs(x[0])), kernel_overhead=abs(x[1]) * 1e-6)

    def loss(x):
        p = params_of(x)
        predicted = np.array([predict(run, p, cluster=c) for run, c in zip(runs, clusters)])
        return _soft_l1(np.log(predicted / measured))

    x0 = [start.gemm_efficiency, start.kernel_overhead * 1e6]
    best = minimize(loss, x0, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400})
    fitted = params_of(best.x)
    fitted = replace(
        start, gemm_efficiency=round(fitted.gemm_efficiency, 3), kernel_overhead=round(fitted.kernel_overhead, 8)
    )
    errors = [predict(run, fitted, cluster=c) / run.seconds - 1 for run, c in zip(runs, clusters)]
    return fitted, errors


def gpu_runs(gpu):
    """The supported published runs on ``gpu`` (both files), whose step times fit its rates.

    Examples
    --------
    >>> sorted({r.plan.precision for r in gpu_runs("GB200")}), len(gpu_runs("GB200"))
    (['bf16', 'fp8'], 10)
    """
    return [run for run in published_runs() if run.gpu == gpu and not run.unsupported]


def fitted_parameters(run):
    """What a published run's step time calibrates: ``"<gpu> matmul rates"`` (every run on a
    GPU of :data:`FITTED_GPUS`), ``"gemm_efficiency, kernel_overhead"`` (every other supported
    run, :func:`calibration_runs`), or ``""`` (a row the model cannot price).

    Examples
    --------
    >>> sorted({fitted_parameters(r) for r in published_runs() if not r.unsupported})
    ['GB200 matmul rates', 'gemm_efficiency, kernel_overhead']
    """
    if run.unsupported:
        return ""
    if run.gpu in FITTED_GPUS:
        return f"{run.gpu} matmul rates"
    return ", ".join(FITTED)


def leave_one_out(runs=None, start=DEFAULT_COMPUTE):
    """Out-of-sample relative error of each of ``runs`` (:func:`calibration_runs` by default):
    the run predicted with the compute efficiencies :func:`fit` finds on all the others.
    A few seconds per run.

    Examples
    --------
    >>> errors = leave_one_out()   # doctest: +SKIP
    """
    runs = calibration_runs() if runs is None else runs
    clusters = _clusters(runs)  # built once, not once per held-out run
    errors = []
    for i, run in enumerate(runs):
        params, _ = _fit(runs[:i] + runs[i + 1:], clusters[:i] + clusters[i + 1:], start)
        errors.append(predict(run, params, cluster=clusters[i]) / run.seconds - 1)
    return errors


def _soft_l1(log_errors, scale=ROBUST_SCALE):
    return float(np.sum(2 * scale**2 * (np.sqrt(1 + (log_errors / scale) ** 2) - 1)))


def fit_gpu_rates(gpu, compute=DEFAULT_COMPUTE, runs=None):
    """``gpu``'s (``matmul_efficiency``, ``fp8_matmul_efficiency``) minimising a robust loss
    (soft L1 of the log error, :data:`ROBUST_SCALE`) of seconds per step over all its
    published runs together (:func:`gpu_runs`), the BF16 runs setting the first and the FP8
    runs the second. Returns (the fitted spec, relative errors per run).
    """
    runs = gpu_runs(gpu) if runs is None else runs
    measured = np.array([run.seconds for run in runs])
    base = fabric.GPUS[gpu]
    graphs = [run.fabric() for run in runs]  # built once; each trial swaps in its GPU spec

    def predicted(x):
        spec = replace(base, matmul_efficiency=min(1.0, abs(x[0])), fp8_matmul_efficiency=min(1.0, abs(x[1])))
        times = []
        for run, G in zip(runs, graphs):
            G.graph["gpu"] = spec
            with warnings.catch_warnings():  # a trial rate is no estimate anyone reads
                warnings.simplefilter("ignore", MemoryWarning)
                times.append(estimate_step(run.model, run.plan, G, level="analytic", compute=compute,
                                           ranks=run.ranks).time)
        return np.array(times)

    x0 = [base.matmul_efficiency, base.fp8_matmul_efficiency]
    best = minimize(lambda x: _soft_l1(np.log(predicted(x) / measured)), x0, method="Nelder-Mead",
                    options={"xatol": 1e-3, "fatol": 1e-7, "maxiter": 200})
    x = [round(min(1.0, abs(value)), 3) for value in best.x]
    return replace(base, matmul_efficiency=x[0], fp8_matmul_efficiency=x[1]), (predicted(x) / measured - 1).tolist()


def report(params=DEFAULT_COMPUTE, level="analytic"):
    """Lines comparing every calibration run with the model; the median and maximum error last.

    Returns (lines, relative errors).
    """
    errors, lines = [], []
    for run in calibration_runs():
        est = estimate_step(run.model, run.plan, run.fabric(), level=level, compute=params, ranks=run.ranks)
        err = est.time / run.seconds - 1
        errors.append(err)
        plan = run.plan
        lines.append(
            f"{run.case:<40} {run.gpus:>5} GPUs tp{plan.tp} pp{plan.pp} dp{plan.dp}: "
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
    for name in FITTED_GPUS:
        spec, errs = fit_gpu_rates(name, fitted)
        print(f"{name}: matmul_efficiency={spec.matmul_efficiency}, fp8_matmul_efficiency={spec.fp8_matmul_efficiency}")
        for run, err in zip(gpu_runs(name), errs):
            print(f"  {run.case}: published {run.seconds:.3f} s ({err:+.1%})")
