"""CronPlaybook decisions without a cluster: when a schedule is due (the Kubernetes CronJob rules
for missed runs), and what the controller does about it given the Executions it owns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from noetl.kube.cron import CRON_LABEL, plan_cron, scheduled_name
from noetl.kube.schedule import InvalidSchedule, Schedule, due
from noetl.kube.times import epoch_seconds, timestamp


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


HOURLY = Schedule.parse("0 * * * *")


@pytest.mark.parametrize(
    ("last", "now", "deadline", "scheduled", "next_at"),
    [
        # nothing due yet
        ("2026-01-01T10:00:00", "2026-01-01T10:30:00", None, None, "2026-01-01T11:00:00"),
        # due exactly now
        (
            "2026-01-01T10:00:00",
            "2026-01-01T11:00:00",
            None,
            "2026-01-01T11:00:00",
            "2026-01-01T12:00:00",
        ),
        # a little late (the operator was busy): still that run
        (
            "2026-01-01T10:00:00",
            "2026-01-01T11:00:07",
            60,
            "2026-01-01T11:00:00",
            "2026-01-01T12:00:00",
        ),
        # an outage over three due times: one catch-up run, the most recent
        (
            "2026-01-01T10:00:00",
            "2026-01-01T13:20:00",
            None,
            "2026-01-01T13:00:00",
            "2026-01-01T14:00:00",
        ),
        # ... only within the starting deadline
        (
            "2026-01-01T10:00:00",
            "2026-01-01T13:20:00",
            1800,
            "2026-01-01T13:00:00",
            "2026-01-01T14:00:00",
        ),
        ("2026-01-01T10:00:00", "2026-01-01T13:20:00", 600, None, "2026-01-01T14:00:00"),
        # already run for the latest time
        ("2026-01-01T13:00:00", "2026-01-01T13:20:00", None, None, "2026-01-01T14:00:00"),
    ],
)
def test_what_is_due(
    last: str, now: str, deadline: int | None, scheduled: str | None, next_at: str
) -> None:
    decision = due(HOURLY, at(last), at(now), deadline)
    assert decision.scheduled == (at(scheduled) if scheduled else None)
    assert decision.next_at == at(next_at)


def test_a_missed_run_past_its_deadline_is_reported() -> None:
    decision = due(HOURLY, at("2026-01-01T10:00:00"), at("2026-01-01T13:20:00"), 600)
    assert decision.too_late == at("2026-01-01T13:00:00")


def test_seconds_and_time_zones() -> None:
    every_five = Schedule.parse("*/5 * * * * *")
    assert every_five.next_after(at("2026-01-01T10:00:01")) == at("2026-01-01T10:00:05")
    assert every_five.latest_at_or_before(at("2026-01-01T10:00:05")) == at("2026-01-01T10:00:05")
    paris = Schedule.parse("0 9 * * *", "Europe/Paris")
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    assert paris.next_after(at("2026-01-15T00:00:00")) == at("2026-01-15T08:00:00")
    assert paris.next_after(at("2026-07-15T00:00:00")) == at("2026-07-15T07:00:00")


@pytest.mark.parametrize(
    ("schedule", "zone", "complaint"),
    [
        ("* * *", None, "spec.schedule: '\\* \\* \\*' has 3 fields"),
        ("61 * * * *", None, "spec.schedule: '61 \\* \\* \\* \\*' is not a cron expression"),
        ("* * * * *", "Mars/Olympus", "spec.timeZone: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_schedules_are_named(schedule: str, zone: str | None, complaint: str) -> None:
    with pytest.raises(InvalidSchedule, match=complaint):
        Schedule.parse(schedule, zone)


# The controller's plan --------------------------------------------------------------------------

CREATED = "2026-01-01T09:30:00Z"


def cron(last: str | None = None, **spec: Any) -> dict[str, Any]:
    status = {"lastScheduleTime": last} if last else {}
    return {
        "kind": "CronPlaybook",
        "metadata": {
            "name": "nightly",
            "namespace": "ns",
            "uid": "u-1",
            "generation": 2,
            "creationTimestamp": CREATED,
        },
        "spec": {"schedule": "0 * * * *", "playbookRef": {"name": "hello"}, **spec},
        "status": status,
    }


def execution(scheduled: str, phase: str | None = None, finished: str | None = None) -> dict:
    status = {"phase": phase, "finishedAt": finished} if phase else {}
    return {
        "metadata": {"name": scheduled_name("nightly", at(scheduled)), "labels": {}},
        "spec": {"playbookRef": {"name": "hello"}},
        "status": status,
    }


def test_a_due_run_creates_its_execution_with_a_deterministic_name() -> None:
    plan = plan_cron(cron(workload={"x": 1}), [], at("2026-01-01T10:00:03"))
    assert plan.create is not None
    scheduled = at("2026-01-01T10:00:00")
    assert plan.create["metadata"]["name"] == f"nightly-{int(scheduled)}"
    assert plan.create["metadata"]["labels"][CRON_LABEL] == "nightly"
    assert plan.create["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert plan.create["spec"] == {"playbookRef": {"name": "hello"}, "workload": {"x": 1}}
    assert plan.status["lastScheduleTime"] == "2026-01-01T10:00:00Z"
    assert plan.status["active"] == [{"name": f"nightly-{int(scheduled)}"}]
    assert plan.status["nextScheduleTime"] == "2026-01-01T11:00:00Z"
    assert plan.next_at is not None and plan.next_at <= at("2026-01-01T11:00:00")


def test_an_execution_created_before_a_crash_is_recorded_not_created_again() -> None:
    running = execution("2026-01-01T10:00:00", "Running")
    plan = plan_cron(cron(concurrencyPolicy="Forbid"), [running], at("2026-01-01T10:00:09"))
    assert plan.create is None
    assert plan.status["lastScheduleTime"] == "2026-01-01T10:00:00Z"
    assert plan.status["activeCount"] == 1


@pytest.mark.parametrize(
    ("policy", "creates", "cancels"),
    [("Allow", True, []), ("Forbid", False, []), ("Replace", True, ["previous"])],
)
def test_concurrency_policies(policy: str, creates: bool, cancels: list[str]) -> None:
    previous = execution("2026-01-01T10:00:00", "Running")
    previous["metadata"]["name"] = "previous"
    plan = plan_cron(
        cron("2026-01-01T10:00:00Z", concurrencyPolicy=policy),
        [previous],
        at("2026-01-01T11:00:01"),
    )
    assert (plan.create is not None) == creates
    assert plan.cancel == cancels
    # A skipped run is not recorded: it is still due when the running one ends.
    assert plan.status["lastScheduleTime"] == (
        "2026-01-01T11:00:00Z" if creates else "2026-01-01T10:00:00Z"
    )
    assert [reason for reason, _, _ in plan.events] == ([] if creates else ["Skipped"])


def test_suspended_starts_nothing() -> None:
    plan = plan_cron(cron(suspend=True), [], at("2026-01-01T12:00:00"))
    assert plan.create is None
    ready = plan.status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Suspended")


def test_history_limits_delete_the_oldest_finished() -> None:
    runs = [
        execution(f"2026-01-01T0{h}:00:00", "Succeeded", f"2026-01-01T0{h}:00:30Z")
        for h in range(1, 6)
    ] + [execution(f"2026-01-01T0{h}:30:00", "Failed", f"2026-01-01T0{h}:31:00Z") for h in (1, 2)]
    plan = plan_cron(
        cron("2026-01-01T09:00:00Z", successfulHistoryLimit=2, failedHistoryLimit=1),
        runs,
        at("2026-01-01T09:10:00"),
    )
    names = [run["metadata"]["name"] for run in runs]
    assert plan.delete == [*names[:3], names[5]]
    assert plan.status["lastSuccessfulTime"] == "2026-01-01T05:00:30Z"


def test_an_invalid_schedule_is_a_false_ready_condition() -> None:
    plan = plan_cron(cron(schedule="every day"), [], at("2026-01-01T12:00:00"))
    assert plan.create is None
    (ready,) = plan.status["conditions"]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "False",
        "InvalidSchedule",
        2,
    )
    assert "spec.schedule" in ready["message"]


def test_conditions_keep_their_transition_time_until_their_status_flips() -> None:
    first = plan_cron(cron(), [], at("2026-01-01T10:00:00"))
    body = cron("2026-01-01T10:00:00Z")
    body["status"] = first.status
    later = plan_cron(
        body, [execution("2026-01-01T10:00:00", "Running")], at("2026-01-01T10:20:00")
    )
    ready_then, active_then = first.status["conditions"]
    ready_now, active_now = later.status["conditions"]
    assert ready_now["lastTransitionTime"] == ready_then["lastTransitionTime"]
    assert active_now["lastTransitionTime"] == active_then["lastTransitionTime"]  # True both times
    body["status"] = later.status
    idle = plan_cron(
        body,
        [execution("2026-01-01T10:00:00", "Succeeded", "2026-01-01T10:25:00Z")],
        at("2026-01-01T10:30:00"),
    )
    assert idle.status["conditions"][1]["status"] == "False"
    assert epoch_seconds(idle.status["conditions"][1]["lastTransitionTime"]) == at(
        "2026-01-01T10:30:00"
    )
    assert timestamp(at("2026-01-01T10:30:00")) == "2026-01-01T10:30:00Z"


# The controller against an in-memory API server ------------------------------------------------


async def test_the_controller_creates_the_due_execution_and_says_when_it_cannot():
    from kubernetes.client.exceptions import ApiException

    from noetl.kube.cronplaybooks import CronController
    from tests.kube.fake_api import FakeClock, FakeKubeApi

    api = FakeKubeApi()
    body = cron()
    body["metadata"]["namespace"] = "team"
    api.put(body)
    clock = FakeClock(at("2026-01-01T10:00:02"))
    controller = CronController(api, clock)  # type: ignore[arg-type]
    api.fail("create", "Execution", ApiException(status=403, reason="Forbidden"))
    await controller._round(("team", "nightly"))
    ready = api.get("CronPlaybook", "team", "nightly")["status"]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "FailedCreate")
    assert ready["message"].startswith("cannot create execution nightly-1767261600: Forbidden")
    assert api.of_kind("Execution") == []

    await controller._round(("team", "nightly"))  # the API server takes it now
    (created,) = api.of_kind("Execution")
    assert created["metadata"]["name"] == "nightly-1767261600"
    status = api.get("CronPlaybook", "team", "nightly")["status"]
    assert status["lastScheduleTime"] == "2026-01-01T10:00:00Z"
    assert status["conditions"][0]["status"] == "True"
    await controller._round(("team", "nightly"))  # nothing new is due: nothing created twice
    assert len(api.of_kind("Execution")) == 1
