"""A loop's Events, gathered: one when it starts, progress every tenth, one when it ends.

An Event per item start and end made 4,000 Events for a loop of 2,000 items: noise that buries
what matters, and load on the API server and etcd. Instead a loop step is told as a whole: it
started (with its size), its progress each time another tenth of its items ended (no more often
than every `PROGRESS_INTERVAL` seconds), and its end, read from the status summary. The first
few item failures and retries are still told one by one (`ITEM_TROUBLE_TOLD`); the rest are
counted in the progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from noetl.engine import ExecutionState

PROGRESS_PARTS = 10
PROGRESS_INTERVAL = 10.0
ITEM_TROUBLE_TOLD = 3
Told = tuple[str, str, bool]  # reason, message, warning


@dataclass
class _Loop:
    total: int
    part: int = 0
    told_at: float = 0.0
    trouble: int = 0


class LoopEvents:
    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self._loops: dict[str, _Loop] = {}

    def started(self, step: str, state: ExecutionState) -> Told | None:
        """The Event of a loop's start, on its first item (None for the items after it)."""
        loop = state.steps[step].loop
        if step in self._loops or loop is None:
            return None
        self._loops[step] = _Loop(loop.total, told_at=self.now())
        return "StepStarted", f"step {step} started a loop of {loop.total} items", False

    def tell_trouble(self, step: str) -> bool:
        """Whether an item's failure or retry is told on its own (the first few of each loop)."""
        loop = self._loops.get(step)
        if loop is None:
            return True
        loop.trouble += 1
        return loop.trouble <= ITEM_TROUBLE_TOLD

    def progress(
        self, state: ExecutionState, summary: Callable[[str], Mapping[str, Any] | None]
    ) -> list[Told]:
        """After a turn: the loops that passed another tenth, and those that ended."""
        told: list[Told] = []
        for name, seen in list(self._loops.items()):
            step = state.steps.get(name)
            if step is None or step.phase != "Running" or step.loop is None:
                del self._loops[name]
                ended = dict(summary(name) or {})
                phase = (step.phase if step else ended.get("phase")) or "ended"
                items = ended.get("items") or f"{seen.total}"
                warning = phase not in ("Succeeded", "ended")
                message = f"step {name}: loop {phase.lower()} ({items} items succeeded)"
                told.append(("StepFinished", message, warning))
                continue
            done = step.loop.done + step.loop.failures
            part = done * PROGRESS_PARTS // max(1, seen.total)
            if part > seen.part and self.now() - seen.told_at >= PROGRESS_INTERVAL:
                seen.part, seen.told_at = part, self.now()
                failed = f", {step.loop.failures} failed" if step.loop.failures else ""
                message = f"step {name}: {done}/{seen.total} items ended{failed}"
                told.append(("StepProgress", message, False))
        return told
