"""Rank groups: which GPUs take part in a collective and how they sit in NVLink domains."""

from dataclasses import dataclass

import numpy as np

from collectives.errors import InvalidSpec


@dataclass(frozen=True, eq=False)
class Group:
    """A set of GPU ranks, canonically sorted, split by NVLink domain.

    Attributes
    ----------
    ranks : ndarray
        Sorted global ranks.
    domains : list of ndarray
        Members of each NVLink domain, domains ordered by their lowest rank.
    """

    ranks: np.ndarray
    domains: list

    @property
    def size(self):
        return len(self.ranks)

    @property
    def per_domain(self):
        """Members per domain if every domain has the same count, else None."""
        counts = {len(d) for d in self.domains}
        return counts.pop() if len(counts) == 1 else None


def make_group(compiled, ranks, *, minimum=2):
    """Validate ``ranks`` (None = every GPU) and split them by NVLink domain.

    Examples
    --------
    >>> import fabric
    >>> from fabric.compiled import compile_fabric
    >>> g = make_group(compile_fabric(fabric.dgx_superpod(2)), [9, 8, 0, 1])
    >>> [d.tolist() for d in g.domains]
    [[0, 1], [8, 9]]
    >>> make_group(compile_fabric(fabric.dgx_superpod(2)), [3, 3])
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: ranks contains rank 3 twice
    """
    n = compiled.n_gpus
    if ranks is None:
        arr = np.arange(n)
    else:
        arr = np.asarray(ranks)
        if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
            raise InvalidSpec(f"ranks must be a 1-D sequence of integer GPU ranks, got {ranks!r}")
        arr = np.sort(arr.astype(np.int64))
        bad = (arr < 0) | (arr >= n)
        if bad.any():
            raise InvalidSpec(f"ranks contains rank {int(arr[bad][0])}, outside 0..{n - 1}")
        twice = arr[1:][arr[1:] == arr[:-1]]
        if twice.size:
            raise InvalidSpec(f"ranks contains rank {int(twice[0])} twice")
    if len(arr) < minimum:
        raise InvalidSpec(f"a group of {len(arr)} rank(s) must have >= {minimum}")
    domain = np.where(compiled.domain[arr] >= 0, compiled.domain[arr], -1 - arr)
    order = np.unique(domain, return_index=True)[1]
    firsts = np.sort(order)
    domains = [arr[domain == domain[i]] for i in firsts]
    return Group(ranks=arr, domains=domains)
