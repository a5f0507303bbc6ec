"""Past and running local runs, read back from their event logs (`.noetl/runs/*.jsonl`).

`noetl list --local` shows them. A log's first `ExecutionStarted` names the run (child
executions of `tool: playbook` write to the same log under their own ids); its
`FinishExecution` says how it ended. A log without one is a run still going, or one that was
killed before it could say so: it shows as Running. `noetl logs` reads the end of each step
run's log from its `StepSucceeded`/`StepFailed` records (`step_logs`).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noetl.engine import run_key
from noetl.local.eventlog import NotARunLog


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
        records = _records(path)
    except OSError:
        return None
    for record in records:
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


def step_logs(path: Path, step: str | None = None) -> list[tuple[str, str]]:
    """(run, the end of its log) of every step run of a log that printed something, in the
    order they ended; a run is named `step[index]#attempt`, after its execution's id when it
    is a child's. Raises OSError when the log cannot be read, NotARunLog when it is not one."""
    logs: list[tuple[str, str]] = []
    main: str | None = None
    for record in _records(path):
        kind, owner = record.get("type"), record.get("execution")
        main = main or (owner if kind == "ExecutionStarted" else None)
        if kind not in ("StepSucceeded", "StepFailed") or not record.get("log"):
            continue
        if step is not None and record.get("step") != step:
            continue
        run = run_key(str(record.get("step")), record.get("index"), int(record.get("attempt", 1)))
        logs.append((run if owner == main else f"{owner}/{run}", str(record["log"])))
    if main is None:
        raise NotARunLog(f"{path}: not the event log of a noetl run (no execution started)")
    return logs


def _records(path: Path) -> list[dict[str, Any]]:
    """The JSON records of a log; a line cut short by a killed run is left out."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records


def local_runs(directory: Path) -> list[LocalRun]:
    """Every run logged in `directory`, the most recent first."""
    runs = [run for path in directory.glob("*.jsonl") if (run := read_run(path)) is not None]
    return sorted(runs, key=lambda run: run.started_at or 0.0, reverse=True)
