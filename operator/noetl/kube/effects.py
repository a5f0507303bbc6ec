"""Decisions out: the operator's effects for the execution loop, done with Kubernetes objects.

A run starts as a Job (a plugin image) or a child Execution (`tool: playbook`), with a
deterministic name so that issuing it again meets AlreadyExists; a cancel deletes it. What
happened is announced as Kubernetes Events (best effort: a lost Event is logged, never fatal;
a loop told as a whole, `loop_events`; step Events within a per-execution budget) and metrics.
A run the API server refuses, or whose Job cannot be built, is refused back to the loop, which
makes it the run's failure for the engine to decide on. A pod that cannot start is `pending`'s.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from noetl.engine import (
    CancelStep,
    Command,
    Engine,
    Event,
    FinishExecution,
    ScheduleRetry,
    StartStep,
    StepFailed,
    StepSucceeded,
)
from noetl.kube import events, metrics
from noetl.kube.api import KubeApi
from noetl.kube.checkpoint import Checkpoint
from noetl.kube.inbox import Inbox
from noetl.kube.loop_events import LoopEvents
from noetl.kube.manifests import child_execution, step_job
from noetl.kube.names import run_name
from noetl.kube.pending import PendingExpired, PendingPods, PodWaiting
from noetl.kube.refusals import error_text
from noetl.kube.settings import OperatorSettings
from noetl.kube.slots import JobSlots
from noetl.loop import Clock, Effects, ExecutionLoop, Run, RunRefused


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
        self.namespace = str(execution["metadata"]["namespace"])
        self.name = str(execution["metadata"]["name"])
        self.finished_at: float | None = None
        self.loops = LoopEvents(clock.now)
        self.budget = events.EventBudget(clock.now)

    async def interpret(self, message: Any) -> Event | None:
        if isinstance(message, PodWaiting | PendingExpired):
            told = dict(self.pending.by_step())
            event = await self.pending.interpret(message)
            if event is None and self.pending.by_step() != told:
                # Shown in the step's status at once, not at the next turn that saves.
                await self.checkpoint.save(None, self.pending.by_step())
            return event
        return await self.inbox.interpret(message, self.clock.now())

    async def persist(self, loop: ExecutionLoop) -> None:
        await self.checkpoint.save(loop.finished, self.pending.by_step())
        recent = self.checkpoint.finished_steps.recent
        for reason, message, warning in self.loops.progress(loop.state, recent.get):
            await self._event(reason, message, warning)

    # Starting and stopping runs ---------------------------------------------------------------

    async def start_run(self, run: Run) -> None:
        if isinstance(run, StartStep):
            await self._start_job(run)
            return
        if await self._create(child_execution(self.execution, run)):
            started = f"step {run.key} started a child execution of playbook {run.playbook}"
            await self._event("StepStarted", started)

    async def _start_job(self, command: StartStep) -> None:
        step = self.engine.playbook.steps[command.step]
        try:
            manifest = step_job(self.execution, command, step, self.settings)
        except (ValueError, KeyError) as error:
            raise RunRefused(f"cannot build the step's Job: {error}") from None
        job = manifest["metadata"]["name"]
        await self.slots.acquire(self.namespace, job)
        try:
            created = await self._create(manifest)
        except RunRefused:
            self.slots.release(self.namespace, job)
            raise
        if not created:
            return
        if command.index is None:
            await self._event("StepStarted", f"step {command.key} started as Job {job}")
        elif told := self.loops.started(command.step, self.checkpoint.state):
            await self._event(*told)

    async def _create(self, manifest: dict[str, Any]) -> bool:
        try:
            return await self.api.create(manifest)
        except ApiException as error:
            # 429 and 5xx are the server's trouble, not the run's: the driver retries the turn.
            if error.status is not None and 400 <= error.status < 500 and error.status != 429:
                why = error_text(error)
                kind = manifest["kind"]
                raise RunRefused(f"the API server refused the step's {kind}: {why}") from None
            raise

    async def cancel_run(self, command: CancelStep) -> None:
        tool = self.engine.playbook.steps[command.step].tool
        kind = "Execution" if tool == "playbook" else "Job"
        name = run_name(self.name, command.step, command.index, command.attempt)
        await self.api.delete(kind, self.namespace, name)

    # Telling what happened --------------------------------------------------------------------

    async def announce(self, message: Event | Command, current: bool = True) -> None:
        if not current:
            return
        match message:
            case StepSucceeded() if message.index is None:
                await self._event("StepSucceeded", f"step {message.key} succeeded")
            case StepFailed() if message.index is None or self.loops.tell_trouble(message.step):
                await self._event(
                    "StepFailed", f"step {message.key} failed: {message.error}", warning=True
                )
            case ScheduleRetry() if message.index is None or self.loops.tell_trouble(message.step):
                wait = max(0.0, message.due - self.clock.now())
                await self._event(
                    "StepRetrying",
                    f"step {message.key} in {wait:.0f}s after: {message.error}",
                    warning=True,
                )
            case FinishExecution():
                metrics.EXECUTIONS_FINISHED.labels(phase=message.phase).inc()
                self.finished_at = self.clock.now()
                ended = f"execution {message.phase.lower()}" + (
                    f": {message.error}" if message.error else ""
                )
                await events.record(
                    self.api,
                    self.execution,
                    f"Execution{message.phase}",
                    ended,
                    warning=message.phase != "Succeeded",
                )

    async def _event(self, reason: str, message: str, warning: bool = False) -> None:
        """A step's Event, within the execution's budget (its end is told apart, always)."""
        if not self.budget.take():
            metrics.EVENTS_HELD_BACK.labels(reason=reason).inc()
            return
        await events.record(self.api, self.execution, reason, message, warning=warning)
