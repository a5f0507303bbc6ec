"""Processes as the kernel sees them (/proc), for tests of what is left running."""

from __future__ import annotations

import time
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


def descendants(pid: int) -> set[int]:
    """Every process below `pid` in the process tree now (children, their children...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        stat = process_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[0] not in ENDED:
            parents[int(entry.name)] = stat[1]
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def still_running(pids: set[int], within: float = 5.0) -> set[int]:
    """Those of `pids` that still run after at most `within` seconds (a kill takes a moment)."""
    deadline = time.monotonic() + within
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {pid for pid in pids if alive(pid)}
