"""Step pods that cannot start: noticed at once, told, and failed after a deadline of their own.

A pod whose container waits for an image that cannot be pulled would otherwise sit until the
step's timeout, an hour by default, with nothing said. Here the first sight of such a reason (a
watch event of the pod) is told as a Warning Event and shown in the step's status (`waiting`)
within seconds, and arms the pending deadline (`step_pending_timeout`); when it passes with the
pod still not started, the step fails naming the cause, and its Job is deleted. A pod that
starts clears all of it. A restarted operator sees the pod again in its first listing and
re-arms the deadline from then.

A pod the API server refuses to create (a ResourceQuota, PodSecurity admission, a missing
ServiceAccount) never exists: the Job controller says why only in a `FailedCreate` Event on the
Job, and shows a Job started with no pod (`job_without_pod`, seen on the Job's watch event).
Only then are the Job's `FailedCreate` Events read, once, and again after 2, 4, 8... seconds
while they say nothing yet (the controller posts them after its status write); the cause is
told and fails the step at the pending deadline as above. Such refusals are waited out rather
than failed at once: the Job controller keeps trying, and a quota freed, a ServiceAccount
created or a namespace's policy relaxed lets the step run. At the deadline the Job's pods are
listed first: a Job that got its pod meanwhile is not failed for an old refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from noetl.engine import Event, ExecutionState, StepFailed
from noetl.kube import events
from noetl.kube.api import KubeApi
from noetl.kube.manifests import EXECUTION_UID_ANNOTATION, owned_by, run_of
from noetl.kube.names import run_name
from noetl.kube.outcomes import job_finished
from noetl.loop import Cancellable, Clock

log = logging.getLogger(__name__)
# Waiting reasons the kubelet keeps retrying until something outside changes (an image pushed,
# a registry back). Reasons that will not pass (a missing Secret, an invalid image name) fail
# the step at once instead (`outcomes.REFUSALS`).
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"})
Run = tuple[str, int | None, int]
# What a podless Job's step shows until the Job controller's Event says why.
NO_POD_YET = "FailedCreate: the Job controller has created no pod (its Events say nothing yet)"
LOOK_AGAIN_MAX_SECONDS = 30.0
_POD_COUNTS = ("active", "ready", "succeeded", "failed", "terminating")


@dataclass(frozen=True)
class PodWaiting:
    """A step pod that cannot start (a stuck waiting reason), or that started after all."""

    pod: dict[str, Any]


@dataclass(frozen=True)
class JobWithoutPod:
    """A step's Job the Job controller started but holds no pod of: its pod was refused."""

    job: dict[str, Any]


@dataclass(frozen=True)
class LookAgain:
    """Time to read a podless Job's Events again."""

    run: Run


@dataclass(frozen=True)
class PendingExpired:
    run: Run


PendingMessage = PodWaiting | JobWithoutPod | LookAgain | PendingExpired
PENDING_MESSAGES = (PodWaiting, JobWithoutPod, LookAgain, PendingExpired)


def job_without_pod(job: dict[str, Any]) -> bool:
    """Whether the Job controller started the Job (startTime) and it holds no pod at all: it
    writes that status only once creating the pod has failed (`active` counts a pod created)."""
    status = job.get("status") or {}
    uncounted = status.get("uncountedTerminatedPods") or {}
    return (
        bool(status.get("startTime"))
        and not any(status.get(count) for count in _POD_COUNTS)
        and not any(uncounted.values())
        and not job_finished(job)
    )


def refusal_cause(events: list[dict[str, Any]]) -> str | None:
    """'FailedCreate: why', from the newest of a Job's FailedCreate Events, or None."""
    refusals = [e for e in events if e.get("reason") == "FailedCreate" and e.get("message")]
    if not refusals:
        return None
    newest = max(refusals, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return f"FailedCreate: {str(newest['message']).removeprefix('Error creating: ')}"


def stuck_cause(pod: dict[str, Any]) -> str | None:
    """'Reason: message' of a container that waits for a reason that will not pass by itself."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            message = waiting.get("message")
            return f"{waiting['reason']}: {message}" if message else str(waiting["reason"])
    return None


def container_started(pod: dict[str, Any]) -> bool:
    return any(
        (status.get("state") or {}).get("running") or (status.get("state") or {}).get("terminated")
        for status in (pod.get("status") or {}).get("containerStatuses") or []
    )


class PendingPods:
    def __init__(
        self,
        api: KubeApi,
        execution: dict[str, Any],
        state: ExecutionState,
        clock: Clock,
        timeout: float,
        post: Callable[[Any], None],
    ) -> None:
        self.api = api
        self.execution = execution
        self.state = state
        self.clock = clock
        self.timeout = timeout
        self.post = post
        self.causes: dict[Run, str] = {}
        self._deadlines: dict[Run, Cancellable] = {}
        self._podless: dict[Run, dict[str, Any]] = {}  # runs whose Job holds no pod: its Job
        self._looks: dict[Run, Cancellable] = {}
        self._looked: dict[Run, int] = {}

    async def interpret(self, message: PendingMessage) -> Event | None:
        """None, or the step's failure when its pod passed the pending deadline unstarted."""
        match message:
            case PendingExpired():
                return await self._expired(message.run)
            case LookAgain():
                self._looks.pop(message.run, None)
                if message.run in self._podless and self.state.running_step(*message.run):
                    await self._look(message.run)
                return None
            case JobWithoutPod():
                await self._job_without_pod(message.job)
                return None
        pod = message.pod
        metadata = pod["metadata"]
        uid = self.execution["metadata"]["uid"]
        if (metadata.get("annotations") or {}).get(EXECUTION_UID_ANNOTATION) != uid:
            return None
        run = run_of(metadata["labels"])
        cause = stuck_cause(pod)
        if cause is None or not self.state.running_step(*run):
            self._forget(run)
            return None
        self._podless.pop(run, None)  # it has a pod: what keeps it waiting is the pod's
        await self._tell(run, cause, "its pod cannot start")
        return None

    def by_step(self) -> Mapping[str, str]:
        """What the status shows: why each step's pod cannot start, for runs still awaited."""
        for run in [run for run in self.causes if not self.state.running_step(*run)]:
            self._forget(run)
        return {run[0]: self.causes[run] for run in self.causes}

    async def _tell(self, run: Run, cause: str, what: str) -> None:
        """Show a new cause in the status and as a Warning Event; the deadline runs from the
        first one."""
        if self.causes.get(run) == cause:
            return
        self.causes[run] = cause
        if run not in self._deadlines:
            expire = PendingExpired(run)
            self._deadlines[run] = self.clock.call_later(self.timeout, lambda: self.post(expire))
        if cause != NO_POD_YET:
            told = f"step {_key(run)}: {what}: {cause}"
            await events.record(self.api, self.execution, "StepPending", told, warning=True)

    async def _job_without_pod(self, job: dict[str, Any]) -> None:
        if not owned_by(job, self.execution["metadata"]["uid"]):
            return
        run = run_of(job["metadata"]["labels"])
        if run in self._podless or not self.state.running_step(*run):
            return  # already looked into: its looks and deadline are under way
        self._podless[run] = job
        self._looked[run] = 0
        await self._look(run)

    async def _look(self, run: Run) -> None:
        """Read the podless Job's FailedCreate Events; when they say nothing yet, look again."""
        job = self._podless[run]["metadata"]
        selector = f"involvedObject.uid={job['uid']},reason=FailedCreate"
        try:
            cause = refusal_cause(await self.api.list_events(job["namespace"], selector))
        except Exception as error:  # the Events only explain: the deadline holds without them
            log.warning("cannot read the Events of Job %s: %s", job["name"], error)
            cause = None
        if cause is None:
            self._looked[run] += 1
            delay = min(LOOK_AGAIN_MAX_SECONDS, 2.0 ** self._looked[run])
            again = LookAgain(run)
            self._looks[run] = self.clock.call_later(delay, lambda: self.post(again))
        await self._tell(
            run, cause or self.causes.get(run, NO_POD_YET), "its pod cannot be created"
        )

    async def _expired(self, run: Run) -> Event | None:
        self._deadlines.pop(run, None)
        cause = self.causes.get(run)
        if cause is None or not self.state.running_step(*run):
            self._forget(run)
            return None
        metadata = self.execution["metadata"]
        namespace, job = metadata["namespace"], run_name(metadata["name"], *run)
        podless = run in self._podless
        if podless and await self.api.list_pods(namespace, f"job-name={job}"):
            self._forget(run)  # the refusal passed: the Job has its pod now
            return None
        self._forget(run)
        await self.api.delete("Job", namespace, job)
        verb = "be created" if podless else "start"
        error = f"the step's pod could not {verb} within {self.timeout:.0f}s: {cause}"
        return StepFailed(*run, at=self.clock.now(), error=error)

    def _forget(self, run: Run) -> None:
        self.causes.pop(run, None)
        self._podless.pop(run, None)
        self._looked.pop(run, None)
        for timers in (self._deadlines, self._looks):
            timer = timers.pop(run, None)
            if timer is not None:
                timer.cancel()

    def stop(self) -> None:
        for timers in (self._deadlines, self._looks):
            for timer in timers.values():
                timer.cancel()
            timers.clear()


def _key(run: Run) -> str:
    step, index, _ = run
    return step if index is None else f"{step}[{index}]"
