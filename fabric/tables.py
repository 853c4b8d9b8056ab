"""Plain-text and HTML rendering of (label, value) tables, and readable figures.

Shared by the result objects of ``fabric`` and ``collectives`` (``__str__`` and
``_repr_html_`` for Jupyter).

Examples
--------
>>> print(text_table("Link", [("bandwidth", format_rate(50e9))]))
Link
----
bandwidth  50 GB/s (400 Gb/s)
"""

import html


def text_table(title, rows):
    """A titled two-column text table of (label, value) string pairs."""
    width = max(len(label) for label, _ in rows)
    lines = [title, "-" * len(title)] + [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)


def html_table(title, rows):
    """The same table as HTML, values escaped."""
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    return f"<table><caption>{html.escape(title)}</caption>{body}</table>"


def format_rate(value):
    """Bytes/s in the largest SI prefix, with the bits/s figure networks are quoted in."""
    if value is None:
        return "n/a (one host)"
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:,.4g} {prefix}B/s ({value * 8 / scale:,.4g} {prefix}b/s)"
    return f"{value:,.4g} B/s"


def format_time(seconds):
    """Seconds in s, ms or us with four significant digits.

    Examples
    --------
    >>> format_time(0.00123)
    '1.23 ms'
    """
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds * 1e9:.4g} ns"


def format_bytes(nbytes):
    """Bytes in GiB, MiB or KiB (binary prefixes, as memory is quoted), three significant digits.

    Examples
    --------
    >>> format_bytes(3 * 2**30), format_bytes(5824), format_bytes(12)
    ('3 GiB', '5.69 KiB', '12 B')
    """
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.3g} {unit}"
    return f"{nbytes:.0f} B"


def format_watts(value):
    """Watts as kilowatts: ``format_watts(1500)`` is ``"1.5 kW"``."""
    return f"{value / 1e3:,.1f} kW"
