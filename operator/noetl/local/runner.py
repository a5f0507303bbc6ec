"""The local shell around the engine: step processes and nested runs as the effects of one loop.

The shared `ExecutionLoop` owns the queue of events, the timers and the engine; this module says
how a run starts here (an asyncio task per run: a process through the step executor, or a nested
LocalRunner for a sub-playbook sharing the same executor), how it is cancelled (the task is
cancelled, which kills the process), and how progress is told (the reporter and the event log).
Step timeouts are the engine's timers; the executor's own deadline stays only as a backstop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noetl.engine import (
    DEFAULT_FINALLY_GRACE,
    DEFAULT_MAX_CHILD_DEPTH,
    ApprovalGiven,
    AwaitApproval,
    CancelRequested,
    CancelStep,
    Command,
    Engine,
    Event,
    ExecutionStarted,
    ExecutionState,
    ResumeRequested,
    ScheduleRetry,
    StartChildExecution,
    StartStep,
    StepFailed,
    StepStarted,
    StepSucceeded,
    SuspendRequested,
)
from noetl.local.eventlog import EventLog
from noetl.local.progress import Reporter
from noetl.local.resolver import PlaybookResolver
from noetl.local.steps import StepExecutor
from noetl.loop import Effects, ExecutionLoop, Run
from noetl.playbook import Playbook, PlaybookInvalid
from noetl.plugins.messages import Outcome

BACKSTOP_SECONDS = 5.0
"""How long past its timeout the executor itself gives up on a step the engine did not stop."""


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


class LocalRunner(Effects):
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
        finally_grace: float = DEFAULT_FINALLY_GRACE,
        results: dict[str, Any] | None = None,
    ) -> None:
        """`finally_grace`: seconds the finally steps have after a cancel or the timeout.
        `results`: the store to begin with (what a retry keeps of the run it retries)."""
        self.execution_id = execution_id or new_execution_id(playbook.name)
        engine = Engine(
            playbook,
            workload,
            {"id": self.execution_id, "name": playbook.name},
            depth=depth,
            max_child_depth=max_child_depth,
            finally_grace=finally_grace,
        )
        self._loop = ExecutionLoop(engine, self, results=results)
        self._executor = executor
        self._resolver = resolver
        self._reporter = reporter
        self._event_log = event_log
        self._key_prefix = key_prefix
        self._running: dict[str, asyncio.Task[None]] = {}

    @property
    def state(self) -> ExecutionState:
        return self._loop.state

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Ask for a clean stop: running steps are killed and the run ends Cancelled."""
        self._loop.post(CancelRequested(at=time.time(), reason=reason))

    def suspend(self, reason: str = "suspended by the user") -> None:
        """Start no new step until `resume` (the steps running go on to their end)."""
        self._loop.post(SuspendRequested(at=time.time(), reason=reason))

    def resume(self, values: Mapping[str, Any] | None = None) -> None:
        """Start what the suspension held, and approve the approval steps waiting, with `values`."""
        now = time.time()
        self._loop.post(ResumeRequested(at=now))
        for step in self.state.approvals:
            self._loop.post(ApprovalGiven(step, at=now, values=dict(values or {})))

    async def run(self) -> RunOutcome:
        try:
            await self._loop.run([ExecutionStarted(at=time.time())])
        finally:
            await self._stop_everything()
        finished = self._loop.finished
        assert finished is not None
        return RunOutcome(self.execution_id, finished.phase, finished.result, finished.error)

    # Effects ----------------------------------------------------------------------------------

    async def start_run(self, run: Run) -> None:
        self._running[run.key] = asyncio.create_task(self._run_step(run))

    async def cancel_run(self, command: CancelStep) -> None:
        task = self._running.pop(command.key, None)
        if task is not None:
            task.cancel()

    async def announce(self, message: Event | Command, current: bool = True) -> None:
        if self._event_log is not None:
            self._event_log.write(message, execution=self.execution_id)
        if self._reporter is None or not current:
            return
        match message:
            case StepSucceeded():
                self._reporter.succeeded(self._display(message.key))
            case StepFailed():
                self._reporter.failed(self._display(message.key), message.error)
            case ScheduleRetry():
                wait = message.due - time.time()
                self._reporter.retrying(self._display(message.key), wait, message.error)
            case AwaitApproval():
                waiting = f"{self._display(message.step)} waits for approval: {message.message}"
                self._reporter.note(f"{waiting} (noetl resume {self._log_name()})")
            case SuspendRequested():
                self._reporter.note(f"suspended: {message.reason}; running steps go on")
            case ResumeRequested():
                self._reporter.note("resumed")
            case ApprovalGiven():
                self._reporter.note(f"{self._display(message.step)} approved: {message.values}")

    # Runs -------------------------------------------------------------------------------------

    def _log_name(self) -> str:
        return str(self._event_log.path) if self._event_log is not None else "EVENT_LOG"

    def _display(self, key: str) -> str:
        return self._key_prefix + key

    async def _run_step(self, run: Run) -> None:
        step_run = (run.step, run.index, run.attempt)
        label = run.tool if isinstance(run, StartStep) else f"playbook {run.playbook}"

        def started() -> None:  # once the step has its turn: waiting for it is not running
            self._loop.post(StepStarted(*step_run, at=time.time()))
            if self._reporter:
                self._reporter.started(self._display(run.key), label)

        try:
            if isinstance(run, StartStep):
                outcome = await self._executor.run(
                    _with_backstop(run), self._loop.engine.execution, started
                )
            else:
                started()
                ok, result, error = await self._run_child(run)
                outcome = Outcome(ok=ok, result=result, error=error)
        except Exception as crash:  # the runner's own fault must still end the step, never hang
            error = f"could not run the step: {type(crash).__name__}: {crash}"
            outcome = Outcome(ok=False, error=error)
        finally:
            self._running.pop(run.key, None)
        at, log = time.time(), outcome.log
        if outcome.ok:
            self._loop.post(StepSucceeded(*step_run, at=at, result=outcome.result, log=log))
        else:
            error = outcome.error or "step failed"
            self._loop.post(
                StepFailed(*step_run, at=at, error=error, result=outcome.result, log=log)
            )

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
            depth=self._loop.engine.depth + 1,
            max_child_depth=self._loop.engine.max_child_depth,
            finally_grace=self._loop.engine.finally_grace,
        )
        outcome = await child.run()  # its timeout is this run's engine timer, which cancels it
        return (
            outcome.ok,
            outcome.result,
            f"playbook {playbook.name!r} {outcome.phase.lower()}: {outcome.error}",
        )

    async def _stop_everything(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()


def _with_backstop(command: StartStep) -> StartStep:
    """The command with a deadline a little past the engine's, for the executor to keep."""
    if command.timeout is None:
        return command
    return dataclasses.replace(command, timeout=command.timeout + BACKSTOP_SECONDS)
