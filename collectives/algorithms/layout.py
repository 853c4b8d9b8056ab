"""Shared shapes of multi-level algorithms: rings over domains, per-rail rings."""

import numpy as np

from collectives.errors import Unsupported


def uniform_domains(ctx, name):
    """Members per domain, requiring every domain to hold the same number (>= 1)."""
    m = ctx.group.per_domain
    if m is None:
        sizes = sorted({len(d) for d in ctx.group.domains})
        raise Unsupported(f"algorithm={name!r} needs the same number of ranks in every NVLink domain, got {sizes}")
    return m


def rail_rings(group):
    """Flows (src, dst) of the rings joining the j-th member of consecutive domains."""
    members = np.stack(group.domains)  # domains x m
    return members.ravel(), np.roll(members, -1, axis=0).ravel()


def ring_flows(members):
    """Flows (src, dst) of one ring through ``members`` in order."""
    members = np.asarray(members)
    return members, np.roll(members, -1)


def domain_rings(group):
    """Flows (src, dst) of one ring inside each domain."""
    src = np.concatenate(group.domains)
    dst = np.concatenate([np.roll(d, -1) for d in group.domains])
    return src, dst
