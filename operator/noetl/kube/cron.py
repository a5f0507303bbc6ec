"""What a CronPlaybook should do now, decided from what the API server shows (pure).

`plan_cron(cron, executions, now)` takes the CronPlaybook, the Executions it owns and the time,
and returns the plan: the Execution to create (if a run is due), those to cancel (Replace) or
delete (past the history limits), the status to write and when to look again. Nothing is
remembered between calls, so a restarted operator decides the same from the same objects.

A scheduled Execution is named `<cronplaybook>-<unix time of the schedule>`: creating it twice
(a crash after the create, before the status said so) meets AlreadyExists, and the plan sees the
Execution exists and only records it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from noetl.engine.state import FINISHED_PHASES
from noetl.kube.conditions import ConditionStatus, condition
from noetl.kube.names import dns_label
from noetl.kube.schedule import InvalidSchedule, Schedule, due
from noetl.kube.times import epoch_seconds, timestamp
from noetl.playbook.models import API_VERSION, CronPlaybookSpec

CRON_LABEL = "noetl.io/cronplaybook"
SCHEDULED_ANNOTATION = "noetl.io/scheduled-time"
RECHECK_SECONDS = 300.0  # a look now and then even when nothing is due (a suspended cron)


@dataclass
class CronPlan:
    create: dict[str, Any] | None = None
    cancel: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    next_at: float | None = None
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # reason, message, warning


def scheduled_name(cron: str, scheduled: float) -> str:
    return dns_label(cron, int(scheduled), limit=253)


def _phase(execution: dict[str, Any]) -> str | None:
    phase = (execution.get("status") or {}).get("phase")
    return str(phase) if phase is not None else None


def _finished_at(execution: dict[str, Any]) -> float:
    finished = (execution.get("status") or {}).get("finishedAt")
    return epoch_seconds(finished) if finished else 0.0


def scheduled_execution(cron: dict[str, Any], spec: CronPlaybookSpec, at: float) -> dict[str, Any]:
    metadata = cron["metadata"]
    body: dict[str, Any] = {"workload": spec.workload}
    if spec.playbook_ref is not None:
        body["playbookRef"] = {"name": spec.playbook_ref.name}
    else:
        body["playbook"] = cron["spec"]["playbook"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Execution",
        "metadata": {
            "name": scheduled_name(metadata["name"], at),
            "namespace": metadata["namespace"],
            "labels": {CRON_LABEL: metadata["name"], "app.kubernetes.io/part-of": "noetl"},
            "annotations": {SCHEDULED_ANNOTATION: timestamp(at)},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "CronPlaybook",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": body,
    }


def _past_limits(executions: list[dict[str, Any]], spec: CronPlaybookSpec) -> list[str]:
    """Finished Executions beyond the history limits, oldest first."""
    doomed = []
    for phases, limit in (
        ({"Succeeded"}, spec.successful_history_limit),
        (set(FINISHED_PHASES) - {"Succeeded"}, spec.failed_history_limit),
    ):
        finished = sorted((e for e in executions if _phase(e) in phases), key=_finished_at)
        doomed += [e["metadata"]["name"] for e in finished[: max(0, len(finished) - limit)]]
    return doomed


def plan_cron(cron: dict[str, Any], executions: list[dict[str, Any]], now: float) -> CronPlan:
    metadata, old = cron["metadata"], cron.get("status") or {}
    generation = metadata.get("generation")
    previous = old.get("conditions")
    plan = CronPlan()
    try:
        spec = CronPlaybookSpec.model_validate(cron.get("spec") or {})
        schedule = Schedule.parse(spec.schedule, spec.time_zone)
    except (ValidationError, InvalidSchedule) as error:
        message = str(error)
        plan.status = {
            "observedGeneration": generation,
            "conditions": [
                condition("Ready", "False", "InvalidSchedule", message, generation, now, previous)
            ],
        }
        plan.events.append(("InvalidSchedule", message, True))
        return plan

    names = {e["metadata"]["name"] for e in executions}
    active = [e for e in executions if _phase(e) not in FINISHED_PHASES]
    since = old.get("lastScheduleTime") or metadata.get("creationTimestamp")
    last_scheduled = epoch_seconds(since) if since else now
    scheduled: float | None = None
    if not spec.suspend:
        decision = due(schedule, last_scheduled, now, spec.starting_deadline_seconds)
        plan.next_at = decision.next_at
        scheduled = decision.scheduled
        if decision.too_late is not None and decision.too_late > last_scheduled:
            plan.events.append(
                (
                    "MissedSchedule",
                    f"the run of {timestamp(decision.too_late)} was missed by more than "
                    f"startingDeadlineSeconds ({spec.starting_deadline_seconds})",
                    True,
                )
            )
    if scheduled is not None:
        name = scheduled_name(metadata["name"], scheduled)
        others = [e["metadata"]["name"] for e in active if e["metadata"]["name"] != name]
        if name not in names and others and spec.concurrency_policy == "Forbid":
            plan.events.append(
                ("Skipped", f"a run is due but {others[0]} still runs (Forbid)", False)
            )
            scheduled = None  # due again when that one ends, if still within the deadline
        else:
            if name not in names:
                plan.create = scheduled_execution(cron, spec, scheduled)
            if spec.concurrency_policy == "Replace":
                plan.cancel = [
                    e["metadata"]["name"]
                    for e in active
                    if e["metadata"]["name"] != name and not (e.get("spec") or {}).get("cancel")
                ]

    plan.delete = _past_limits(executions, spec)
    running = sorted(e["metadata"]["name"] for e in active)
    if plan.create is not None:
        running.append(plan.create["metadata"]["name"])
    succeeded = [
        _finished_at(e)
        for e in executions
        if _phase(e) == "Succeeded" and (e.get("status") or {}).get("finishedAt")
    ]
    last_success = max(succeeded) if succeeded else None
    ready_status: ConditionStatus = "True"
    reason, message = (
        ("Suspended", "spec.suspend is true")
        if spec.suspend
        else (
            "Scheduled",
            f"next run at {timestamp(plan.next_at)}",
        )
    )
    plan.status = {
        "observedGeneration": generation,
        "lastScheduleTime": timestamp(scheduled) if scheduled else old.get("lastScheduleTime"),
        "lastSuccessfulTime": timestamp(last_success) or old.get("lastSuccessfulTime"),
        "nextScheduleTime": timestamp(plan.next_at),
        "active": [{"name": n} for n in running] or None,
        "activeCount": len(running),
        "conditions": [
            condition("Ready", ready_status, reason, message, generation, now, previous),
            condition(
                "Active",
                "True" if running else "False",
                "Running" if running else "Idle",
                f"{len(running)} running" if running else "no execution runs",
                generation,
                now,
                previous,
            ),
        ],
    }
    if plan.next_at is None or plan.next_at - now > RECHECK_SECONDS:
        plan.next_at = now + RECHECK_SECONDS
    return plan
