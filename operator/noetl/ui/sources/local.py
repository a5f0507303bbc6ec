"""Runs on this machine, read from the event logs `noetl run` writes (`.noetl/runs/*.jsonl`).

A log's first line (`Run`, see noetl.local.eventlog) carries the playbook as run and the
workload, so a run is replayed through the engine event by event: the view then shows exactly
the state the run had (loop counts, skipped steps), the same record a cluster keeps. Commands in
the log give each attempt's rendered args; step events give its times, error and output. A log
is read incrementally: following a run reads only the lines added since the last look.

The run's process id is in the log too; a run still in progress is cancelled with SIGTERM (what
Ctrl-C does), after checking that the process with that id is the one writing this log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from noetl.engine import (
    CancelRequested,
    Engine,
    Event,
    ExecutionStarted,
    ExecutionState,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerFired,
)
from noetl.engine.state import FINISHED_PHASES
from noetl.playbook import PlaybookInvalid, parse_playbook
from noetl.playbook.yaml_core import YamlError, load_yaml
from noetl.ui.model import (
    LOCAL,
    Attempt,
    EventView,
    ExecutionSummary,
    ExecutionView,
    GraphModel,
    LogText,
    PlaybookView,
    StepDetail,
    StepView,
    graph_of,
    place_errors,
)
from noetl.ui.sources import ActionRefused, fill_steps, step_views

FOLLOW_INTERVAL = 0.2  # seconds between looks at a log that is still being written
QUIET_SECONDS = 10  # a log that names no process is taken as abandoned after this long unwritten
EVENTS = {
    "ExecutionStarted": ExecutionStarted,
    "StepStarted": StepStarted,
    "StepSucceeded": StepSucceeded,
    "StepFailed": StepFailed,
    "TimerFired": TimerFired,
    "CancelRequested": CancelRequested,
}
_EVENT_FIELDS = {
    kind: set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    for kind, cls in EVENTS.items()
}
OUTPUT_KEYS = ("stdout", "stderr")


class LocalRun:
    """One event log, read as far as it is written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.stem
        self._offset = 0
        self._records: list[dict[str, Any]] = []
        self.execution_id: str | None = None
        self.pid: int | None = None
        self.playbook_name = ""
        self.phase = "Pending"
        self.started: float | None = None
        self.finished: float | None = None
        self.error: str | None = None
        self._graph = GraphModel()  # drawn from the playbook in the log, once
        self._engine: Engine | None = None
        self._state = ExecutionState()
        self._results: dict[str, Any] = {}
        self._replayed = 0
        self.note: str | None = None
        self.attempts: dict[tuple[str, int | None, int], Attempt] = {}
        self.outputs: dict[tuple[str, int | None, int], dict[str, str]] = {}

    def refresh(self) -> bool:
        """Read the lines added since the last look; whether there were any."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except OSError:
            return False
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits for its end
        if not complete:
            return False
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                self._take(record)
        return True

    def _take(self, record: dict[str, Any]) -> None:
        if self.execution_id is None:
            self.execution_id = record.get("execution")
            self._start(record if record.get("type") == "Run" else {})
            if record.get("type") == "Run":
                return
        if record.get("execution") != self.execution_id:
            return  # a child playbook's own events: its outcome reaches the parent's step
        kind = record.get("type")
        if kind in EVENTS:
            self._records.append(record)  # to replay; commands only fill in the attempts
        if kind == "ExecutionStarted":
            self.phase, self.started = "Running", record.get("at")
        elif kind == "FinishExecution":
            self.phase, self.error, self.finished = (
                record["phase"],
                record.get("error"),
                record["time"],
            )
        self._note_attempt(kind, record)

    def _start(self, run: dict[str, Any]) -> None:
        """Read the header (`Run`, see noetl.local.eventlog): the process, playbook, workload."""
        self.pid = run.get("pid")
        self.playbook_name = run.get("name") or (self.execution_id or "").rpartition("-")[0]
        if not isinstance(run.get("spec"), dict):
            self.note = "this log does not hold its playbook: the graph shows only steps that ran"
            return
        document = {"kind": "Playbook", "name": self.playbook_name, "spec": run["spec"]}
        try:
            playbook = parse_playbook(document, self.name)
        except PlaybookInvalid as error:
            self.note = f"the playbook in this log cannot be read: {error}"
            return
        self.playbook_name = playbook.name
        self._graph = graph_of(playbook.spec)
        self._engine = Engine(
            playbook,
            run.get("workload") or {},
            {"id": self.execution_id or self.name, "name": playbook.name},
        )

    def _note_attempt(self, kind: Any, record: dict[str, Any]) -> None:
        if "step" not in record or "attempt" not in record:
            return
        key = (record["step"], record.get("index"), record["attempt"])
        if kind in ("StartStep", "StartChildExecution"):
            args = record.get("args")
            if kind == "StartChildExecution":
                args = {"playbook": record.get("playbook"), "workload": record.get("workload")}
            self.attempts[key] = Attempt(key[2], key[1], "Starting", args=args)
            return
        attempt = self.attempts.get(key)
        if attempt is None:
            return
        if kind == "StepStarted":
            attempt.state, attempt.started = "Running", record.get("at")
        elif kind in ("StepSucceeded", "StepFailed"):
            attempt.state = "Succeeded" if kind == "StepSucceeded" else "Failed"
            attempt.finished, attempt.error = record.get("at"), record.get("error")
            result = record.get("result")
            output = {}
            if isinstance(result, dict):
                output = {k: v for k in OUTPUT_KEYS if isinstance(v := result.get(k), str) and v}
            if not output and record.get("log"):
                output = {"log": record["log"]}  # printed, not returned: a python step's prints
            if output:
                self.outputs[key] = output
        elif kind == "CancelStep" and attempt.finished is None:
            attempt.state = "Cancelled"

    def _replay(self) -> None:
        """Feed the engine the events it has not seen yet."""
        if self._engine is None:
            return
        for record in self._records[self._replayed :]:
            kind = record["type"]
            try:
                event: Event = EVENTS[kind](
                    **{k: v for k, v in record.items() if k in _EVENT_FIELDS[kind]}
                )
                self._engine.handle(self._state, self._results, event)
            except Exception as error:  # a log that does not replay: show what the log says
                self.note = f"the run could not be replayed ({type(error).__name__}: {error})"
                self._engine = None
                return
        self._replayed = len(self._records)

    @property
    def finished_run(self) -> bool:
        return self.phase in FINISHED_PHASES

    @property
    def live(self) -> bool:
        """Whether the run can still change: its process runs (and is the one writing this log),
        or, before the log names its process (or in a log that never does), it was written to
        a moment ago."""
        if self.finished_run:
            return False
        if self.pid is not None:
            return writes(self.pid, self.path)
        try:
            return time.time() - self.path.stat().st_mtime < QUIET_SECONDS
        except OSError:
            return False

    @property
    def cancellable(self) -> bool:
        return self.pid is not None and self.live

    def shown_phase(self) -> str:
        if self.finished_run or self.live:
            return self.phase
        return "Interrupted"  # the process is gone without finishing the run

    def summary(self) -> ExecutionSummary:
        return ExecutionSummary(
            self.name, LOCAL, self.playbook_name, self.shown_phase(), self.started, self.finished
        )

    def view(self) -> ExecutionView:
        self._replay()
        known = self._engine is not None
        steps = (
            step_views(self._state, self._results, self._graph.nodes)
            if known
            else self._steps_from_attempts()
        )
        view = ExecutionView(
            **vars(self.summary()),
            error=self.error or self._state.error,
            steps=steps,
            graph=self._graph,
            cancellable=self.cancellable,
            note=self.note,
        )
        if view.phase == "Interrupted":
            view.note = "the process that ran this has ended without finishing it"
        return fill_steps(view)

    def _steps_from_attempts(self) -> dict[str, StepView]:
        steps: dict[str, StepView] = {}
        for (name, _index, number), attempt in self.attempts.items():
            step = steps.setdefault(name, StepView(name, attempt.state, started=attempt.started))
            step.attempts = max(step.attempts, number)
            step.state, step.finished = attempt.state, attempt.finished
        return steps

    def detail(self, name: str) -> StepDetail | None:
        view = self.view()
        if name not in view.steps:
            return None
        keys = [key for key in self.attempts if key[0] == name]
        detail = StepDetail(view.steps[name], [self.attempts[key] for key in keys])
        if name in self._results:
            detail.result, detail.has_result = self._results[name], True
        for key in keys:
            for stream, text in self.outputs.get(key, {}).items():
                item = f" item {key[1]}" if key[1] is not None else ""
                detail.logs.append(LogText(f"attempt {key[2]}{item}: {stream}", text))
        return detail


def writes(pid: int | None, path: Path) -> bool:
    """Whether process `pid` runs and has `path` open (so the id was not reused by another)."""
    if not pid:
        return False
    target = str(path.resolve())
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{descriptor}") == target:
                return True
        except OSError:
            continue
    return False


class LocalRuns:
    """The local source: a directory of event logs and, optionally, one of playbooks."""

    name = "local"

    def __init__(self, runs: Path, playbooks: Path | None = None) -> None:
        self.runs = runs
        self.playbook_dir = playbooks
        self._known: dict[str, LocalRun] = {}

    def owns(self, namespace: str) -> bool:
        return namespace == LOCAL

    def _run(self, name: str) -> LocalRun | None:
        path = self.runs / f"{name}.jsonl"
        if "/" in name or not path.is_file():
            return None
        run = self._known.get(name)
        if run is None:
            run = self._known[name] = LocalRun(path)
        run.refresh()
        return run

    async def executions(self) -> list[ExecutionSummary]:
        found = []
        for path in sorted(self.runs.glob("*.jsonl")) if self.runs.is_dir() else []:
            run = self._run(path.stem)
            if run is not None:
                found.append(run.summary())
        return found

    async def execution(self, namespace: str, name: str) -> ExecutionView | None:
        run = self._run(name)
        return run.view() if run is not None else None

    async def step(self, namespace: str, name: str, step: str) -> StepDetail | None:
        run = self._run(name)
        return run.detail(step) if run is not None else None

    async def events(self, namespace: str, name: str) -> list[EventView]:
        return []  # the event log is what the page shows already, step by step

    async def changes(self, namespace: str, name: str) -> AsyncIterator[None]:
        run = self._run(name)
        while run is not None and run.live:
            await asyncio.sleep(FOLLOW_INTERVAL)
            if run.refresh():
                yield
        if run is not None and run.refresh():
            yield

    async def cancel(self, namespace: str, name: str) -> None:
        run = self._run(name)
        if run is None or not run.cancellable or run.pid is None:
            raise ActionRefused(f"{name} is not running here: nothing to cancel")
        os.kill(run.pid, signal.SIGTERM)

    async def playbooks(self) -> list[PlaybookView]:
        if self.playbook_dir is None or not self.playbook_dir.is_dir():
            return []
        files = sorted([*self.playbook_dir.glob("*.yaml"), *self.playbook_dir.glob("*.yml")])
        return [playbook_file(path) for path in files]

    async def close(self) -> None:
        self._known.clear()


def playbook_file(path: Path) -> PlaybookView:
    """A playbook file, validated as `noetl validate` does, its errors placed at their steps."""
    try:
        document = load_yaml(path.read_text())  # as `noetl validate` reads it: YAML 1.2
    except (OSError, YamlError) as error:
        return PlaybookView(path.stem, LOCAL, str(path), False, [("", str(error))])
    spec = document.get("spec", document) if isinstance(document, dict) else None
    graph = graph_of(spec)
    try:
        playbook = parse_playbook(document, str(path))
    except PlaybookInvalid as invalid:
        errors = [(error.path, error.message) for error in invalid.errors]
        name = _name_of(document) or path.stem
        place_errors(errors, graph)
        return PlaybookView(name, LOCAL, str(path), False, errors, graph)
    description = spec.get("description") if isinstance(spec, dict) else None
    return PlaybookView(playbook.name, LOCAL, str(path), True, [], graph, description)


def _name_of(document: Any) -> str | None:
    if not isinstance(document, dict):
        return None
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return str(name or document.get("name") or "") or None
