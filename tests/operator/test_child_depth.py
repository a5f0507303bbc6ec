"""Child executions on a cluster: a playbook that calls itself stops at the operator's depth limit,
and steps that lack what their tool needs are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from noetl.kube.manifests import DEPTH_LABEL
from tests.operator.harness import OperatorProcess, Resources

pytestmark = pytest.mark.cluster


def test_a_playbook_that_calls_itself_stops_at_the_depth_limit(
    kube_cluster: Any, isolated: Resources, tmp_path: Path
):
    env = {"NOETL_NAMESPACES": isolated.namespace, "NOETL_MAX_CHILD_DEPTH": "2"}
    operator = OperatorProcess(kube_cluster.kubeconfig, tmp_path / "operator.log", env)
    operator.start()
    try:
        again = {"step": "again", "tool": "playbook", "args": {"name": "ouroboros"}}
        isolated.create(
            "playbooks",
            {
                "kind": "Playbook",
                "metadata": {"name": "ouroboros"},
                "spec": {"workflow": [{"step": "start", "next": [{"step": "again"}]}, again]},
            },
        )
        isolated.execute("ouroboros", "ouroboros")
        status = isolated.wait_finished("ouroboros", timeout=120)
        assert status["phase"] == "Failed"
        assert status["error"].endswith(
            "child playbook 'ouroboros' not started: it would be nested 3 deep,"
            " over the limit of 2 (does a playbook call itself?)"
        )
        executions = isolated.custom.list_namespaced_custom_object(
            "noetl.io", "v1alpha1", isolated.namespace, "executions"
        )["items"]
        depths = sorted(
            int(e["metadata"].get("labels", {}).get(DEPTH_LABEL, 0)) for e in executions
        )
        assert depths == [0, 1, 2]
    finally:
        operator.stop()


def test_the_api_server_refuses_python_without_code_and_a_zero_timeout(resources: Resources):
    cases = {
        "no-code": ({"step": "start", "tool": "python"}, "a python step needs `code`"),
        "zero-timeout": (
            {"step": "start", "tool": "shell", "args": {"command": "x"}, "timeout": "0s"},
            "spec.workflow[0].timeout",
        ),
    }
    for name, (step, words) in cases.items():
        body = {"kind": "Playbook", "metadata": {"name": name}, "spec": {"workflow": [step]}}
        with pytest.raises(ApiException) as caught:
            resources.create("playbooks", body)
        assert caught.value.status == 422
        assert words in caught.value.body, caught.value.body


def test_the_controller_reports_a_step_without_the_args_its_tool_needs(resources: Resources):
    body = {
        "kind": "Playbook",
        "metadata": {"name": "argless"},
        "spec": {"workflow": [{"step": "start", "tool": "http", "args": {"method": "GET"}}]},
    }
    resources.create("playbooks", body)
    playbook = resources.wait(
        "playbooks", "argless", lambda obj: obj.get("status", {}).get("observedGeneration") == 1
    )
    assert playbook["status"]["errors"] == [
        {"path": "spec.workflow[0].args.url", "message": "http steps need args.url"}
    ]
