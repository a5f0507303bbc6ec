"""Messages in: what a changed Job, child Execution or Execution means to the engine.

The kopf handlers deliver watch events to an execution's driver as the messages below; `Inbox`
turns each into an engine event, or None when it says nothing new (not ours, stale, not finished).
A step's end is taken from whichever comes first: its pod's terminated container (the result in
the termination message, or the pod log when large), or its Job's end (which also covers pods
that never ran or vanished, and the Job's deadline); the later one finds the run no longer
awaited and is ignored.
After a restart, `recovered` does the same for every Job and child that ended while no operator
watched, and fails the runs whose Job vanished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from noetl.engine import (
    ApprovalGiven,
    CancelRequested,
    Event,
    ExecutionState,
    ResumeRequested,
    StepFailed,
    StepSucceeded,
    SuspendRequested,
)
from noetl.engine.state import FINISHED_PHASES
from noetl.kube import metrics
from noetl.kube.api import KubeApi
from noetl.kube.manifests import (
    EXECUTION_UID_ANNOTATION,
    TOOL_LABEL,
    execution_selector,
    owned_by,
    run_of,
)
from noetl.kube.outcomes import (
    container_refused,
    container_terminated,
    job_finished,
    job_outcome,
    pod_outcome,
)
from noetl.kube.times import epoch_seconds
from noetl.plugins.messages import Outcome

Run = tuple[str, int | None, int]


@dataclass(frozen=True)
class JobChanged:
    job: dict[str, Any]
    deleted: bool = False


@dataclass(frozen=True)
class PodEnded:
    """A step pod's container has terminated: its result is there before its Job is Complete."""

    pod: dict[str, Any]


@dataclass(frozen=True)
class ChildChanged:
    child: dict[str, Any]


@dataclass(frozen=True)
class ExecutionChanged:
    body: dict[str, Any]


Message = JobChanged | PodEnded | ChildChanged | ExecutionChanged


def spec_events(spec: dict[str, Any], state: ExecutionState, at: float) -> list[Event]:
    """What the Execution's spec asks that the state does not show yet: a cancel, a suspend or
    a resume, approvals for the approval steps waiting. Asked again, it asks nothing new: the
    spec is read on every change of the Execution, and after a restart."""
    if spec.get("cancel"):
        return [CancelRequested(at=at, reason="spec.cancel is true")]
    events: list[Event] = []
    if spec.get("suspend") and state.suspended is None:
        events.append(SuspendRequested(at=at, reason="spec.suspend is true"))
    elif not spec.get("suspend") and state.suspended is not None:
        events.append(ResumeRequested(at=at))
    approvals = spec.get("approvals") or {}
    events += [
        ApprovalGiven(step, at=at, values=dict(approvals[step] or {}))
        for step in state.approvals
        if step in approvals
    ]
    return events


class Inbox:
    def __init__(self, api: KubeApi, execution: dict[str, Any], state: ExecutionState) -> None:
        self.api = api
        self.execution = execution
        self.state = state
        self.namespace = str(execution["metadata"]["namespace"])
        self.uid = str(execution["metadata"]["uid"])

    async def interpret(self, message: Message, at: float) -> list[Event]:
        match message:
            case JobChanged():
                event = await self._job_event(message.job, at, message.deleted)
            case PodEnded():
                event = await self._pod_event(message.pod, at)
            case ChildChanged():
                event = await self._child_event(message.child, at)
            case ExecutionChanged():
                # The status says which generation of the spec it answers (Argo CD reads it).
                generation = message.body["metadata"].get("generation")
                self.execution["metadata"]["generation"] = generation
                return spec_events(message.body["spec"], self.state, at)
        return [event] if event is not None else []

    async def recovered(self, at: float) -> list[Event]:
        """What happened while no operator watched: runs that ended, and runs whose Job is gone."""
        selector = execution_selector(self.execution["metadata"]["name"])
        jobs = [
            job for job in await self.api.list_jobs(self.namespace, selector) if self._ours(job)
        ]
        children = [
            child
            for child in await self.api.list_custom("executions", self.namespace, selector)
            if self._ours(child)
        ]
        seen = {run_of(obj["metadata"]["labels"]) for obj in [*jobs, *children]}
        events: list[Event] = [
            StepFailed(*run, at=at, error="the step's Job no longer exists")
            for run in self.state.runs_in_flight()
            if run not in seen
        ]
        for job in sorted(jobs, key=_finish_time):
            if job_finished(job) and (event := await self._job_event(job, at)):
                events.append(event)
        for child in children:
            if event := await self._child_event(child, at):
                events.append(event)
        return events

    def _ours(self, obj: dict[str, Any]) -> bool:
        return owned_by(obj, self.uid)

    def _awaited_run(self, obj: dict[str, Any]) -> Run | None:
        """The run a Job or child Execution stands for, if it is ours and still awaited."""
        if not self._ours(obj):
            return None
        run = run_of(obj["metadata"]["labels"])
        return run if self.state.running_step(*run) else None

    async def _job_event(
        self, job: dict[str, Any], at: float, deleted: bool = False
    ) -> Event | None:
        run = self._awaited_run(job)
        if run is None:
            return None  # not ours, stale, or already recorded: no need to read its pod
        if not job_finished(job):
            return (
                StepFailed(*run, at=at, error="the step's Job was deleted before it finished")
                if deleted
                else None
            )
        outcome = await job_outcome(self.api, job)
        _observe(job, outcome.ok)
        return _event_of(run, at, outcome)

    async def _pod_event(self, pod: dict[str, Any], at: float) -> Event | None:
        # A pod is owned by its Job, not by the Execution: the Job puts the Execution's uid on it.
        annotations = pod["metadata"].get("annotations") or {}
        terminated = container_terminated(pod)
        refused = container_refused(pod) if terminated is None else None
        if annotations.get(EXECUTION_UID_ANNOTATION) != self.uid or not (terminated or refused):
            return None
        run = run_of(pod["metadata"]["labels"])
        if not self.state.running_step(*run):
            return None
        if refused is not None:
            # The Job would wait for its deadline: the step fails now, saying why.
            return _event_of(
                run, at, Outcome(ok=False, error=f"the container was refused: {refused}")
            )
        assert terminated is not None
        outcome = await pod_outcome(self.api, pod, terminated)
        started, ended = terminated.get("startedAt"), terminated.get("finishedAt")
        _count(pod["metadata"]["labels"], outcome.ok, started, ended)
        return _event_of(run, at, outcome)

    async def _child_event(self, child: dict[str, Any], at: float) -> Event | None:
        status = child.get("status") or {}
        run = self._awaited_run(child) if status.get("phase") in FINISHED_PHASES else None
        if run is None:
            return None
        if status["phase"] != "Succeeded":
            ended = f"{status['phase'].lower()}: {status.get('error')}"
            error = f"child execution {child['metadata']['name']} {ended}"
            return StepFailed(*run, at=at, error=error)
        result = status.get("result")
        ref = status.get("resultRef")
        if ref:
            stored = await self.api.read_config_map(self.namespace, ref["configMap"])
            result = json.loads(((stored or {}).get("data") or {}).get(ref["key"], "null"))
        return StepSucceeded(*run, at=at, result=result)


def _event_of(run: Run, at: float, outcome: Outcome) -> Event:
    if not outcome.ok:
        error = outcome.error or "step failed"
        return StepFailed(*run, at=at, error=error, result=outcome.result, log=outcome.log)
    return StepSucceeded(*run, at=at, result=outcome.result, log=outcome.log)


def _finish_time(job: dict[str, Any]) -> str:
    status = job.get("status") or {}
    return str(status.get("completionTime") or status.get("startTime") or "")


def _observe(job: dict[str, Any], ok: bool) -> None:
    status = job.get("status") or {}
    ended = status.get("completionTime") or _last_condition_time(job)
    _count(job["metadata"]["labels"], ok, status.get("startTime"), ended)


def _count(labels: dict[str, str], ok: bool, started: str | None, ended: str | None) -> None:
    tool = labels.get(TOOL_LABEL, "unknown")
    metrics.STEPS_FINISHED.labels(tool=tool, outcome="succeeded" if ok else "failed").inc()
    if started and ended:
        metrics.STEP_DURATION.labels(tool=tool).observe(
            epoch_seconds(ended) - epoch_seconds(started)
        )


def _last_condition_time(job: dict[str, Any]) -> str | None:
    times = [c.get("lastTransitionTime") for c in (job.get("status") or {}).get("conditions") or []]
    return max((t for t in times if t), default=None)
