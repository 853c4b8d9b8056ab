"""Published measurements the models are fitted to or checked against (the project's package data).

Each CSV names its sources in its ``#`` header lines; they arrive in ``../shared/validation``
and are copied here so that a clean clone and ``pip install .`` carry them:

- ``nccl.csv``: nccl-tests bus bandwidths on DGX A100 / H100 (ring, NVLS);
- ``nccl_multinode.csv``: all-reduce on GB200 NVL72 racks (one and two) and DGX H100 NVLS;
- ``training.csv``: SC'21 Table 1 and Megatron-LM's H100 weak-scaling table (throughput);
- ``training_runs.csv``: runs with their full plans (dgxc-benchmarking, torchtitan, BLOOM);
- ``memory.csv``: the peak memory per GPU some of those runs report (torchtitan's tables);
  added by the project, not one of the shared files;
- ``training_runs_added.csv``: more runs of training_runs.csv's sources, in its columns (the
  other rows of dgxc-benchmarking's Llama 3.1 405B tables); added by the project.

Examples
--------
>>> rows = read_rows("nccl.csv")
>>> rows[0]["collective"], len(rows) >= 6
('all_reduce', True)
"""

import csv
from importlib import resources

FILES = ("nccl.csv", "nccl_multinode.csv", "training.csv", "training_runs.csv", "memory.csv", "training_runs_added.csv")


def data_file(name):
    """The package-data file ``name`` (one of :data:`FILES`), as an ``importlib.resources`` path.

    Examples
    --------
    >>> data_file("training_runs.csv").name
    'training_runs.csv'
    """
    if name not in FILES:
        from collectives.errors import InvalidSpec

        raise InvalidSpec(f"name={name!r} must be one of {', '.join(map(repr, FILES))}")
    return resources.files(__name__) / name


def read_rows(name):
    """Rows of the package-data CSV ``name`` as dicts of strings (its ``#`` lines are skipped)."""
    with data_file(name).open(newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))
