"""Fitting the compute efficiencies to published training runs (training.csv) as a whole.

Each row of ../shared/validation/training.csv is rebuilt as a model, a plan and a fabric
(Selene-like DGX A100 SuperPOD with HDR for the SC'21 rows, DGX H100 SuperPOD for the
Megatron-Core rows) and predicted with :func:`collectives.estimate_step`. :func:`fit`
chooses the two fitted :class:`collectives.training.compute.ComputeParams` (GEMM efficiency and
kernel overhead) that minimise the squared log error over every row at once; the defaults in :mod:`collectives.training.compute` are its
result. Choices the sources leave open are made as Megatron-LM defaults and said here:

* micro-batch size 1 (Megatron-LM's default ``--micro-batch-size``);
* interleaving: two model chunks per stage where the layers split evenly that way and the
  microbatches are a multiple of the stages (SC'21 used the interleaved schedule), else
  plain 1F1B;
* SC'21: fp16 mixed precision (2021 Megatron-LM; gradients kept and all-reduced in fp16),
  no distributed optimizer (zero=0), no overlap of communication, attention scores
  materialised (2021 Megatron-LM, before FlashAttention); GELU MLP of 4h, multi-head
  attention;
* Megatron-Core H100 rows: distributed optimizer (zero=1) with ``--overlap-grad-reduce
  --overlap-param-gather --tp-comm-overlap`` as the source states, fused (flash)
  attention; GELU MLP of 4h.
"""

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

import fabric

from collectives.calibration import VALIDATION_DIR
from collectives.training.compute import DEFAULT_COMPUTE
from collectives.training.model import Transformer
from collectives.training.plan import Parallelism
from collectives.training.step import Cluster, estimate_step

FITTED = ("gemm_efficiency", "kernel_overhead")


def read_training_csv(path=None):
    """Rows of training.csv as dicts with numbers parsed."""
    path = Path(path) if path else VALIDATION_DIR / "training.csv"
    with open(path, newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    ints = ("gpus", "layers", "hidden", "heads", "seq_len", "vocab", "tp", "pp", "dp", "global_batch")
    rows = []
    for row in csv.DictReader(lines):
        parsed = dict(row)
        for k in ints:
            parsed[k] = int(row[k])
        parsed["tflops_per_gpu"] = float(row["tflops_per_gpu"])
        parsed["seconds_per_iter"] = float(row["seconds_per_iter"])
        parsed["sequence_parallel"] = row["sequence_parallel"].strip().lower() == "true"
        rows.append(parsed)
    return rows


def _virtual_stages(row, micro_batches):
    if row["pp"] > 1 and row["layers"] % (2 * row["pp"]) == 0 and micro_batches % row["pp"] == 0:
        return 2
    return 1


def case(row):
    """(model, plan, fabric) of one training.csv row, with the choices in the module doc."""
    model = Transformer(
        layers=row["layers"],
        hidden=row["hidden"],
        heads=row["heads"],
        seq_len=row["seq_len"],
        vocab=row["vocab"],
        mlp="gelu",
        name=f"{row['source']} {row['layers']}L h{row['hidden']}",
    )
    micro_batches = row["global_batch"] // row["dp"]
    megatron_core = row["source"] != "sc21"
    plan = Parallelism(
        tp=row["tp"],
        pp=row["pp"],
        dp=row["dp"],
        micro_batch=1,
        global_batch=row["global_batch"],
        virtual_stages=_virtual_stages(row, micro_batches),
        sequence_parallel=row["sequence_parallel"],
        recompute=row["recompute"],
        zero=1 if megatron_core else 0,
        precision="bf16" if megatron_core else "fp16",
        flash_attention=megatron_core,
        tp_comm_overlap=megatron_core,
        overlap_grad_reduce=megatron_core,
        overlap_param_gather=megatron_core,
    )
    G = fabric.dgx_superpod(row["gpus"] // 8, gpu=row["gpu"])
    return model, plan, G


def _prepared(rows, level):
    """(model, plan, Cluster) per row, so a fit prices each collective once."""
    out = []
    for row in rows:
        model, plan, G = case(row)
        out.append((model, plan, Cluster(G, level)))
    return out


def predict(row, compute=DEFAULT_COMPUTE, level="analytic", prepared=None):
    """Predicted seconds per iteration of one row (``prepared``: from a fit's cache)."""
    if prepared is None:
        model, plan, G = case(row)
        return estimate_step(model, plan, G, level=level, compute=compute).time
    model, plan, cluster = prepared
    return estimate_step(model, plan, cluster.G, compute=compute, cluster=cluster).time


def fit(rows=None, start=DEFAULT_COMPUTE):
    """ComputeParams minimising the squared log error of seconds per iteration over all rows.

    Returns (params, relative errors per row).
    """
    rows = read_training_csv() if rows is None else rows
    prepared = _prepared(rows, "analytic")
    measured = np.array([r["seconds_per_iter"] for r in rows])

    def params_of(x):
        # kernel_overhead is searched in microseconds so the simplex moves all three alike
        return replace(start, gemm_efficiency=min(1.0, abs(x[0])), kernel_overhead=abs(x[1]) * 1e-6)

    def loss(x):
        p = params_of(x)
        predicted = np.array([predict(r, p, prepared=c) for r, c in zip(rows, prepared)])
        return float(np.sum(np.log(predicted / measured) ** 2))

    x0 = [start.gemm_efficiency, start.kernel_overhead * 1e6]
    best = minimize(loss, x0, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400})
    fitted = params_of(best.x)
    fitted = replace(
        start, gemm_efficiency=round(fitted.gemm_efficiency, 3), kernel_overhead=round(fitted.kernel_overhead, 8)
    )
    errors = [predict(r, fitted, prepared=c) / r["seconds_per_iter"] - 1 for r, c in zip(rows, prepared)]
    return fitted, errors


def report(params=DEFAULT_COMPUTE, level="analytic"):
    """Lines comparing every row with the model; the median and maximum error last."""
    rows = read_training_csv()
    errors, lines = [], []
    for row in rows:
        model, plan, G = case(row)
        est = estimate_step(model, plan, G, level=level, compute=params)
        err = est.time / row["seconds_per_iter"] - 1
        errors.append(err)
        lines.append(
            f"{row['source']:>13} {row['gpus']:>5} GPUs tp{row['tp']} pp{row['pp']} dp{row['dp']}: "
            f"published {row['seconds_per_iter']:7.3f} s, model {est.time:7.3f} s ({err:+.1%})"
        )
    abs_err = np.abs(errors)
    lines.append(f"median |error| {np.median(abs_err):.1%}, max |error| {abs_err.max():.1%}")
    return lines, errors


if __name__ == "__main__":
    fitted, errs = fit()
    print("fitted:", ", ".join(f"{n}={getattr(fitted, n)}" for n in FITTED))
    for line in report(fitted)[0]:
        print(line)
