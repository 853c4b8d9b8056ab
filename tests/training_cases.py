"""Helpers shared by the training tests (model, plan, memory)."""

import re

import pytest

from collectives.errors import InvalidSpec
from collectives.training.model import Transformer


def raises_exactly(message):
    """``pytest.raises`` for a collectives ``InvalidSpec`` whose whole message is ``message``."""
    return pytest.raises(InvalidSpec, match=rf"^{re.escape(message)}$")


def tiny(**kw):
    """A small dense transformer, with ``kw`` replacing its fields."""
    args = dict(layers=4, hidden=64, heads=8, seq_len=32, vocab=1000)
    args.update(kw)
    return Transformer(**args)
