"""Rank groups: which GPUs take part in a collective and how they sit in NVLink domains."""

from dataclasses import dataclass
from functools import cached_property

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
    domain_index : ndarray
        For each position in ``ranks``, the index of its domain in ``domains``.
    """

    ranks: np.ndarray
    domains: list
    domain_index: np.ndarray

    @property
    def size(self):
        return len(self.ranks)

    @cached_property
    def per_domain(self):
        """Members per domain if every domain has the same count, else None."""
        if self.size % len(self.domains):
            return None
        m = self.size // len(self.domains)
        return m if all(len(d) == m for d in self.domains) else None

    @cached_property
    def contiguous_domains(self):
        """Whether each domain is a consecutive run of the sorted ranks."""
        return bool((np.diff(self.domain_index) >= 0).all())


def checked_ranks(ranks, n_gpus, exists):
    """``ranks`` sorted, as int64, checked to be distinct GPUs of the fabric (None: all of them);
    ``n_gpus()`` gives the GPU count and ``exists(rank)`` whether a rank is one of them.

    Examples
    --------
    >>> checked_ranks([9, 8, 0], lambda: 16, lambda r: r < 16).tolist()
    [0, 8, 9]
    >>> checked_ranks([3, 99], lambda: 16, lambda r: r < 16)
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: ranks contains rank 99, outside 0..15
    """
    if ranks is None:
        return np.arange(n_gpus())
    arr = np.asarray(ranks)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidSpec(f"ranks must be a 1-D sequence of integer GPU ranks, got {ranks!r}")
    arr = np.sort(arr.astype(np.int64))
    if arr.size and (arr[0] < 0 or not exists(int(arr[-1]))):
        bad = arr[0] if arr[0] < 0 else arr[-1]
        raise InvalidSpec(f"ranks contains rank {int(bad)}, outside 0..{n_gpus() - 1}")
    twice = arr[1:][arr[1:] == arr[:-1]]
    if twice.size:
        raise InvalidSpec(f"ranks contains rank {int(twice[0])} twice")
    return arr


def make_group(ranks, *, n_gpus, domain_of, exists=None, minimum=2):
    """Validate ``ranks`` (None = every GPU) and split them by NVLink domain.

    Parameters
    ----------
    ranks : sequence of int or None
    n_gpus : callable
        Returns the fabric's GPU count (called only when needed).
    exists : callable or None
        Whether a rank is a GPU of the fabric; None compares with ``n_gpus()``.
    domain_of : callable
        Maps an array of ranks to their NVLink domain ids.

    Examples
    --------
    >>> import numpy as np
    >>> g = make_group([9, 8, 0, 1], n_gpus=lambda: 16, domain_of=lambda r: r // 8)
    >>> [d.tolist() for d in g.domains], g.domain_index.tolist()
    ([[0, 1], [8, 9]], [0, 0, 1, 1])
    >>> make_group([3, 3], n_gpus=lambda: 16, domain_of=lambda r: r // 8)
    Traceback (most recent call last):
    ...
    collectives.errors.InvalidSpec: ranks contains rank 3 twice
    """
    arr = checked_ranks(ranks, n_gpus, exists or (lambda r: r < n_gpus()))
    if len(arr) < minimum:
        raise InvalidSpec(f"a group of {len(arr)} rank(s) must have >= {minimum}")
    domain = np.asarray(domain_of(arr))
    _, first, index = np.unique(domain, return_index=True, return_inverse=True)
    order = np.argsort(first)  # domains ordered by their lowest rank
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    domain_index = position[index]
    members = arr[np.argsort(domain_index, kind="stable")]
    bounds = np.cumsum(np.bincount(domain_index, minlength=len(order))).tolist()
    domains = [members[lo:hi] for lo, hi in zip([0] + bounds[:-1], bounds)]  # np.split, without its overhead
    return Group(ranks=arr, domains=domains, domain_index=domain_index)


def make_groups(groups, *, n_gpus, domain_of, exists=None, minimum=2):
    """:func:`make_group` of every group, vectorised for many groups of one size whose NVLink
    domains are runs of their sorted ranks (the concurrent groups of a training step): the
    same groups, without a sort and a unique per group. Anything else, and any group that
    ``make_group`` would refuse, goes through ``make_group`` one by one (with its errors).

    Examples
    --------
    >>> gs = make_groups([[8, 0], [9, 1]], n_gpus=lambda: 16, domain_of=lambda r: r // 8)
    >>> [[d.tolist() for d in g.domains] for g in gs]
    [[[0], [8]], [[1], [9]]]
    """
    one_by_one = lambda: [make_group(g, n_gpus=n_gpus, domain_of=domain_of, exists=exists,  # noqa: E731
                                     minimum=minimum) for g in groups]
    try:
        arr = np.asarray(groups)
    except ValueError:  # groups of different sizes
        return one_by_one()
    if exists is not None or arr.ndim != 2 or len(arr) < 2 or arr.shape[1] < minimum \
            or not np.issubdtype(arr.dtype, np.integer):
        return one_by_one()
    ranks = np.sort(arr.astype(np.int64), axis=1)
    if ranks.min() < 0 or ranks.max() >= n_gpus() or (ranks[:, 1:] == ranks[:, :-1]).any():
        return one_by_one()
    domain = np.asarray(domain_of(ranks.ravel())).reshape(ranks.shape)
    change = domain[:, 1:] != domain[:, :-1]
    distinct = 1 + (np.diff(np.sort(domain, axis=1), axis=1) != 0).sum(axis=1)
    if (distinct != 1 + change.sum(axis=1)).any():  # a domain comes back after another: not runs
        return one_by_one()
    domain_index = np.concatenate([np.zeros((len(ranks), 1), np.int64), np.cumsum(change, axis=1)], axis=1)
    width = ranks.shape[1]
    out = []
    for row, cuts, index in zip(ranks, change, domain_index):
        bounds = [0, *(np.flatnonzero(cuts) + 1).tolist(), width]
        out.append(Group(ranks=row, domains=[row[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])],
                         domain_index=index))
    return out
