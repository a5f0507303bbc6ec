"""The operator under faults on the real control plane: a refusal it cannot get past ends the
Execution (ReconcileError, the API server's words) instead of leaving it Running, a step pod
the kubelet refuses (a missing Secret) fails its step at once, naming why, and one a quota
(or a missing ServiceAccount) refuses is told at once, runs once the quota is freed, or fails
at the pending deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import OperatorProcess, Resources

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def test_a_config_map_quota_fails_the_execution_with_reconcile_error(resources: Resources):
    # The namespace holds kube-root-ca.crt already: a quota of it leaves no room for a snapshot.
    resources.quota("no-cm", {"count/configmaps": "0"})
    resources.apply_playbook_file(PLAYBOOKS / "hello.yaml")
    resources.execute("no-room", "hello")
    status = resources.wait_finished("no-room")
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "ReconcileError"
    assert "exceeded quota: no-cm" in status["error"]
    warnings = [
        e
        for e in resources.wait_for_events("no-room", "ReconcileError")
        if e.reason == "ReconcileError"
    ]
    assert warnings[0].type == "Warning"


def test_a_pod_whose_secret_is_missing_fails_its_step_at_once_naming_it(resources: Resources):
    body = {
        "kind": "Playbook",
        "metadata": {"name": "no-secret"},
        "spec": {
            "workflow": [
                {"step": "start", "next": [{"step": "s"}]},
                {
                    "step": "s",
                    "tool": "shell",
                    "args": {"command": "true", "secretRef": "step-gone"},
                },
            ]
        },
    }
    resources.create("playbooks", body)
    resources.execute("no-secret", "no-secret")
    status = resources.wait_finished("no-secret")
    assert status["phase"] == "Failed"
    assert "CreateContainerConfigError" in status["error"] and "step-gone" in status["error"]


ONE_STEP = {
    "workflow": [
        {"step": "start", "next": [{"step": "s"}]},
        {"step": "s", "tool": "shell", "args": {"command": "echo ran"}},
    ]
}


def test_a_pod_refused_by_a_quota_is_told_at_once_and_runs_once_the_quota_is_freed(
    resources: Resources,
):
    resources.quota("no-pods", {"pods": "0"})
    resources.create(
        "playbooks", {"kind": "Playbook", "metadata": {"name": "one"}, "spec": ONE_STEP}
    )
    resources.execute("quota-pod", "one")
    waiting = resources.wait(
        "executions",
        "quota-pod",
        lambda obj: (
            "exceeded quota: no-pods"
            in ((obj.get("status") or {}).get("steps") or {}).get("s", {}).get("waiting", "")
        ),
        timeout=60,
    )
    assert waiting["status"]["steps"]["s"]["waiting"].startswith("FailedCreate: pods ")
    [told] = [
        e
        for e in resources.wait_for_events("quota-pod", "StepPending")
        if e.reason == "StepPending"
    ]
    assert told.type == "Warning" and "exceeded quota: no-pods" in told.message
    resources.core.delete_namespaced_resource_quota("no-pods", resources.namespace)
    status = resources.wait_finished("quota-pod")
    assert status["phase"] == "Succeeded"
    assert "waiting" not in status["steps"].get("s", {})


@pytest.mark.parametrize(
    ("setting", "refusal"),
    [
        ({}, "exceeded quota: no-pods"),
        ({"NOETL_STEP_SERVICE_ACCOUNT": "absent"}, 'serviceaccount "absent" not found'),
    ],
    ids=["quota", "service-account"],
)
def test_a_refused_pod_fails_its_step_at_the_pending_deadline(
    kube_cluster: Any, isolated: Resources, tmp_path: Path, setting: dict[str, str], refusal: str
):
    env = {"NOETL_NAMESPACES": isolated.namespace, "NOETL_STEP_PENDING_TIMEOUT": "5", **setting}
    operator = OperatorProcess(kube_cluster.kubeconfig, tmp_path / "operator.log", env)
    operator.start()
    try:
        if not setting:
            isolated.quota("no-pods", {"pods": "0"})
        isolated.create(
            "playbooks", {"kind": "Playbook", "metadata": {"name": "one"}, "spec": ONE_STEP}
        )
        isolated.execute("refused", "one")
        status = isolated.wait_finished("refused", timeout=60)
        assert status["phase"] == "Failed"
        assert "the step's pod could not be created within 5s: FailedCreate: " in status["error"]
        assert refusal in status["error"]
        assert "timed out" not in status["error"]
        isolated.wait("executions", "refused", lambda _: not isolated.jobs("refused"), 60)
    finally:
        operator.stop()
