"""Step pods that cannot start: noticed at once, told, and failed after a deadline of their own.

A pod whose container waits for an image that cannot be pulled would otherwise sit until the
step's timeout, an hour by default, with nothing said. Here the first sight of such a reason (a
watch event of the pod) is told as a Warning Event and shown in the step's status (`waiting`)
within seconds, and arms the pending deadline (`step_pending_timeout`); when it passes with the
pod still not started, the step fails naming the cause, and its Job is deleted. A pod that
starts clears all of it. A restarted operator sees the pod again in its first listing and
re-arms the deadline from then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from noetl.engine import Event, ExecutionState, StepFailed
from noetl.kube import events
from noetl.kube.api import KubeApi
from noetl.kube.manifests import EXECUTION_UID_ANNOTATION, run_of
from noetl.kube.names import run_name
from noetl.loop import Cancellable, Clock

# Waiting reasons the kubelet keeps retrying until something outside changes (an image pushed,
# a registry back). Reasons that will not pass (a missing Secret, an invalid image name) fail
# the step at once instead (`outcomes.REFUSALS`).
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"})
Run = tuple[str, int | None, int]


@dataclass(frozen=True)
class PodWaiting:
    """A step pod that cannot start (a stuck waiting reason), or that started after all."""

    pod: dict[str, Any]


@dataclass(frozen=True)
class PendingExpired:
    run: Run


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
        sink: events.EventSink,
        execution: dict[str, Any],
        state: ExecutionState,
        clock: Clock,
        timeout: float,
        post: Callable[[Any], None],
    ) -> None:
        self.api = api
        self.sink = sink
        self.execution = execution
        self.state = state
        self.clock = clock
        self.timeout = timeout
        self.post = post
        self.causes: dict[Run, str] = {}
        self._deadlines: dict[Run, Cancellable] = {}

    async def interpret(self, message: PodWaiting | PendingExpired) -> Event | None:
        """None, or the step's failure when its pod passed the pending deadline unstarted."""
        if isinstance(message, PendingExpired):
            return await self._expired(message.run)
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
        if self.causes.get(run) != cause:
            self.causes[run] = cause
            if run not in self._deadlines:
                expire = PendingExpired(run)
                self._deadlines[run] = self.clock.call_later(
                    self.timeout, lambda: self.post(expire)
                )
            step = _key(run)
            told = f"step {step}: its pod cannot start: {cause}"
            self.sink.post(self.execution, "StepPending", told, warning=True)
        return None

    def by_step(self) -> Mapping[str, str]:
        """What the status shows: why each step's pod cannot start, for runs still awaited."""
        for run in [run for run in self.causes if not self.state.running_step(*run)]:
            self._forget(run)
        return {run[0]: self.causes[run] for run in self.causes}

    async def _expired(self, run: Run) -> Event | None:
        self._deadlines.pop(run, None)
        cause = self.causes.pop(run, None)
        if cause is None or not self.state.running_step(*run):
            return None
        metadata = self.execution["metadata"]
        job = run_name(metadata["name"], *run)
        await self.api.delete("Job", metadata["namespace"], job)
        error = f"the step's pod could not start within {self.timeout:.0f}s: {cause}"
        return StepFailed(*run, at=self.clock.now(), error=error)

    def _forget(self, run: Run) -> None:
        self.causes.pop(run, None)
        deadline = self._deadlines.pop(run, None)
        if deadline is not None:
            deadline.cancel()

    def stop(self) -> None:
        for deadline in self._deadlines.values():
            deadline.cancel()
        self._deadlines.clear()


def _key(run: Run) -> str:
    step, index, _ = run
    return step if index is None else f"{step}[{index}]"
