"""Plain-text output for people: aligned tables, durations and ages, as kubectl prints them.

Shared by the command line's local and cluster listings (and the operator's `status.duration`),
so that a run reads the same wherever it ran.
"""

from __future__ import annotations

from collections.abc import Sequence


def duration(seconds: float) -> str:
    """3725.2 -> '1h2m5s'; 42 -> '42s'."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or hours else "") + f"{secs}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, two spaces apart; an empty cell shows as '-'."""
    cells = [[str(h) for h in headers]] + [
        ["-" if value is None or value == "" else str(value) for value in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
