"""Runs on this machine, read from the event logs `noetl run` writes (`.noetl/runs/*.jsonl`).

A log's first line (`Run`, see noetl.local.eventlog) carries the playbook as run and the
workload, so a run is replayed through the engine event by event: the view then shows exactly
the state the run had (loop counts, skipped steps), the same record a cluster keeps. Commands in
the log give each attempt's rendered args; step events give its times, error and output. A log
is read incrementally: following a run reads only the lines added since the last look.

The run's process id is in the log too. Actions reach a run in progress only after checking
that the process with that id is the one writing this log: cancel sends it SIGTERM (what Ctrl-C
does), suspend and resume go through `noetl.local.control` (what `noetl suspend`/`resume` do).
Retry starts `noetl retry LOG` as a process of its own, which outlives the web view, and answers
with the log whose header names that process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from noetl.engine import EVENT_TYPES, Engine, ExecutionState, event_of
from noetl.engine.retry import kept_results
from noetl.engine.state import FINISHED_PHASES
from noetl.local import control
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
    applicable_actions,
    graph_of,
    place_errors,
)
from noetl.ui.sources import ActionRefused, fill_steps, step_views

FOLLOW_INTERVAL = 0.2  # seconds between looks at a log that is still being written
QUIET_SECONDS = 10  # a log that names no process is taken as abandoned after this long unwritten
LIST_INTERVAL = 0.5  # seconds between looks at the directory of logs, while a list is open
RETRY_START_SECONDS = 60  # how long `noetl retry` may take to open its log
OUTPUT_KEYS = ("stdout", "stderr")


class LocalRun:
    """One event log, read as far as it is written. `earlier` finds the result store of the run
    a retry retried (by its execution id), which seeds the replay as it seeded the run."""

    def __init__(
        self, path: Path, earlier: Callable[[str], dict[str, Any] | None] = lambda _: None
    ) -> None:
        self.path = path
        self._earlier = earlier
        self.name = path.stem
        self.read_to = 0  # bytes of the log read so far
        self._records: list[dict[str, Any]] = []
        self.execution_id: str | None = None
        self.pid: int | None = None
        self.playbook_name = ""
        self.phase = "Pending"
        self.started: float | None = None
        self.finished: float | None = None
        self.error: str | None = None
        self.suspended = False
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
                file.seek(self.read_to)
                chunk = file.read()
        except OSError:
            return False
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits for its end
        if not complete:
            return False
        self.read_to += len(complete)
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
        if kind in EVENT_TYPES:
            self._records.append(record)  # to replay; commands only fill in the attempts
        if kind in ("SuspendRequested", "ResumeRequested"):
            self.suspended = kind == "SuspendRequested"
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
        if run.get("retryOf"):
            earlier = self._earlier(str(run["retryOf"]))
            if earlier is None:
                self.note = f"the run this retried ({run['retryOf']}) is not here: steps kept"
                self.note += " from it show as not run"
            else:
                self._results = kept_results(self._engine.graph, earlier)

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
            try:
                self._engine.handle(self._state, self._results, event_of(record))
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
    def reachable(self) -> bool:
        """Whether its process can be told something: it names one, which writes this log."""
        return self.pid is not None and self.live

    def shown_phase(self) -> str:
        if self.finished_run:
            return self.phase
        if not self.live:
            return "Interrupted"  # the process is gone without finishing the run
        return "Suspended" if self.phase == "Running" and self.suspended else self.phase

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
            note=self.note,
        )
        view.actions = applicable_actions(
            view.phase, self.reachable, bool(self._state.approvals), self._engine is not None
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

    def results(self) -> dict[str, Any] | None:
        """The result store the run's events make, None when they cannot be replayed."""
        self._replay()
        return self._results if self._engine is not None else None

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
        self._retries: list[subprocess.Popen[bytes]] = []  # reaped when they end
        self._replaying: set[str] = set()

    def owns(self, namespace: str) -> bool:
        return namespace == LOCAL

    def _run(self, name: str) -> LocalRun | None:
        path = self.runs / f"{name}.jsonl"
        if "/" in name or not path.is_file():
            return None
        run = self._known.get(name)
        if run is None:
            run = self._known[name] = LocalRun(path, self._results_of)
        run.refresh()
        return run

    def _results_of(self, execution: str) -> dict[str, Any] | None:
        """The result store of the run `execution` (its log is named after it), replayed."""
        if execution in self._replaying:  # a log that says it retried itself, in a circle
            return None
        self._replaying.add(execution)
        try:
            run = self._run(execution)
            return run.results() if run is not None else None
        finally:
            self._replaying.discard(execution)

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
        """A yield whenever the log has grown, once first (since the caller's last look, other
        requests may have read lines of the shared run), and a last look once the run ends."""
        run = self._run(name)
        seen = -1
        while run is not None:
            going = run.live
            if going and seen >= 0:
                await asyncio.sleep(FOLLOW_INTERVAL)
            run.refresh()
            if run.read_to != seen:
                seen = run.read_to
                yield
            if not going:
                return

    async def every_change(self) -> AsyncIterator[None]:
        """A look at the logs' sizes and times, and at which runs' processes are there, every
        LIST_INTERVAL; a yield when that changed."""
        seen = None
        while True:
            self._reap()
            now = (self._files(), frozenset(n for n, r in self._known.items() if r.live))
            if now != seen:
                seen = now
                yield
            await asyncio.sleep(LIST_INTERVAL)

    def _files(self) -> frozenset[tuple[str, int, int]]:
        try:
            entries = list(os.scandir(self.runs))
        except OSError:
            return frozenset()
        found = set()
        for entry in entries:
            if entry.name.endswith(".jsonl"):
                with contextlib.suppress(OSError):
                    status = entry.stat()
                    found.add((entry.name, status.st_size, status.st_mtime_ns))
        return frozenset(found)

    def _reachable(self, name: str) -> LocalRun:
        """The run, whose process (checked to be the one writing its log) can be told things."""
        run = self._run(name)
        if run is None or not run.reachable or run.pid is None:
            raise ActionRefused(f"{name} is not running here")
        return run

    async def cancel(self, namespace: str, name: str) -> None:
        os.kill(self._reachable(name).pid or 0, signal.SIGTERM)

    async def suspend(self, namespace: str, name: str) -> None:
        try:
            control.suspend(self._reachable(name).path)
        except control.RunNotReachable as error:
            raise ActionRefused(str(error)) from None

    async def resume(self, namespace: str, name: str) -> None:
        try:
            control.resume(self._reachable(name).path, {})
        except control.RunNotReachable as error:
            raise ActionRefused(str(error)) from None

    async def retry(self, namespace: str, name: str) -> str:
        """`noetl retry LOG`, its log written beside the others; the name of that log once the
        new process has written its header there."""
        run = self._run(name)
        if run is None:
            raise ActionRefused(f"no run {name} here")
        command = [sys.executable, "-m", "noetl", "retry", str(run.path), "--quiet"]
        before = set(self.runs.glob("*.jsonl"))
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                [*command, "--event-log", str(self.runs)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,  # not stopped with the web view (its Ctrl-C, its group)
            )
            self._retries.append(process)
            deadline = time.monotonic() + RETRY_START_SECONDS
            while True:
                ended = process.poll() is not None  # before the look: a quick run is seen too
                log = self._log_of(process.pid, before)
                if log is not None:
                    return log.stem
                if ended:
                    errors.seek(0)
                    said = errors.read().decode(errors="replace").strip()[-500:]
                    raise ActionRefused(f"noetl retry ended at once: {said or process.returncode}")
                if time.monotonic() > deadline:
                    raise ActionRefused(f"noetl retry wrote no log in {RETRY_START_SECONDS}s")
                await asyncio.sleep(FOLLOW_INTERVAL)

    def _log_of(self, pid: int, before: set[Path]) -> Path | None:
        """The log, new since `before`, whose header names process `pid`."""
        for path in set(self.runs.glob("*.jsonl")) - before:
            with contextlib.suppress(OSError, ValueError, AttributeError), path.open() as file:
                if json.loads(file.readline()).get("pid") == pid:
                    return path
        return None

    def _reap(self) -> None:
        self._retries = [process for process in self._retries if process.poll() is None]

    async def playbooks(self) -> list[PlaybookView]:
        if self.playbook_dir is None or not self.playbook_dir.is_dir():
            return []
        files = sorted([*self.playbook_dir.glob("*.yaml"), *self.playbook_dir.glob("*.yml")])
        return [playbook_file(path) for path in files]

    async def close(self) -> None:
        self._reap()
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
