"""Fitting the efficiency parameters to published nccl-tests measurements.

The measurements are package data (:mod:`collectives.data`): ``nccl.csv`` (DGX A100 and
H100 servers, one algorithm per row) and ``nccl_multinode.csv`` (GB200 NVL72 racks and DGX
H100 with NCCL's default choice). :func:`fit` adjusts ``nvlink_efficiency`` (ring rows) and
``nvls_efficiency`` (NVLS rows), and ``multinode_nvls_efficiency`` with
``multinode_nvls_latency`` (a bandwidth and a latency: the rack's bus bandwidth grows with
the message) to the GB200 NVL72 rack rows, so the model's bus bandwidth matches the published
rows as a whole: each is the single value (pair) minimising the squared relative error over
all rows it governs, never one value per row. The defaults in :mod:`collectives.params` are
the result; rerun when the file grows.

Examples
--------
>>> rows = [{"collective": "all_reduce", "gpu": "H100", "nodes": 1, "gpus_per_node": 8,
...          "algorithm": "ring", "message_bytes": 4 * 2**30, "busbw": 370e9}]
>>> round(predict(rows[0]) / 1e9)
361
"""

import csv
from dataclasses import replace
from pathlib import Path

from scipy.optimize import minimize, minimize_scalar

import fabric

from collectives.data import read_rows
from collectives.params import DEFAULT_PARAMS

# Which parameter each measured algorithm calibrates; the rows of GB200 NVL72 racks (NCCL's
# own choice, NVLS across the trays of a rack) calibrate the multi-host NVLS efficiency.
PARAMETER_OF = {"ring": "nvlink_efficiency", "nvls": "nvls_efficiency"}
MULTINODE_PARAMETER = "multinode_nvls_efficiency"
MULTINODE_LATENCY = "multinode_nvls_latency"


def governing_parameter(row):
    """The parameter a row calibrates, or None (rows priced with fitted parameters only):
    ``nvlink_efficiency`` for ring rows, ``nvls_efficiency`` for NVLS rows,
    ``multinode_nvls_efficiency`` (with its latency) for the GB200 NVL72 rack rows.

    Examples
    --------
    >>> [governing_parameter(r) for r in nccl_rows()][:2]
    ['nvlink_efficiency', 'nvls_efficiency']
    """
    if row.get("fabric") == "nvl72":
        return MULTINODE_PARAMETER
    return PARAMETER_OF.get(row["algorithm"])


def read_nccl_csv(path=None):
    """Rows of ``nccl.csv`` (or of the CSV at ``path``, same columns) with numbers parsed;
    ``busbw`` in bytes/s."""
    if path is None:
        raw = read_rows("nccl.csv")
    else:
        with open(Path(path), newline="") as f:
            raw = list(csv.DictReader(line for line in f if not line.startswith("#")))
    return [_parsed(row) for row in raw]


def nccl_rows():
    """Every published nccl-tests row: ``nccl.csv`` and ``nccl_multinode.csv``.

    Rows of the multi-node file carry ``fabric`` (``"eos"``: DGX H100 SuperPOD; ``"nvl72"``:
    GB200 NVL72 racks) and ``algorithm="auto"`` (NCCL chose; the source prints no algorithm).

    Examples
    --------
    >>> rows = nccl_rows()
    >>> sorted({r["fabric"] for r in rows}), rows[-1]["algorithm"]
    (['eos', 'nvl72'], 'auto')
    """
    return read_nccl_csv() + [_parsed(row) for row in read_rows("nccl_multinode.csv")]


def _parsed(row):
    algorithm = row["algorithm"]
    return {
        "collective": row["collective"],
        "gpu": row["gpu"],
        "nodes": int(row["nodes"]),
        "gpus_per_node": int(row["gpus_per_node"]),
        "algorithm": algorithm if algorithm in PARAMETER_OF else "auto",
        "message_bytes": float(row["message_bytes"]),
        "busbw": float(row["busbw_GBps"]) * 1e9,
        "fabric": row.get("fabric", "eos"),
        "note": row.get("note") or row.get("source", ""),
    }


def predict(row, params=DEFAULT_PARAMS, level="flow"):
    """Modelled busbw (bytes/s) of one measurement row on its fabric: a DGX SuperPOD of its
    size (``fabric="eos"``, the default) or GB200 NVL72 racks (``"nvl72"``)."""
    import collectives

    if row.get("fabric", "eos") == "nvl72":
        G = fabric.nvl72(row["nodes"] * row["gpus_per_node"] // 72, gpu=row["gpu"])
        ranks = None  # whole racks
    else:
        G = fabric.dgx_superpod(row["nodes"], gpu=row["gpu"])
        ranks = [h * 8 + i for h in range(row["nodes"]) for i in range(row["gpus_per_node"])]
    fn = getattr(collectives, row["collective"])
    result = fn(G, row["message_bytes"], ranks=ranks, algorithm=row["algorithm"], level=level, params=params)
    return result.busbw


def fit(rows=None, params=DEFAULT_PARAMS):
    """Parameters with each efficiency fitted to the rows it governs; returns (params, errors).

    ``errors`` maps each row index to its relative error after the fit.
    """
    rows = nccl_rows() if rows is None else rows

    def loss(mine, trial):
        return sum((predict(r, trial) / r["busbw"] - 1) ** 2 for r in mine)

    for name in PARAMETER_OF.values():
        mine = [r for r in rows if governing_parameter(r) == name]
        if mine:
            best = minimize_scalar(lambda value: loss(mine, replace(params, **{name: value})), bounds=(0.3, 1.0),
                                   method="bounded", options={"xatol": 1e-4})
            params = replace(params, **{name: round(float(best.x), 3)})
    mine = [r for r in rows if governing_parameter(r) == MULTINODE_PARAMETER]
    if mine:
        # the efficiency and the latency (searched in milliseconds, so the simplex moves both alike)
        def trial(x):
            return replace(params, **{MULTINODE_PARAMETER: min(1.0, max(0.05, abs(x[0]))),
                                      MULTINODE_LATENCY: abs(x[1]) * 1e-3})

        # a simplex spanning the plausible ranges (0.3-0.7, 0-1 ms): the ring sets the large
        # messages' rate while NVLS is slower, a flat valley a small simplex would stop in
        simplex = [[0.5, 0.5], [0.3, 0.1], [0.7, 1.0]]
        best = minimize(lambda x: loss(mine, trial(x)), simplex[0], method="Nelder-Mead",
                        options={"xatol": 1e-4, "fatol": 1e-9, "initial_simplex": simplex})
        fitted = trial(best.x)
        params = replace(params, **{MULTINODE_PARAMETER: round(getattr(fitted, MULTINODE_PARAMETER), 3),
                                    MULTINODE_LATENCY: round(getattr(fitted, MULTINODE_LATENCY), 6)})
    errors = {i: predict(r, params) / r["busbw"] - 1 for i, r in enumerate(rows)}
    return params, errors


if __name__ == "__main__":
    fitted, errs = fit()
    for name in (*PARAMETER_OF.values(), MULTINODE_PARAMETER, MULTINODE_LATENCY):
        print(f"{name} = {getattr(fitted, name)}")
    for i, row in enumerate(nccl_rows()):
        print(f"{row['collective']:>11} {row['gpu']} {row['nodes']}x{row['gpus_per_node']} {row['algorithm']:>5}: "
              f"measured {row['busbw'] / 1e9:6.1f} GB/s, error {errs[i]:+.1%}")
