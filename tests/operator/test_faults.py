"""The operator under faults on the real control plane: a refusal it cannot get past ends the
Execution (ReconcileError, the API server's words) instead of leaving it Running, and a step pod
the kubelet refuses (a missing Secret) fails its step at once, naming why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.operator.harness import Resources

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
