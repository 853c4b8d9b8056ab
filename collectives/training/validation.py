"""Every published measurement against the model: step times, memory, nccl-tests rows.

:func:`validate` prices every row of the project's package data (:mod:`collectives.data`):
the training runs of :mod:`collectives.training.published` (step time, and whether the plan
fits in memory: every one of them ran, so each should), the peak memory some of them
report, and the nccl-tests rows of :mod:`collectives.calibration` (bus bandwidth). A row the library cannot express yet is kept,
with the reason, and counted as unsupported rather than dropped. ``python -m collectives
validate [--json]`` prints the same report; :func:`collectives.training.plot.parity` draws it.

Examples
--------
>>> report = validate(kinds=("nccl",), progress=False)
>>> report.summary()["nccl"]["rows"], report.summary()["nccl"]["unsupported"]
(10, 0)
"""

import warnings
from dataclasses import dataclass

import numpy as np

from fabric.checks import require_choice
from fabric.tables import html_table

from collectives import calibration as nccl_calibration
from collectives.errors import MemoryWarning, collectives_errors
from collectives.data import read_rows
from collectives.training.calibration import fitted_parameters
from collectives.training.memory import memory_per_gpu
from collectives.training.published import published_runs
from collectives.training.step import estimate_step

KINDS = ("step", "memory", "nccl")
WITHIN = 0.10  # the share of rows within 10% is reported (the bar for nccl rows)


@dataclass(frozen=True)
class ValidationReport:
    """Published against predicted, row by row, at one modeling level.

    Attributes
    ----------
    rows : tuple of dict
        One per published row: ``kind`` (``"step"``: seconds per step; ``"memory"``: peak
        bytes per GPU, against the model's ``memory_per_gpu``; ``"nccl"``: bus bandwidth in
        bytes/s), ``case``, ``source``, ``gpu`` (family), ``gpus``,
        ``published``, ``predicted``, ``error`` (predicted / published - 1), ``fits`` (step
        rows: the plan fits in the GPU's usable memory), ``memory_per_gpu`` (bytes),
        ``fitted`` (the parameters the row was fitted to, empty for a row that only checks
        the model) and ``unsupported`` (empty, or why the row cannot be priced yet; its
        numbers are None).
    level : str
        ``"analytic"`` or ``"flow"``.
    """

    rows: tuple
    level: str

    def summary(self):
        """Per kind: rows, unsupported, median and max |error|, rows within 10%, rows that
        do not fit; and per GPU family (step rows) the median |error|."""
        out = {}
        for kind in KINDS:
            rows = [r for r in self.rows if r["kind"] == kind]
            if not rows:
                continue
            priced = [r for r in rows if not r["unsupported"]]
            errors = np.abs([r["error"] for r in priced]) if priced else np.array([])
            entry = {
                "rows": len(rows),
                "unsupported": len(rows) - len(priced),
                "median_error": float(np.median(errors)) if priced else None,
                "max_error": float(errors.max()) if priced else None,
                "within_10_percent": int((errors <= WITHIN).sum()),
            }
            checks = np.abs([r["error"] for r in priced if not r["fitted"]])
            entry["checks"] = len(checks)  # rows no parameter was fitted to
            entry["median_error_of_checks"] = float(np.median(checks)) if len(checks) else None
            if kind == "step":
                entry["not_fitting"] = sum(1 for r in priced if not r["fits"])
                entry["median_error_by_gpu"] = {
                    gpu: float(np.median([abs(r["error"]) for r in priced if r["gpu"] == gpu]))
                    for gpu in sorted({r["gpu"] for r in priced})
                }
            out[kind] = entry
        return out

    def to_dict(self):
        return {"level": self.level, "rows": [dict(r) for r in self.rows], "summary": self.summary()}

    def lines(self):
        """The report as text lines: every row, then the summary."""
        out = []
        for r in self.rows:
            head = f"{r['kind']:>6}  {r['case'][:44]:<44} {r['gpu']:>5} {r['gpus']:>5}"
            if r["unsupported"]:
                out.append(f"{head}  unsupported: {r['unsupported']}")
                continue
            published, predicted = _shown(r["kind"], r["published"]), _shown(r["kind"], r["predicted"])
            fits = "" if r["fits"] is None else ("  fits" if r["fits"] else "  DOES NOT FIT")
            fitted = f"  (fitted: {r['fitted']})" if r["fitted"] else ""
            out.append(f"{head}  published {published:>11}  predicted {predicted:>11}  {r['error']:+7.1%}{fits}"
                       f"{fitted}")
        for kind, s in self.summary().items():
            if s["median_error"] is None:
                out.append(f"{kind}: {s['rows']} rows, all unsupported")
                continue
            line = (f"{kind}: {s['rows']} rows, {s['unsupported']} unsupported; median |error| {s['median_error']:.1%},"
                    f" max {s['max_error']:.1%}, {s['within_10_percent']} within 10%")
            if kind == "step":
                line += f", {s['not_fitting']} predicted not to fit"
                line += "; median by GPU: " + ", ".join(f"{g} {e:.1%}" for g, e in s["median_error_by_gpu"].items())
            if s["checks"]:
                if s["checks"] < s["rows"] - s["unsupported"]:
                    line += (f"; the {s['checks']} row{'s' * (s['checks'] != 1)} no parameter was fitted to: "
                             f"median |error| {s['median_error_of_checks']:.1%}")
            elif kind == "step":
                line += ("; every row is in-sample for a fit (out of sample: "
                         "collectives.training.calibration.leave_one_out)")
            out.append(line)
        return out

    def __str__(self):
        return "\n".join([f"Validation against published measurements ({self.level} level)"] + self.lines())

    def _repr_html_(self):
        rows = []
        for kind, s in self.summary().items():
            if s["median_error"] is None:
                rows.append((kind, f"{s['rows']} rows, all unsupported"))
                continue
            text = (f"{s['rows']} rows ({s['unsupported']} unsupported): median |error| {s['median_error']:.1%}, "
                    f"max {s['max_error']:.1%}")
            if s["checks"] < s["rows"] - s["unsupported"] and s["checks"]:
                text += f"; the {s['checks']} not fitted to: {s['median_error_of_checks']:.1%}"
            rows.append((kind, text))
        rows += [(r["case"], r["unsupported"] or f"{r['error']:+.1%}" + (f" (fitted: {r['fitted']})" if r["fitted"]
                                                                          else "")) for r in self.rows]
        return html_table(f"Validation against published measurements ({self.level} level)", rows)


def _shown(kind, value):
    if kind == "memory":
        return f"{value / 2**30:.1f} GiB"
    return f"{value:.3f} s" if kind == "step" else f"{value / 1e9:.1f} GB/s"


def validate(level="analytic", *, kinds=KINDS, progress=True):
    """Compare the model with every published measurement of the project's package data.

    Parameters
    ----------
    level : {"analytic", "flow"}
        Modeling level of the step estimates and collectives.
    kinds : tuple of {"step", "memory", "nccl"}
        Which rows: training steps, peak memory, nccl-tests bus bandwidths (default all).
    progress : bool
        A tqdm bar over the rows (the flow level takes a minute or two).

    Returns
    -------
    ValidationReport
    """
    with collectives_errors():
        require_choice("level", level, ("analytic", "flow"))
        for kind in kinds:
            require_choice("kinds", kind, KINDS)
    jobs = []
    runs = published_runs()
    if "step" in kinds:
        jobs += [(_step_row, run) for run in runs]
    if "memory" in kinds:
        by_case = {run.case: run for run in runs}
        jobs += [(_memory_row, (by_case[row["case"]], row)) for row in read_rows("memory.csv")]
    if "nccl" in kinds:
        jobs += [(_nccl_row, row) for row in nccl_calibration.nccl_rows()]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="pricing published rows", unit="row")
    return ValidationReport(rows=tuple(price(item, level) for price, item in jobs), level=level)


def _step_row(run, level):
    row = dict(kind="step", case=run.case, source=run.source, gpu=run.gpu, gpus=run.gpus, published=run.seconds,
               predicted=None, error=None, fits=None, memory_per_gpu=None, fitted=fitted_parameters(run),
               unsupported=run.unsupported)
    if not run.unsupported:
        with warnings.catch_warnings():  # a plan that does not fit is reported in the row
            warnings.simplefilter("ignore", MemoryWarning)
            est = estimate_step(run.model, run.plan, run.fabric(), level=level, ranks=run.ranks)
        row.update(predicted=est.time, error=est.time / run.seconds - 1, fits=est.fits,
                   memory_per_gpu=est.memory_per_gpu)
    return row


def _memory_row(item, level):
    run, row = item
    published = float(row["peak_memory_gib"]) * 2**30
    out = dict(kind="memory", case=run.case, source=row["source"], gpu=run.gpu, gpus=run.gpus, published=published,
               predicted=None, error=None, fits=None, memory_per_gpu=None, fitted="", unsupported=run.unsupported)
    if not run.unsupported:
        predicted = memory_per_gpu(run.model, run.plan)["total"]
        out.update(predicted=predicted, error=predicted / published - 1, memory_per_gpu=predicted)
    return out


def _nccl_row(row, level):
    predicted = nccl_calibration.predict(row, level=level)
    size = f"{row['message_bytes'] / 2**20:g} MiB"
    return dict(kind="nccl", case=f"{row['collective']} {row['algorithm']} {size}", source=row["note"],
                gpu=row["gpu"], gpus=row["nodes"] * row["gpus_per_node"], published=row["busbw"],
                predicted=predicted, error=predicted / row["busbw"] - 1, fits=None, memory_per_gpu=None,
                fitted=nccl_calibration.governing_parameter(row) or "", unsupported="")
