"""Processes as the kernel sees them (/proc), for tests of what is left running."""

from __future__ import annotations

from pathlib import Path

ENDED = ("Z", "X")  # zombie, dead: ended, at most not yet reaped


def process_stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, parent = stat.rsplit(")", 1)[1].split()[:2]  # the name in (...) may hold spaces
    return state, int(parent)


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not count: it has ended, only not been reaped)."""
    stat = process_stat(pid)
    return stat is not None and stat[0] not in ENDED
