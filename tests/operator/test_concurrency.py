"""Concurrency across runs on a real API server: a playbook's `max` with each policy, a semaphore
shared by two playbooks, priority in the queue, and an operator killed with Executions queued."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from noetl.kube.times import epoch_seconds
from tests.operator.harness import OperatorProcess, Resources
from tests.operator.test_crash import until

pytestmark = pytest.mark.cluster


def sleeper(name: str, seconds: int, **concurrency: Any) -> dict[str, Any]:
    workflow = [
        {"step": "start", "next": [{"step": "work"}]},
        {"step": "work", "tool": "shell", "args": {"command": f"sleep {seconds}; echo done"}},
    ]
    spec = {"workflow": workflow, "concurrency": concurrency}
    return {"kind": "Playbook", "metadata": {"name": name}, "spec": spec}


def phase(resources: Resources, name: str) -> str | None:
    return (resources.get("executions", name).get("status") or {}).get("phase")


def never_overlap(statuses: list[dict[str, Any]]) -> None:
    spans = sorted(
        (epoch_seconds(s["startedAt"]), epoch_seconds(s["finishedAt"])) for s in statuses
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two ran at once: {spans}"


def test_queue_by_priority_across_an_operator_restart(
    kube_cluster: Any, isolated: Resources, tmp_path: Path
):
    operator = OperatorProcess(
        kube_cluster.kubeconfig, tmp_path / "operator.log", {"NOETL_NAMESPACES": isolated.namespace}
    )
    isolated.create("playbooks", sleeper("serial", 2, max=1))
    for name, priority in (("q0", 0), ("q1", 0), ("q2", 5), ("q3", 0)):
        isolated.execute(name, "serial", priority=priority)
    operator.start()
    try:
        until(lambda: [phase(isolated, n) for n in ("q0", "q1", "q2", "q3")].count("Queued") == 3)
        until(lambda: phase(isolated, "q2") == "Running")  # the highest priority went first
        queued = isolated.get("executions", "q3")["status"]
        # Written when it was last decided on (perhaps before q2 started): what it waits for.
        assert queued["message"].startswith("waiting for playbook serial: ")
        admitted = {c["type"]: c for c in queued["conditions"]}["Admitted"]
        assert (admitted["status"], admitted["reason"]) == ("False", "Queued")
        operator.kill()  # with three queued
        operator.start()
        statuses = {n: isolated.wait_finished(n) for n in ("q0", "q1", "q2", "q3")}
    finally:
        operator.stop()
    assert {s["phase"] for s in statuses.values()} == {"Succeeded"}
    never_overlap(list(statuses.values()))
    order = sorted(statuses, key=lambda n: statuses[n]["startedAt"])
    assert order == ["q2", "q0", "q1", "q3"]


def test_a_semaphore_is_shared_by_two_playbooks(resources: Resources):
    resources.create("playbooks", sleeper("load", 2, semaphore={"name": "db", "max": 1}))
    resources.create("playbooks", sleeper("report", 2, semaphore={"name": "db", "max": 1}))
    for name, playbook in (("l1", "load"), ("r1", "report"), ("l2", "load")):
        resources.execute(name, playbook)
    statuses = [resources.wait_finished(n) for n in ("l1", "r1", "l2")]
    assert {s["phase"] for s in statuses} == {"Succeeded"}
    never_overlap(statuses)


def test_forbid_fails_the_extra_execution(resources: Resources):
    resources.create("playbooks", sleeper("single", 30, max=1, policy="Forbid"))
    resources.execute("f1", "single")
    until(lambda: phase(resources, "f1") == "Running")
    resources.execute("f2", "single")
    status = resources.wait_finished("f2")
    assert status["phase"] == "Failed"
    assert status["error"] == "playbook single: 1 of 1 running (concurrency.policy Forbid)"
    assert status["conditions"][0]["reason"] == "ConcurrencyLimit"
    assert phase(resources, "f1") == "Running"


def test_replace_cancels_the_running_one(resources: Resources):
    resources.create("playbooks", sleeper("latest", 30, max=1, policy="Replace"))
    resources.execute("old", "latest")
    until(lambda: phase(resources, "old") == "Running")
    resources.execute("new", "latest")
    assert resources.wait_finished("old")["phase"] == "Cancelled"
    until(lambda: phase(resources, "new") == "Running")


def test_cancelling_a_queued_execution_ends_it(resources: Resources):
    resources.create("playbooks", sleeper("busy", 30, max=1))
    resources.execute("running", "busy")
    until(lambda: phase(resources, "running") == "Running")
    resources.execute("waiting", "busy")
    until(lambda: phase(resources, "waiting") == "Queued")
    resources.cancel("waiting")
    status = resources.wait_finished("waiting")
    assert (status["phase"], status["error"]) == ("Cancelled", "cancelled while queued")
    assert resources.jobs("waiting") == []
