"""What a finished step Job, or its ended pod, says: its result, or why it failed, in words a
user can act on.

Kubernetes has many ways to end a pod besides the plugin's own verdict: deadline exceeded, out of
memory, evicted, deleted. Each becomes a clear failure of the step, never a silent hang.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from noetl.kube.api import KubeApi
from noetl.kube.manifests import TOOL_LABEL
from noetl.kube.refusals import error_text
from noetl.plugins import container as container_tool
from noetl.plugins.runtime import Outcome, read_outcome

TAIL_CHARS = 1000  # of a step's log, in its error when it ended without an outcome


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions: list[dict[str, Any]] = (obj.get("status") or {}).get("conditions") or []
    for condition in conditions:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def job_finished(job: dict[str, Any]) -> bool:
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


REFUSALS = (
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
)
"""Why a kubelet may never start a step's container: each fails the step at once, named.
An image that cannot be pulled may be pushed or reachable a moment later: `pending` gives it
until the pending deadline."""


def container_refused(pod: dict[str, Any]) -> str | None:
    """Why the kubelet will not start the pod's container (e.g. an image that would run as
    root, which runAsNonRoot forbids), or None while it may still start."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in REFUSALS:
            detail = waiting.get("message")
            return f"{waiting['reason']}" + (f": {detail}" if detail else "")
    return None


def container_terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated: dict[str, Any] | None = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated
    return None


async def job_outcome(api: KubeApi, job: dict[str, Any]) -> Outcome:
    metadata = job["metadata"]
    failed = _condition(job, "Failed")
    if failed is not None and failed.get("reason") == "DeadlineExceeded":
        # A backstop: the engine's timer ends a step with a timeout before its Job's deadline.
        deadline = job["spec"].get("activeDeadlineSeconds")
        return Outcome(ok=False, error=f"the step's Job passed its deadline of {deadline}s")
    pods = await api.list_pods(metadata["namespace"], f"job-name={metadata['name']}")
    finished = [(pod, container_terminated(pod)) for pod in pods]
    finished = [(pod, terminated) for pod, terminated in finished if terminated is not None]
    if not pods:
        return Outcome(ok=False, error="the step's pod was deleted before it finished")
    if not finished:
        reason = (failed or {}).get("message") or (failed or {}).get("reason")
        pod_reason = next(
            (
                p["status"].get("message") or p["status"].get("reason")
                for p in pods
                if (p.get("status") or {}).get("reason")
            ),
            None,
        )
        why = pod_reason or reason or "its pod was deleted before it finished"
        return Outcome(ok=False, error=f"the step's pod ended without a result: {why}")
    pod, terminated = finished[-1]
    assert terminated is not None
    return await pod_outcome(api, pod, terminated, job_failed=failed is not None)


async def pod_outcome(
    api: KubeApi, pod: dict[str, Any], terminated: dict[str, Any], job_failed: bool = False
) -> Outcome:
    """What a step's ended container says: its result, or why it failed."""
    if terminated.get("reason") == "OOMKilled":
        return Outcome(
            ok=False,
            error="the step ran out of memory (OOMKilled); raise its memory limit in pod.resources",
        )
    message = terminated.get("message") or ""
    if (pod["metadata"].get("labels") or {}).get(TOOL_LABEL) == "container":
        return await _image_outcome(api, pod, terminated, message)
    exit_code = terminated.get("exitCode")
    if exit_code not in (0, None) and not _is_outcome(message):
        return Outcome(ok=False, error=_hard_exit(exit_code, message))
    log = None
    if '"resultInLog"' in message:
        try:
            log = await api.pod_log(pod["metadata"]["namespace"], pod["metadata"]["name"])
        except ApiException as error:
            return Outcome(
                ok=False,
                error=f"cannot read the step's result from its pod log: {error_text(error)}",
            )
    outcome = read_outcome(message, log)
    if outcome.ok and (job_failed or exit_code not in (0, None)):
        return Outcome(
            ok=False,
            result=outcome.result,
            error=f"the step's container exited with code {exit_code}",
            log=outcome.log,
        )
    return outcome


def _is_outcome(message: str) -> bool:
    """Whether a termination message is the plugin runtime's envelope (not a log's tail)."""
    try:
        envelope = json.loads(message)
    except ValueError:
        return False
    return isinstance(envelope, dict) and isinstance(envelope.get("ok"), bool)


def _hard_exit(exit_code: int, tail: str) -> str:
    """A container that ended without an outcome: its exit code and the end of its log (which
    the kubelet puts in the termination message, as the pod asks: FallbackToLogsOnError)."""
    ended = f"the step's container exited with code {exit_code} without reporting an outcome"
    tail = tail.strip()
    if not tail:
        return ended + " and wrote nothing to its log"
    return f"{ended}; the end of its log:\n{tail[-TAIL_CHARS:]}"


async def _image_outcome(
    api: KubeApi, pod: dict[str, Any], terminated: dict[str, Any], message: str
) -> Outcome:
    """A `container` step: its termination message, else its log (stdout and stderr, merged)."""
    exit_code = terminated.get("exitCode")
    log = ""
    if not message.strip() or exit_code not in (0, None):
        try:
            log = await api.pod_log(pod["metadata"]["namespace"], pod["metadata"]["name"])
        except ApiException as error:
            return Outcome(
                ok=False, error=f"cannot read the container's log: {error.reason} ({error.status})"
            )
    return container_tool.outcome(exit_code, message, log)
