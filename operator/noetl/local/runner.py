"""The local shell around the engine: events in from step processes and timers, commands out.

One asyncio task per running step, one queue of events, and the engine consulted for each event
in turn, so the engine never sees two events at once. Parallel branches and loop items run
concurrently because their step tasks do; the engine's loop limits (maxInFlight) bound them.
A sub-playbook (`tool: playbook`) runs as a nested LocalRunner sharing the same step executor.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noetl.engine import (
    DEFAULT_MAX_CHILD_DEPTH,
    CancelRequested,
    CancelStep,
    Command,
    Engine,
    Event,
    ExecutionStarted,
    ExecutionState,
    FinishExecution,
    ScheduleRetry,
    ScheduleTimer,
    StartChildExecution,
    StartStep,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerFired,
)
from noetl.local.eventlog import EventLog
from noetl.local.progress import Reporter
from noetl.local.resolver import PlaybookResolver
from noetl.local.steps import StepExecutor
from noetl.playbook import Playbook, PlaybookInvalid


@dataclass(frozen=True)
class RunOutcome:
    execution_id: str
    phase: str
    result: Any
    error: str | None

    @property
    def ok(self) -> bool:
        return self.phase == "Succeeded"


def new_execution_id(playbook_name: str) -> str:
    return f"{playbook_name}-{uuid.uuid4().hex[:8]}"


class LocalRunner:
    def __init__(
        self,
        playbook: Playbook,
        executor: StepExecutor,
        *,
        workload: Mapping[str, Any] | None = None,
        resolver: PlaybookResolver | None = None,
        reporter: Reporter | None = None,
        event_log: EventLog | None = None,
        key_prefix: str = "",
        execution_id: str | None = None,
        depth: int = 0,
        max_child_depth: int = DEFAULT_MAX_CHILD_DEPTH,
    ) -> None:
        self.execution_id = execution_id or new_execution_id(playbook.name)
        self._engine = Engine(
            playbook,
            workload,
            {"id": self.execution_id, "name": playbook.name},
            depth=depth,
            max_child_depth=max_child_depth,
        )
        self._state = ExecutionState()
        self._results: dict[str, Any] = {}
        self._executor = executor
        self._resolver = resolver
        self._reporter = reporter
        self._event_log = event_log
        self._key_prefix = key_prefix
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._finished: FinishExecution | None = None

    @property
    def state(self) -> ExecutionState:
        return self._state

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Ask for a clean stop: running steps are killed and the run ends Cancelled."""
        self._events.put_nowait(CancelRequested(at=time.time(), reason=reason))

    async def run(self) -> RunOutcome:
        try:
            self._handle(ExecutionStarted(at=time.time()))
            while self._finished is None:
                self._handle(await self._events.get())
        finally:
            await self._stop_everything()
        return RunOutcome(
            self.execution_id, self._finished.phase, self._finished.result, self._finished.error
        )

    def _handle(self, event: Event) -> None:
        self._log(event)
        for command in self._engine.handle(self._state, self._results, event):
            self._log(command)
            self._carry_out(command)

    def _log(self, message: Event | Command) -> None:
        if self._event_log is not None:
            self._event_log.write(message, execution=self.execution_id)

    def _carry_out(self, command: Command) -> None:
        match command:
            case StartStep() | StartChildExecution():
                self._running[command.key] = asyncio.create_task(self._run_step(command))
            case ScheduleRetry():
                self._schedule(command.timer, command.due)
                if self._reporter:
                    self._reporter.retrying(
                        self._display(command.key), command.due - time.time(), command.error
                    )
            case ScheduleTimer():
                self._schedule(command.timer, command.due)
            case CancelStep():
                task = self._running.pop(command.key, None)
                if task is not None:
                    task.cancel()
            case FinishExecution():
                self._finished = command

    def _schedule(self, timer: str, due: float) -> None:
        def fire() -> None:
            self._timers.pop(timer, None)
            self._events.put_nowait(TimerFired(timer=timer, at=time.time()))

        delay = max(0.0, due - time.time())
        self._timers[timer] = asyncio.get_running_loop().call_later(delay, fire)

    def _display(self, key: str) -> str:
        return self._key_prefix + key

    async def _run_step(self, command: StartStep | StartChildExecution) -> None:
        run = (command.step, command.index, command.attempt)
        label = command.tool if isinstance(command, StartStep) else f"playbook {command.playbook}"
        self._events.put_nowait(StepStarted(*run, at=time.time()))
        if self._reporter:
            self._reporter.started(self._display(command.key), label)
        try:
            if isinstance(command, StartStep):
                outcome = await self._executor.run(command, self._engine.execution)
                ok, result, error = outcome.ok, outcome.result, outcome.error or "step failed"
            else:
                ok, result, error = await self._run_child(command)
        except Exception as crash:  # the runner's own fault must still end the step, never hang
            ok, result, error = (
                False,
                None,
                f"could not run the step: {type(crash).__name__}: {crash}",
            )
        finally:
            self._running.pop(command.key, None)
        if ok:
            self._events.put_nowait(StepSucceeded(*run, at=time.time(), result=result))
            if self._reporter:
                self._reporter.succeeded(self._display(command.key))
        else:
            self._events.put_nowait(StepFailed(*run, at=time.time(), error=error, result=result))
            if self._reporter:
                self._reporter.failed(self._display(command.key), error)

    async def _run_child(self, command: StartChildExecution) -> tuple[bool, Any, str]:
        if self._resolver is None:
            return False, None, f"cannot find playbook {command.playbook!r}: no playbook directory"
        try:
            playbook = self._resolver(command.playbook)
        except (PlaybookInvalid, LookupError) as error:
            return False, None, str(error)
        child = LocalRunner(
            playbook,
            self._executor,
            workload=command.workload,
            resolver=self._resolver,
            reporter=self._reporter,
            event_log=self._event_log,
            key_prefix=f"{self._display(command.key)}/",
            depth=self._engine.depth + 1,
            max_child_depth=self._engine.max_child_depth,
        )
        try:
            outcome = await asyncio.wait_for(child.run(), command.timeout)
        except TimeoutError:
            return False, None, f"timed out after {command.timeout:g}s"
        return (
            outcome.ok,
            outcome.result,
            f"playbook {playbook.name!r} {outcome.phase.lower()}: {outcome.error}",
        )

    async def _stop_everything(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
