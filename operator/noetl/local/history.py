"""Past and running local runs, read back from their event logs (`.noetl/runs/*.jsonl`).

`noetl list --local` shows them. A log's first `ExecutionStarted` names the run (child
executions of `tool: playbook` write to the same log under their own ids); its
`FinishExecution` says how it ended. A log without one is a run still going, or one that was
killed before it could say so: it shows as Running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LocalRun:
    execution: str
    playbook: str
    phase: str
    started_at: float | None
    finished_at: float | None
    error: str | None
    log: Path


def read_run(path: Path) -> LocalRun | None:
    """The run a log holds; None for a file that is not an event log."""
    execution: str | None = None
    started = finished = None
    phase, error = "Running", None
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed run
        kind, owner = record.get("type"), record.get("execution")
        if kind == "ExecutionStarted" and execution is None:
            execution, started = owner, record.get("at", record.get("time"))
        elif kind == "FinishExecution" and owner == execution:
            phase, error = record.get("phase", phase), record.get("error")
            finished = record.get("time")
    if execution is None:
        return None
    playbook = execution.rsplit("-", 1)[0]
    return LocalRun(execution, playbook, phase, started, finished, error, path)


def local_runs(directory: Path) -> list[LocalRun]:
    """Every run logged in `directory`, the most recent first."""
    runs = [run for path in directory.glob("*.jsonl") if (run := read_run(path)) is not None]
    return sorted(runs, key=lambda run: run.started_at or 0.0, reverse=True)
