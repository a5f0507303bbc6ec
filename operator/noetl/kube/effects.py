"""Decisions out: the operator's effects for the execution loop, done with Kubernetes objects.

A run starts as a Job (a plugin image) or a child Execution (`tool: playbook`), with a
deterministic name so that issuing it again meets AlreadyExists; a cancel deletes it. What
happened is announced as Kubernetes Events (best effort: a lost Event is logged, never fatal)
and metrics. Events wait for the end of the turn, so the Jobs a turn starts are not queued
behind them at the rate limiter; a loop item's start and success make none (its step's summary
counts them), its failure does; a loop is told as a whole (`loop_events`), and step Events spend
a per-execution budget. A pod that cannot start is `pending`'s. The turn's save may wait
(`SavePacing`): a reminder is then posted to the loop for when it is due. A run the API server
refuses, or whose Job cannot be built, is refused back to the loop, which makes it the run's
failure for the engine to decide on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes.client.exceptions import ApiException

from noetl.engine import (
    ApprovalGiven,
    AwaitApproval,
    CancelStep,
    Command,
    Engine,
    Event,
    FinishExecution,
    ResumeRequested,
    ScheduleRetry,
    StartStep,
    StepFailed,
    StepSucceeded,
    SuspendRequested,
)
from noetl.kube import events, metrics
from noetl.kube.api import KubeApi
from noetl.kube.checkpoint import Checkpoint, SavePacing
from noetl.kube.inbox import Inbox
from noetl.kube.loop_events import LoopEvents
from noetl.kube.manifests import child_execution, step_job
from noetl.kube.names import run_name
from noetl.kube.pending import PENDING_MESSAGES, PendingPods
from noetl.kube.refusals import error_text
from noetl.kube.settings import OperatorSettings
from noetl.kube.slots import JobSlots
from noetl.loop import PERSIST_DUE, Cancellable, Clock, Effects, ExecutionLoop, Run, RunRefused


class KubeEffects(Effects):
    def __init__(
        self,
        api: KubeApi,
        settings: OperatorSettings,
        slots: JobSlots,
        engine: Engine,
        execution: dict[str, Any],
        checkpoint: Checkpoint,
        inbox: Inbox,
        clock: Clock,
        pending: PendingPods,
    ) -> None:
        self.api = api
        self.settings = settings
        self.slots = slots
        self.engine = engine
        self.execution = execution
        self.checkpoint = checkpoint
        self.inbox = inbox
        self.clock = clock
        self.pending = pending
        self.loops = LoopEvents(clock.now)
        self.budget = events.EventBudget(clock.now)
        self.namespace = str(execution["metadata"]["namespace"])
        self.name = str(execution["metadata"]["name"])
        self.finished_at: float | None = None
        self.pacing = SavePacing(clock)
        self._reminder: Cancellable | None = None
        self._events: list[tuple[str, str, bool]] = []  # posted at the end of the turn

    async def interpret(self, message: Any) -> list[Event]:
        if isinstance(message, PENDING_MESSAGES):
            told = dict(self.pending.by_step())
            event = await self.pending.interpret(message)
            if event is None and self.pending.by_step() != told:
                # Shown in the step's status at once, not at the next turn that saves.
                await self.checkpoint.save(None, self.pending.by_step())
            return [event] if event is not None else []
        return await self.inbox.interpret(message, self.clock.now())

    async def persist(self, loop: ExecutionLoop) -> None:
        if self.pacing.may_wait(loop.state):
            if self._reminder is None:
                self._reminder = self.clock.call_later(
                    self.pacing.remaining(), lambda: self._remind(loop)
                )
        else:
            if self._reminder is not None:
                self._reminder.cancel()
                self._reminder = None
            await self.checkpoint.save(loop.finished, self.pending.by_step())
            self.pacing.saved()
        recent = self.checkpoint.finished_steps.recent
        self._events += self.loops.progress(loop.state, recent.get)
        posted, self._events = [e for e in self._events if self._within_budget(e[0])], []
        await asyncio.gather(*(events.record(self.api, self.execution, *event) for event in posted))

    def _within_budget(self, reason: str) -> bool:
        """Step Events spend the execution's budget; how it ended is always told."""
        if reason.startswith("Execution") or self.budget.take():
            return True
        metrics.EVENTS_HELD_BACK.labels(reason=reason).inc()
        return False

    def _remind(self, loop: ExecutionLoop) -> None:
        self._reminder = None
        loop.post(PERSIST_DUE)

    # Starting and stopping runs ---------------------------------------------------------------

    async def start_run(self, run: Run) -> None:
        if isinstance(run, StartStep):
            await self._start_job(run)
            return
        if await self._create(child_execution(self.execution, run)):
            started = f"step {run.key} started a child execution of playbook {run.playbook}"
            self._event("StepStarted", started)

    async def _start_job(self, command: StartStep) -> None:
        step = self.engine.playbook.steps[command.step]
        try:
            manifest = step_job(self.execution, command, step, self.settings)
        except (ValueError, KeyError) as error:
            self.pacing.urgent = True
            raise RunRefused(f"cannot build the step's Job: {error}") from None
        job = manifest["metadata"]["name"]
        await self.slots.acquire(self.namespace, job)
        try:
            created = await self._create(manifest)
        except RunRefused:
            self.slots.release(self.namespace, job)
            raise
        if created and command.index is None:
            self._event("StepStarted", f"step {command.key} started as Job {job}")
        elif created and (told := self.loops.started(command.step, self.checkpoint.state)):
            self._event(*told)

    async def _create(self, manifest: dict[str, Any]) -> bool:
        try:
            return await self.api.create(manifest)
        except ApiException as error:
            # 429 and 5xx are the server's trouble, not the run's: the driver retries the turn.
            if error.status is not None and 400 <= error.status < 500 and error.status != 429:
                self.pacing.urgent = True  # no Job will tell of this run
                why = error_text(error)
                kind = manifest["kind"]
                raise RunRefused(f"the API server refused the step's {kind}: {why}") from None
            raise

    async def cancel_run(self, command: CancelStep) -> None:
        self.pacing.urgent = True  # a deleted Job tells nothing of why
        tool = self.engine.playbook.steps[command.step].tool
        kind = "Execution" if tool == "playbook" else "Job"
        name = run_name(self.name, command.step, command.index, command.attempt)
        await self.api.delete(kind, self.namespace, name)

    # Telling what happened --------------------------------------------------------------------

    async def announce(self, message: Event | Command, current: bool = True) -> None:
        if not current:
            return
        match message:
            case StepSucceeded():
                if message.index is None:
                    self._event("StepSucceeded", f"step {message.key} succeeded")
            case StepFailed():
                self.pacing.urgent = True
                if message.index is None or self.loops.tell_trouble(message.step):
                    error = f"step {message.key} failed: {message.error}"
                    self._event("StepFailed", error, warning=True)
            case ScheduleRetry() if message.index is None or self.loops.tell_trouble(message.step):
                wait = max(0.0, message.due - self.clock.now())
                self._event(
                    "StepRetrying",
                    f"step {message.key} in {wait:.0f}s after: {message.error}",
                    warning=True,
                )
            case AwaitApproval() | ApprovalGiven() | SuspendRequested() | ResumeRequested():
                self.pacing.urgent = True  # rare, and what people wait to read
                self._tell_pause(message)
            case FinishExecution():
                metrics.EXECUTIONS_FINISHED.labels(phase=message.phase).inc()
                self.finished_at = self.clock.now()
                ended = f"execution {message.phase.lower()}" + (
                    f": {message.error}" if message.error else ""
                )
                self._event(
                    f"Execution{message.phase}", ended, warning=message.phase != "Succeeded"
                )

    def _tell_pause(
        self, message: AwaitApproval | ApprovalGiven | SuspendRequested | ResumeRequested
    ) -> None:
        match message:
            case AwaitApproval():
                resume = f"noetl resume {self.name} [--set key=value]"
                self._event(
                    "AwaitingApproval", f"step {message.step}: {message.message} ({resume})"
                )
            case ApprovalGiven():
                self._event("Approved", f"step {message.step} approved: {message.values}")
            case SuspendRequested():
                self._event("Suspended", f"{message.reason}: no new step starts")
            case ResumeRequested():
                self._event("Resumed", "held steps start")

    def _event(self, reason: str, message: str, warning: bool = False) -> None:
        self._events.append((reason, message, warning))
