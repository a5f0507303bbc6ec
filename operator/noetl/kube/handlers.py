"""The handlers of watch events: changes in, deliveries to execution drivers out.

kopf calls those of Executions, Playbooks and CronPlaybooks; those of step Jobs and pods are
plain functions, called by the operator's own watches (`watches`) or, when kopf must watch those
too, by kopf handlers that wrap them.

Only `on.event` handlers are used, so kopf keeps no per-object state of its own (no
last-handled-configuration annotation, which breaks past 256 KiB on a 2,000-step playbook, and
no finalizers: deletion is garbage collection through ownerReferences). All progress lives in
the objects' status. Each Job that finishes is delivered at once, so the next step starts on the
watch event that ends the previous one, with no periodic requeue.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

import kopf

from noetl.engine.state import FINISHED_PHASES
from noetl.kube.admission import QUEUED
from noetl.kube.cron import CRON_LABEL
from noetl.kube.cronplaybooks import CronController
from noetl.kube.inbox import ChildChanged, ExecutionChanged, JobChanged, PodEnded
from noetl.kube.manifests import EXECUTION_LABEL, EXECUTION_NAME_ANNOTATION, owner_name
from noetl.kube.outcomes import container_refused, container_terminated, job_finished
from noetl.kube.pending import (
    JobWithoutPod,
    PodWaiting,
    container_started,
    job_without_pod,
    stuck_cause,
)
from noetl.kube.playbooks import PlaybookController
from noetl.kube.registry import DriverRegistry
from noetl.playbook import API_GROUP, GROUP_VERSION

StepChange = Callable[[str | None, dict[str, Any]], None]  # a watch event's type and object


def register(
    registry: kopf.OperatorRegistry, drivers: DriverRegistry, steps_by_kopf: bool = True
) -> dict[str, StepChange]:
    """The kopf handlers, and by plural (`jobs`, `pods`) the function a change of a step Job or
    pod goes to: kopf's handlers call them when `steps_by_kopf`, else the operator's own
    watches (`watches.Watch`) must."""
    playbooks = PlaybookController(drivers.context.api)
    crons = CronController(drivers.context.api, drivers.context.clock)
    excluded = drivers.context.settings.excluded_namespaces

    @functools.cache  # asked on every watch event, of a handful of namespaces
    def excluded_namespace(namespace: str) -> bool:
        return any(fnmatchcase(namespace, pattern) for pattern in excluded)

    def served(namespace: str | None, **_: Any) -> bool:
        return not excluded_namespace(namespace or "")

    @kopf.on.event(API_GROUP, GROUP_VERSION, "executions", when=served, registry=registry)
    async def execution_event(
        type: str, body: kopf.Body, name: str, namespace: str | None, **_: Any
    ) -> None:
        assert namespace is not None
        raw = dict(body)
        phase = (body.get("status") or {}).get("phase")
        cron = body.metadata.labels.get(CRON_LABEL)
        if cron and (type == "DELETED" or phase in FINISHED_PHASES):
            crons.poke(namespace, cron)
        cancelled_in_queue = phase == QUEUED and (body.get("spec") or {}).get("cancel")
        if type == "DELETED" or phase in FINISHED_PHASES or cancelled_in_queue:
            # A slot freed, or a queued one was cancelled: the queue looks again.
            drivers.context.admission.released(namespace)
        if type == "DELETED":
            drivers.forget(namespace, name)
            return
        parent = owner_name(raw)  # a child's parent: labels hold names only hashed
        if parent and phase in FINISHED_PHASES:
            drivers.deliver(namespace, parent, ChildChanged(raw))
        if phase in FINISHED_PHASES:
            drivers.deliver(namespace, name)  # its driver only schedules the TTL clean-up
        else:
            drivers.deliver(namespace, name, ExecutionChanged(raw))

    def job_changed(type: str | None, raw: dict[str, Any]) -> None:
        namespace = raw["metadata"]["namespace"]
        if not served(namespace):
            return
        deleted = type == "DELETED"
        owner = owner_name(raw)
        if job_finished(raw) or deleted:
            drivers.context.slots.release(namespace, raw["metadata"]["name"])
            if owner is not None:
                drivers.deliver(namespace, owner, JobChanged(raw, deleted=deleted))
        elif owner is not None and job_without_pod(raw):
            # Its pod was refused (a quota, admission): the cause is in the Job's Events.
            drivers.deliver(namespace, owner, JobWithoutPod(raw))

    def pod_changed(type: str | None, raw: dict[str, Any]) -> None:
        # A step's result is in its pod the moment its container ends, ~1 s before the Job
        # controller marks the Job Complete: acting on the pod starts the next step sooner.
        # A pod being deleted is left to its Job's events, which say why it ended. A pod is
        # owned by its Job: the Job's pod template names the Execution in an annotation. A
        # container the kubelet refuses to start (CreateContainerConfigError...) ends the step.
        metadata = raw["metadata"]
        namespace = metadata["namespace"]
        if not served(namespace):
            return
        deleting = type == "DELETED" or metadata.get("deletionTimestamp")
        execution = (metadata.get("annotations") or {}).get(EXECUTION_NAME_ANNOTATION)
        ended = container_terminated(raw) is not None or container_refused(raw) is not None
        if execution and not deleting and ended:
            drivers.deliver(namespace, execution, PodEnded(raw))
        elif execution and not deleting and (stuck_cause(raw) or container_started(raw)):
            # A pod that cannot start is told at once; one that starts clears what was told.
            drivers.deliver(namespace, execution, PodWaiting(raw))

    step_changes: dict[str, StepChange] = {"jobs": job_changed, "pods": pod_changed}
    for plural, changed in step_changes.items() if steps_by_kopf else ():
        follow_step(registry, plural, changed)

    def follow(plural: str, controller: PlaybookController | CronController) -> None:
        """Hand each change of these objects to a controller that keeps its own task each."""

        @kopf.on.event(
            API_GROUP, GROUP_VERSION, plural, id=f"{plural}_event", when=served, registry=registry
        )
        async def object_event(
            type: str, body: kopf.Body, name: str, namespace: str | None, **_: Any
        ) -> None:
            assert namespace is not None
            if type == "DELETED":
                controller.deleted(namespace, name)
            else:
                controller.changed(dict(body))

    follow("playbooks", playbooks)
    follow("cronplaybooks", crons)

    @kopf.on.probe(id="executions", registry=registry)
    def active_executions(**_: Any) -> int:
        return len(drivers)

    return step_changes


def follow_step(registry: kopf.OperatorRegistry, plural: str, changed: StepChange) -> None:
    """Hand each change of step Jobs or pods that kopf watches to `changed`."""

    @kopf.on.event(
        "batch" if plural == "jobs" else "",
        "v1",
        plural,
        id=f"{plural}_event",
        labels={EXECUTION_LABEL: kopf.PRESENT},
        registry=registry,
    )
    async def step_event(type: str, body: kopf.Body, **_: Any) -> None:
        changed(type, dict(body))
