"""CronPlaybooks on a real API server: Executions started on schedule (seconds schedules keep the
tests short), each concurrency policy, suspend, history limits, and an operator killed across
due times that catches up with one run only.

Waiting for a schedule time to pass is what these tests are about, so they poll the API server
for what the operator did; what they assert is what was created, never how fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from noetl.kube.cron import CRON_LABEL
from noetl.kube.times import epoch_seconds
from tests.operator.harness import OperatorProcess, Resources

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ROUTING_ONLY = {
    "kind": "Playbook",
    "metadata": {"name": "tick"},
    "spec": {"workflow": [{"step": "start", "next": [{"step": "end"}]}, {"step": "end"}]},
}


def sleeper(seconds: int) -> dict[str, Any]:
    command = f"sleep {seconds}; echo done"
    workflow = [
        {"step": "start", "next": [{"step": "wait"}]},
        {"step": "wait", "tool": "shell", "args": {"command": command}},
    ]
    return {"kind": "Playbook", "metadata": {"name": "sleeper"}, "spec": {"workflow": workflow}}


def cron(name: str, playbook: str, schedule: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "CronPlaybook",
        "metadata": {"name": name},
        "spec": {"schedule": schedule, "playbookRef": {"name": playbook}, **spec},
    }


def scheduled(resources: Resources, name: str) -> list[dict[str, Any]]:
    """The Executions of a CronPlaybook, oldest schedule first."""
    found: Any = resources.custom.list_namespaced_custom_object(
        "noetl.io",
        "v1alpha1",
        resources.namespace,
        "executions",
        label_selector=f"{CRON_LABEL}={name}",
    )
    return sorted(found["items"], key=lambda e: int(e["metadata"]["name"].rsplit("-", 1)[1]))


def schedule_time(execution: dict[str, Any]) -> int:
    return int(execution["metadata"]["name"].rsplit("-", 1)[1])


def until(condition: Callable[[], Any], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "the cluster did not get there"
        time.sleep(0.3)  # polling the API server
    return value


def phase(execution: dict[str, Any]) -> str | None:
    return (execution.get("status") or {}).get("phase")


def test_the_example_runs_on_its_schedule_and_keeps_its_history(resources: Resources):
    resources.apply_playbook_file(PLAYBOOKS / "hello.yaml")
    example = yaml.safe_load((PLAYBOOKS / "schedules" / "hello-hourly.yaml").read_text())
    example["spec"]["schedule"] = "*/2 * * * * *"  # every 2 s, not every hour
    example["spec"]["successfulHistoryLimit"] = 2
    resources.create("cronplaybooks", example)
    runs = until(
        lambda: [e for e in scheduled(resources, "hello-hourly") if phase(e) == "Succeeded"]
    )
    assert runs[0]["status"]["result"] == "Hello, Oslo!"
    assert schedule_time(runs[0]) % 2 == 0  # named after its schedule time
    # Three more runs go by; only the two latest succeeded ones are kept.
    first = schedule_time(runs[0])
    until(lambda: schedule_time(scheduled(resources, "hello-hourly")[-1]) >= first + 8)

    def pruned() -> bool:
        kept = scheduled(resources, "hello-hourly")
        succeeded = [e for e in kept if phase(e) == "Succeeded"]
        return len(succeeded) <= 2 and first not in [schedule_time(e) for e in kept]

    until(pruned)  # the first run is deleted once younger ones succeeded
    # The status is written after the deletions of the same look: wait for it.
    status = resources.wait(
        "cronplaybooks",
        "hello-hourly",
        lambda cpb: (cpb.get("status") or {}).get("lastSuccessfulTime"),
    )["status"]
    assert status["lastSuccessfulTime"] and status["lastScheduleTime"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "True",
        "Scheduled",
        1,
    )
    assert ready["lastTransitionTime"]

    # Suspended, it starts nothing more.
    resources.custom.patch_namespaced_custom_object(
        "noetl.io",
        "v1alpha1",
        resources.namespace,
        "cronplaybooks",
        "hello-hourly",
        {"spec": {"suspend": True}},
    )
    status = resources.wait(
        "cronplaybooks",
        "hello-hourly",
        lambda cpb: (cpb.get("status") or {}).get("observedGeneration") == 2,
    )["status"]
    assert {c["type"]: c for c in status["conditions"]}["Ready"]["reason"] == "Suspended"
    last = status["lastScheduleTime"]
    time.sleep(4)  # two schedule times pass
    assert resources.get("cronplaybooks", "hello-hourly")["status"]["lastScheduleTime"] == last


@pytest.mark.parametrize("policy", ["Allow", "Forbid", "Replace"])
def test_concurrency_policies(resources: Resources, policy: str):
    resources.create("playbooks", sleeper(60))
    resources.create(
        "cronplaybooks", cron("slow", "sleeper", "*/2 * * * * *", concurrencyPolicy=policy)
    )
    first = until(lambda: [e for e in scheduled(resources, "slow") if phase(e) == "Running"])[0]
    if policy == "Forbid":
        # The next due times are skipped while the first runs, and said so once.
        until(lambda: [e for e in resources.events("slow") if e.reason == "Skipped"])
        assert [e["metadata"]["name"] for e in scheduled(resources, "slow")] == [
            first["metadata"]["name"]
        ]
        assert resources.get("cronplaybooks", "slow")["status"]["activeCount"] == 1
    elif policy == "Allow":
        running = until(
            lambda: len([e for e in scheduled(resources, "slow") if phase(e) == "Running"]) >= 2
        )
        assert running
    else:
        # The next run replaces the first, which ends Cancelled.
        until(lambda: len(scheduled(resources, "slow")) >= 2)
        name = first["metadata"]["name"]
        resources.wait("executions", name, lambda e: (e.get("spec") or {}).get("cancel") is True)
        assert resources.wait_finished(name)["phase"] == "Cancelled"
        resources.wait_for_events("slow", "Replaced")


def test_an_invalid_schedule_is_reported(resources: Resources):
    resources.create("playbooks", ROUTING_ONLY)
    resources.create("cronplaybooks", cron("bad", "tick", "every day at noon"))
    status = resources.wait("cronplaybooks", "bad", lambda cpb: cpb.get("status"))["status"]
    (ready,) = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert "spec.schedule" in ready["message"]
    assert scheduled(resources, "bad") == []


def test_an_operator_down_across_due_times_runs_the_latest_once(
    kube_cluster: Any, isolated: Resources, tmp_path: Path
):
    operator = OperatorProcess(
        kube_cluster.kubeconfig, tmp_path / "operator.log", {"NOETL_NAMESPACES": isolated.namespace}
    )
    isolated.create("playbooks", ROUTING_ONLY)
    isolated.create(
        "cronplaybooks",
        cron(
            "beat",
            "tick",
            "*/2 * * * * *",
            startingDeadlineSeconds=3600,
            successfulHistoryLimit=100,
        ),
    )
    operator.start()
    try:
        until(lambda: scheduled(isolated, "beat"))
        operator.kill()
        before = {schedule_time(e) for e in scheduled(isolated, "beat")}
        last = max(before)
        time.sleep(7)  # at least three due times pass with no operator
        restarted_at = time.time()
        operator.start()
        until(lambda: max(schedule_time(e) for e in scheduled(isolated, "beat")) > last)
        times = {schedule_time(e) for e in scheduled(isolated, "beat")}
        missed = [t for t in range(last + 2, int(restarted_at) - 1, 2)]
        assert len(missed) >= 2
        # Of the missed times only the latest (after the last of these) got a run.
        assert times & set(missed) == set()
        assert min(times - before) > int(restarted_at) - 2
        # The status is written after the Execution is created: wait for it to say so.
        until(
            lambda: (
                epoch_seconds(isolated.get("cronplaybooks", "beat")["status"]["lastScheduleTime"])
                >= min(times - before)
            )
        )
    finally:
        operator.stop()
