"""Suspend, resume and approvals on a cluster, through `noetl suspend`/`resume` and the spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import Resources
from tests.operator.test_cli_cluster import noetl

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def _phase(phase: str) -> Any:
    return lambda obj: (obj.get("status") or {}).get("phase") == phase


def test_an_execution_created_suspended_starts_nothing_until_resumed(
    kube_cluster: Any, resources: Resources
):
    resources.apply_playbook_file(PLAYBOOKS / "hello.yaml")
    resources.execute("held", "hello", suspend=True)
    held = resources.wait("executions", "held", _phase("Suspended"))
    assert held["status"]["conditions"][0]["status"] == "Unknown"
    assert resources.jobs("held") == []
    resources.wait_for_events("held", "Suspended")
    resumed = noetl(kube_cluster, "resume", "held", "-n", resources.namespace)
    assert resumed.returncode == 0, resumed.stderr
    status = resources.wait_finished("held")
    assert (status["phase"], status["result"]) == ("Succeeded", "Hello, World!")
    generation = resources.get("executions", "held")["metadata"]["generation"]
    assert status["observedGeneration"] == generation == 2  # the resume was seen
    assert len(resources.jobs("held")) == 1


def test_the_approval_example_waits_for_noetl_resume_and_takes_its_values(
    kube_cluster: Any, resources: Resources
):
    resources.apply_playbook_file(PLAYBOOKS / "approval.yaml")
    resources.execute("release", "approval")
    waiting = resources.wait(
        "executions", "release", lambda obj: (obj.get("status") or {}).get("awaitingApproval")
    )
    assert waiting["status"]["steps"]["gate"]["message"] == "waiting for approval: Release 1.4.2?"
    ns = resources.namespace
    resumed = noetl(kube_cluster, "resume", "release", "-n", ns, "--set", "approved=true")
    assert resumed.returncode == 0, resumed.stderr
    status = resources.wait_finished("release")
    assert (status["phase"], status["result"]["stdout"]) == (
        "Succeeded",
        "released 1.4.2 (someone)",
    )
    spec = resources.get("executions", "release")["spec"]
    assert spec["approvals"] == {"gate": {"approved": True}}  # the record of who said what
    resources.wait_for_events("release", "AwaitingApproval", "Approved")
