"""Markdown tables for the benchmark scripts (their output is pasted into BENCHMARKS.md)."""


def row(cells, widths):
    """One ``| a | b |`` row, each cell padded to its width."""
    return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"


def head(header, widths):
    """The header row and the ``|---|`` rule under it."""
    return row(header, widths) + "\n|" + "|".join("-" * (w + 2) for w in widths) + "|"


def table(header, rows):
    """A whole table, each column as wide as its widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    return "\n".join([head(header, widths), *(row(r, widths) for r in rows)])
