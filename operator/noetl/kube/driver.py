"""Drives one Execution: the operator's shell around the engine, one asyncio task per execution.

Messages (Job and child Execution changes, timers, spec edits) arrive on a queue and are handled
one at a time, so the engine never sees two events at once. For each, the driver:

1. turns the world into an engine event (reading a finished Job's result from its pod);
2. lets the engine decide, then carries out its commands (create Jobs or child Executions,
   delete them on cancel, keep timers, post Events);
3. writes the results that changed to ConfigMaps, then the status (phase, summaries, and the
   engine's state, from which a restarted operator carries on).

A crash between any two of these loses nothing: on restart the driver re-reads the status and
the Jobs. A finished Job whose event the status has not recorded yet is fed again, and the engine
issues the same commands again; Job names are deterministic, so creating one that exists meets
AlreadyExists instead of starting the step twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from noetl.engine import (
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
    StepSucceeded,
    TimerFired,
)
from noetl.engine.state import FINISHED_PHASES
from noetl.kube import events, metrics
from noetl.kube.api import KubeApi, error_text
from noetl.kube.manifests import (
    ATTEMPT_LABEL,
    INDEX_LABEL,
    STEP_LABEL,
    TOOL_LABEL,
    child_execution,
    execution_config_map,
    execution_depth,
    execution_selector,
    step_job,
)
from noetl.kube.names import run_name, snapshot_config_map
from noetl.kube.outcomes import job_finished, job_outcome
from noetl.kube.playbooks import run_problems, snapshot_text
from noetl.kube.results import ResultStore, ResultTooLarge, check_size
from noetl.kube.settings import OperatorSettings
from noetl.kube.slots import JobSlots
from noetl.kube.status import epoch_seconds, execution_status, fits_inline
from noetl.playbook import Playbook, PlaybookInvalid, duration_seconds
from noetl.playbook.budget import parse_within_budget

OUTPUT_KEY = "__output"


@dataclass(frozen=True)
class JobChanged:
    job: dict[str, Any]
    deleted: bool = False


@dataclass(frozen=True)
class ChildChanged:
    child: dict[str, Any]


@dataclass(frozen=True)
class ExecutionChanged:
    body: dict[str, Any]


@dataclass(frozen=True)
class TimerDue:
    timer: str


@dataclass(frozen=True)
class ChildDeadline:
    """A child execution's step timeout is up (what activeDeadlineSeconds is to a Job)."""

    step: str
    index: int | None
    attempt: int
    seconds: float


Message = JobChanged | ChildChanged | ExecutionChanged | TimerDue | ChildDeadline


@dataclass
class OperatorContext:
    api: KubeApi
    settings: OperatorSettings
    slots: JobSlots = field(default_factory=lambda: JobSlots(200))


def run_of(labels: dict[str, str]) -> tuple[str, int | None, int]:
    index = labels.get(INDEX_LABEL)
    return labels[STEP_LABEL], int(index) if index is not None else None, int(labels[ATTEMPT_LABEL])


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


class ExecutionDriver:
    def __init__(self, context: OperatorContext, namespace: str, name: str) -> None:
        self.context = context
        self.api = context.api
        self.namespace = namespace
        self.name = name
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.finished_at: float | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._shown_steps: set[str] = set()
        self.execution: dict[str, Any] = {}
        self.state = ExecutionState()
        self._result: Any = None

    @property
    def uid(self) -> str:
        return str(self.execution["metadata"]["uid"])

    async def run(self) -> None:
        execution = await self.api.get_custom("executions", self.namespace, self.name)
        if execution is None:
            return
        self.execution = execution
        status = execution.get("status") or {}
        if status.get("phase") in FINISHED_PHASES:
            finished = status.get("finishedAt")
            self.finished_at = epoch_seconds(finished) if finished else time.time()
            return
        try:
            playbook = await self._snapshot()
        except (PlaybookInvalid, LookupError) as error:
            await self._refuse(error)
            return
        spec = execution["spec"]
        self.engine = Engine(
            playbook,
            spec.get("workload") or {},
            {"id": self.uid, "name": self.name},
            depth=execution_depth(execution),
            max_child_depth=self.context.settings.max_child_depth,
        )
        if status.get("engine"):
            self.state = ExecutionState.from_dict(json.loads(status["engine"]))
        self.results = await ResultStore.load(self.api, execution)
        metrics.EXECUTIONS_ACTIVE.inc()
        try:
            if self.state.phase == "Pending":
                await self._feed([ExecutionStarted(at=time.time())])
            else:
                await self._resume()
            if spec.get("cancel") and not self.state.finished:
                await self._feed([CancelRequested(at=time.time(), reason="spec.cancel is true")])
            while not self.state.finished:
                await self._on(await self.queue.get())
        finally:
            metrics.EXECUTIONS_ACTIVE.dec()
            for handle in self._timers.values():
                handle.cancel()

    # Loading ----------------------------------------------------------------------------------

    async def _snapshot(self) -> Playbook:
        """The playbook this execution runs, frozen at its start: later edits do not reach it."""
        name = snapshot_config_map(self.name)
        stored = await self.api.read_config_map(self.namespace, name)
        if stored is not None and owned_by(stored, self.uid):
            return await parse_within_budget(
                json.loads(stored["data"]["playbook.json"]), f"execution {self.name}"
            )
        spec = self.execution["spec"]
        if spec.get("playbook") is not None:
            document = {
                "kind": "Playbook",
                "metadata": {"name": self.name},
                "spec": spec["playbook"],
            }
        else:
            ref = spec["playbookRef"]["name"]
            found = await self.api.get_custom("playbooks", self.namespace, ref)
            if found is None:
                where = f"in namespace {self.namespace}"
                raise LookupError(f"spec.playbookRef.name: no Playbook named {ref!r} {where}")
            document = {"kind": "Playbook", "metadata": {"name": ref}, "spec": found["spec"]}
        source = f"playbook {document['metadata']['name']}"
        playbook = await parse_within_budget(document, source)
        text = snapshot_text(document)
        problems = run_problems(playbook, text, self.namespace, self.context.settings)
        if problems:
            raise PlaybookInvalid(problems, source)
        data = {"playbook.json": text}
        await self.api.create(execution_config_map(self.execution, name, "playbook", data))
        return playbook

    async def _refuse(self, error: Exception) -> None:
        if isinstance(error, PlaybookInvalid):
            message = "invalid playbook: " + "; ".join(str(e) for e in error.errors[:20])
        else:
            message = str(error)
        now = time.time()
        state = ExecutionState(phase="Failed", started_at=now, finished_at=now, error=message)
        status = execution_status(state, self.execution["metadata"].get("generation"))
        status["conditions"][0]["reason"] = "InvalidPlaybook"
        await self.api.patch_status("executions", self.namespace, self.name, status)
        await events.record(self.api, self.execution, "InvalidPlaybook", message, warning=True)
        metrics.EXECUTIONS_FINISHED.labels(phase="Failed").inc()
        self.finished_at = now

    async def _resume(self) -> None:
        """Carry on after a restart: timers again, and every Job or child that ended meanwhile."""
        for timer_id, timer in self.state.timers.items():
            self._schedule(timer_id, timer.due)
        selector = execution_selector(self.name)
        jobs = [
            job
            for job in await self.api.list_jobs(self.namespace, selector)
            if owned_by(job, self.uid)
        ]
        children = [
            c
            for c in await self.api.list_custom("executions", self.namespace, selector)
            if owned_by(c, self.uid)
        ]
        seen = {run_of(obj["metadata"]["labels"]) for obj in [*jobs, *children]}
        for child in children:
            step, index, attempt = run_of(child["metadata"]["labels"])
            timeout = self.engine.playbook.steps[step].timeout
            if timeout is not None:
                created = epoch_seconds(child["metadata"]["creationTimestamp"])
                self._child_deadline(
                    step,
                    index,
                    attempt,
                    created + duration_seconds(timeout),
                    duration_seconds(timeout),
                )
        lost = [run for run in self.state.runs_in_flight() if run not in seen]
        replay: list[Event] = [
            StepFailed(*run, at=time.time(), error="the step's Job no longer exists")
            for run in lost
        ]
        for job in sorted(jobs, key=_finish_time):
            if job_finished(job) and (event := await self._job_event(job)):
                replay.append(event)
        for child in children:
            if event := await self._child_event(child):
                replay.append(event)
        # A finished run becomes current only once the run before it is fed: repeat until still.
        while replay:
            before = json.dumps(self.state.to_dict())
            await self._feed(replay)
            if json.dumps(self.state.to_dict()) == before:
                break

    # Messages ---------------------------------------------------------------------------------

    async def _on(self, message: Message) -> None:
        event: Event | None = None
        if isinstance(message, JobChanged):
            event = await self._job_event(message.job, message.deleted)
        elif isinstance(message, ChildChanged):
            event = await self._child_event(message.child)
        elif isinstance(message, TimerDue):
            event = TimerFired(message.timer, at=time.time())
        elif isinstance(message, ChildDeadline) and self.state.running_step(
            message.step, message.index, message.attempt
        ):
            await self.api.delete(
                "Execution",
                self.namespace,
                run_name(self.name, message.step, message.index, message.attempt),
            )
            event = StepFailed(
                message.step,
                message.index,
                message.attempt,
                at=time.time(),
                error=f"timed out after {message.seconds:g}s",
            )
        elif isinstance(message, ExecutionChanged) and message.body["spec"].get("cancel"):
            event = CancelRequested(at=time.time(), reason="spec.cancel is true")
        if event is not None:
            await self._feed([event])

    def _awaited_run(self, obj: dict[str, Any]) -> tuple[str, int | None, int] | None:
        """The run a Job or child Execution stands for, if it is ours and still awaited."""
        if not owned_by(obj, self.uid):
            return None
        run = run_of(obj["metadata"]["labels"])
        return run if self.state.running_step(*run) else None

    async def _job_event(self, job: dict[str, Any], deleted: bool = False) -> Event | None:
        run = self._awaited_run(job)
        if run is None:
            return None  # not ours, stale, or already recorded: no need to read its pod
        at = time.time()
        if not job_finished(job):
            return (
                StepFailed(*run, at=at, error="the step's Job was deleted before it finished")
                if deleted
                else None
            )
        outcome = await job_outcome(self.api, job)
        _observe(job, outcome.ok)
        if not outcome.ok:
            return StepFailed(
                *run, at=at, error=outcome.error or "step failed", result=outcome.result
            )
        too_large = check_size(outcome.result)
        if too_large:
            return StepFailed(*run, at=at, error=too_large)
        return StepSucceeded(*run, at=at, result=outcome.result)

    async def _child_event(self, child: dict[str, Any]) -> Event | None:
        status = child.get("status") or {}
        run = self._awaited_run(child) if status.get("phase") in FINISHED_PHASES else None
        if run is None:
            return None
        step, index, attempt = run
        at = time.time()
        if status["phase"] != "Succeeded":
            ended = f"{status['phase'].lower()}: {status.get('error')}"
            error = f"child execution {child['metadata']['name']} {ended}"
            return StepFailed(step, index, attempt, at=at, error=error)
        result = status.get("result")
        ref = status.get("resultRef")
        if ref:
            stored = await self.api.read_config_map(self.namespace, ref["configMap"])
            result = json.loads(((stored or {}).get("data") or {}).get(ref["key"], "null"))
        return StepSucceeded(step, index, attempt, at=at, result=result)

    # Deciding and doing -----------------------------------------------------------------------

    async def _feed(self, incoming: list[Event]) -> None:
        pending = list(incoming)
        while pending:
            event = pending.pop(0)
            ran = isinstance(event, StepSucceeded | StepFailed) and self.state.running_step(
                event.step, event.index, event.attempt
            )
            commands = self.engine.handle(self.state, self.results, event)
            if ran:
                await self._record_outcome(event)
            pending += await self._carry_out(commands)
        await self._save()

    async def _record_outcome(self, event: Event) -> None:
        if isinstance(event, StepSucceeded):
            await events.record(
                self.api, self.execution, "StepSucceeded", f"step {event.key} succeeded"
            )
        elif isinstance(event, StepFailed):
            await events.record(
                self.api,
                self.execution,
                "StepFailed",
                f"step {event.key} failed: {event.error}",
                warning=True,
            )

    async def _carry_out(self, commands: list[Command]) -> list[Event]:
        """Do what the engine asked; a run that cannot even start comes back as its failure."""
        failures: list[Event] = []
        for command in commands:
            match command:
                case StartStep():
                    failure = await self._start_job(command)
                    if failure:
                        failures.append(failure)
                case StartChildExecution():
                    created = await self.api.create(child_execution(self.execution, command))
                    if command.timeout is not None:
                        self._child_deadline(
                            command.step,
                            command.index,
                            command.attempt,
                            time.time() + command.timeout,
                            command.timeout,
                        )
                    if created:
                        await events.record(
                            self.api,
                            self.execution,
                            "StepStarted",
                            f"step {command.key} started a child execution"
                            f" of playbook {command.playbook}",
                        )
                case ScheduleRetry():
                    self._schedule(command.timer, command.due)
                    wait = max(0.0, command.due - time.time())
                    await events.record(
                        self.api,
                        self.execution,
                        "StepRetrying",
                        f"step {command.key} in {wait:.0f}s after: {command.error}",
                        warning=True,
                    )
                case ScheduleTimer():
                    self._schedule(command.timer, command.due)
                case CancelStep():
                    kind = (
                        "Execution"
                        if self.engine.playbook.steps[command.step].tool == "playbook"
                        else "Job"
                    )
                    await self.api.delete(
                        kind,
                        self.namespace,
                        run_name(self.name, command.step, command.index, command.attempt),
                    )
                case FinishExecution():
                    await self._finished(command)
        return failures

    async def _start_job(self, command: StartStep) -> Event | None:
        try:
            manifest = step_job(
                self.execution,
                command,
                self.engine.playbook.steps[command.step],
                self.context.settings,
            )
        except (ValueError, KeyError) as error:
            return StepFailed(
                command.step,
                command.index,
                command.attempt,
                at=time.time(),
                error=f"cannot build the step's Job: {error}",
            )
        job = manifest["metadata"]["name"]
        await self.context.slots.acquire(self.namespace, job)
        try:
            created = await self.api.create(manifest)
        except ApiException as error:
            self.context.slots.release(self.namespace, job)
            if error.status is not None and 400 <= error.status < 500 and error.status != 429:
                return StepFailed(
                    command.step,
                    command.index,
                    command.attempt,
                    at=time.time(),
                    error=f"the API server refused the step's Job: {error_text(error)}",
                )
            raise
        if created:
            await events.record(
                self.api, self.execution, "StepStarted", f"step {command.key} started as Job {job}"
            )
        return None

    async def _finished(self, command: FinishExecution) -> None:
        metrics.EXECUTIONS_FINISHED.labels(phase=command.phase).inc()
        message = f"execution {command.phase.lower()}" + (
            f": {command.error}" if command.error else ""
        )
        await events.record(
            self.api,
            self.execution,
            f"Execution{command.phase}",
            message,
            warning=command.phase != "Succeeded",
        )
        self.finished_at = time.time()
        self._result = command.result

    def _child_deadline(
        self, step: str, index: int | None, attempt: int, due: float, seconds: float
    ) -> None:
        deadline = ChildDeadline(step, index, attempt, seconds)
        asyncio.get_running_loop().call_later(
            max(0.0, due - time.time()), self.queue.put_nowait, deadline
        )

    def _schedule(self, timer: str, due: float) -> None:
        if timer in self._timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(timer, None)
            self.queue.put_nowait(TimerDue(timer))

        self._timers[timer] = loop.call_later(max(0.0, due - time.time()), fire)

    async def _save(self) -> None:
        """Results first, then the status that refers to them."""
        result, result_ref = None, None
        if self.state.phase == "Succeeded":
            result = self._result
            if not fits_inline(result):
                self.results[OUTPUT_KEY] = result
        try:
            await self.results.flush(self.api)
        except ResultTooLarge as error:
            self.state.phase, self.state.error, self.state.finished_at = (
                "Failed",
                str(error),
                time.time(),
            )
            result = None
        if self.state.phase == "Succeeded" and not fits_inline(result):
            result_ref, result = self.results.location(OUTPUT_KEY), None
        status = execution_status(
            self.state, self.execution["metadata"].get("generation"), result, result_ref
        )
        shown = set(status["steps"])
        status["steps"].update(
            {name: None for name in self._shown_steps - shown}
        )  # merge patch: drop
        self._shown_steps = shown
        await self.api.patch_status("executions", self.namespace, self.name, status)


def _finish_time(job: dict[str, Any]) -> str:
    status = job.get("status") or {}
    return str(status.get("completionTime") or status.get("startTime") or "")


def _observe(job: dict[str, Any], ok: bool) -> None:
    labels = job["metadata"]["labels"]
    tool = labels.get(TOOL_LABEL, "unknown")
    metrics.STEPS_FINISHED.labels(tool=tool, outcome="succeeded" if ok else "failed").inc()
    status = job.get("status") or {}
    started, ended = (
        status.get("startTime"),
        status.get("completionTime") or _last_condition_time(job),
    )
    if started and ended:
        metrics.STEP_DURATION.labels(tool=tool).observe(
            epoch_seconds(ended) - epoch_seconds(started)
        )


def _last_condition_time(job: dict[str, Any]) -> str | None:
    times = [c.get("lastTransitionTime") for c in (job.get("status") or {}).get("conditions") or []]
    return max((t for t in times if t), default=None)
