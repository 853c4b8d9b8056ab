"""Markdown tables for the benchmark scripts (their output is pasted into BENCHMARKS.md)."""


def row(cells, widths):
    """One ``| a | b |`` row, each cell padded to its width."""
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def head(header, widths):
    """The header row and the ``|---|`` rule under it."""
    return row(header, widths) + "\n|" + "|".join("-" * (w + 2) for w in widths) + "|"
