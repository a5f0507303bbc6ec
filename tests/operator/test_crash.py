"""The operator killed (SIGKILL) in the middle of executions (and of finally steps): it carries on,
loses no step and starts none twice.

Kills are placed by what the cluster shows, not by the clock: after the operator has started the
2nd, 3rd, 4th and 5th Job of a chain; each time it is started again only once every Job there is
has ended, so that work finished while nobody watched. The exact crash windows between two writes
of one step are chosen one by one in tests/kube/test_driver.py, against an in-memory API.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import OperatorProcess, Resources

pytestmark = pytest.mark.cluster


def chain(name: str, steps: int, seconds: float) -> dict[str, Any]:
    workflow: list[dict[str, Any]] = [{"step": "start", "next": [{"step": "s0"}]}]
    for i in range(steps):
        step: dict[str, Any] = {
            "step": f"s{i}",
            "tool": "shell",
            "args": {"command": f"sleep {seconds}; echo {i}"},
        }
        if i + 1 < steps:
            step["next"] = [{"step": f"s{i + 1}"}]
        workflow.append(step)
    return {
        "kind": "Playbook",
        "metadata": {"name": name},
        "spec": {"workflow": workflow, "output": f"{{{{ s{steps - 1}.stdout }}}}"},
    }


def fan(name: str, width: int) -> dict[str, Any]:
    branches = [f"b{i}" for i in range(width)]
    workflow: list[dict[str, Any]] = [{"step": "start", "next": [{"step": b} for b in branches]}]
    workflow += [
        {
            "step": b,
            "tool": "shell",
            "args": {"command": "sleep 1; echo x"},
            "next": [{"step": "join"}],
        }
        for b in branches
    ]
    workflow.append({"step": "join", "tool": "shell", "args": {"command": "echo joined"}})
    return {"kind": "Playbook", "metadata": {"name": name}, "spec": {"workflow": workflow}}


def until(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the cluster did not get there"
        time.sleep(0.2)  # polling the API server for a condition


def ended(job: Any) -> bool:
    return bool(job.status and (job.status.succeeded or job.status.failed))


def test_killed_operators_lose_nothing_and_start_nothing_twice(
    kube_cluster: Any, isolated: Resources, tmp_path: Path
):
    operator = OperatorProcess(
        kube_cluster.kubeconfig, tmp_path / "operator.log", {"NOETL_NAMESPACES": isolated.namespace}
    )
    isolated.create("playbooks", chain("chain", 6, 1.0))
    isolated.create("playbooks", fan("fan", 5))
    operator.start()
    isolated.execute("chain", "chain")
    isolated.execute("fan", "fan")
    for jobs_started in (2, 3, 4, 5):
        until(lambda n=jobs_started: len(isolated.jobs("chain")) >= n)
        operator.kill()  # no goodbye: Jobs keep finishing while nobody watches
        until(lambda: all(ended(job) for job in [*isolated.jobs("chain"), *isolated.jobs("fan")]))
        operator.start()
    chain_status = isolated.wait_finished("chain", timeout=120)
    fan_status = isolated.wait_finished("fan", timeout=120)
    operator.stop()
    assert (chain_status["phase"], chain_status["result"]) == ("Succeeded", "5")
    assert fan_status["phase"] == "Succeeded"
    for name, steps in (("chain", 6), ("fan", 6)):
        jobs = [job.metadata.labels["noetl.io/step"] for job in isolated.jobs(name)]
        assert len(jobs) == steps, sorted(jobs)
        assert Counter(jobs).most_common(1)[0][1] == 1  # one Job per step: none started twice
        assert all(job.metadata.name.endswith("-a1") for job in isolated.jobs(name))


def test_an_operator_killed_while_finally_steps_run_finishes_them_once(
    kube_cluster: Any, isolated: Resources, tmp_path: Path
):
    operator = OperatorProcess(
        kube_cluster.kubeconfig, tmp_path / "operator.log", {"NOETL_NAMESPACES": isolated.namespace}
    )
    body = chain("tidy", 1, 0.0)
    body["spec"]["workflow"][1]["args"]["command"] = "echo broken >&2; exit 3"
    body["spec"]["finally"] = [
        {"step": "f0", "tool": "shell", "args": {"command": "sleep 1"}, "next": [{"step": "f1"}]},
        {"step": "f1", "tool": "shell", "args": {"command": "echo {{ execution.phase }}"}},
    ]
    isolated.create("playbooks", body)
    operator.start()
    isolated.execute("tidy", "tidy")
    until(
        lambda: any(job.metadata.labels["noetl.io/step"] == "f0" for job in isolated.jobs("tidy"))
    )
    operator.kill()  # the workflow has failed; its finally steps are under way
    until(lambda: all(ended(job) for job in isolated.jobs("tidy")))
    operator.start()
    status = isolated.wait_finished("tidy", timeout=120)
    operator.stop()
    assert (status["phase"], status["error"]) == (
        "Failed",
        "step 's0' failed: command exited with code 3: broken",
    )
    assert (status["steps"]["f0"]["phase"], status["steps"]["f1"]["phase"]) == (
        "Succeeded",
        "Succeeded",
    )
    steps = Counter(job.metadata.labels["noetl.io/step"] for job in isolated.jobs("tidy"))
    assert steps == {"s0": 1, "f0": 1, "f1": 1}
