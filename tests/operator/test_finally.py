"""`finally` steps on a cluster: they run as Jobs after the workflow, whatever its outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import Resources
from tests.operator.test_operator import sleeper

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def stored_result(resources: Resources, execution: str, step: str) -> Any:
    """A step's result as the operator keeps it: in the Execution's result ConfigMaps."""
    maps = resources.core.list_namespaced_config_map(
        resources.namespace,
        label_selector=f"noetl.io/execution={execution},noetl.io/purpose=results",
    ).items
    values = [m.data[step] for m in maps if step in (m.data or {})]
    assert len(values) == 1, f"{step} in {[sorted(m.data or {}) for m in maps]}"
    return json.loads(values[0])


def test_a_failed_workflow_runs_finally_and_keeps_its_error(resources: Resources):
    resources.apply_playbook_file(PLAYBOOKS / "finally.yaml")
    resources.execute("empty", "finally", {"orders": []})
    status = resources.wait_finished("empty")
    error = "step 'total' failed: command exited with code 1: no orders"
    assert (status["phase"], status["error"]) == ("Failed", error)
    assert status["steps"]["report"]["phase"] == "Succeeded"
    report = stored_result(resources, "empty", "report")
    assert report["stdout"].strip() == f"empty ended Failed: {error}"


def test_cancel_stops_the_workflow_and_runs_finally(resources: Resources):
    body = sleeper("tidy", 120)
    body["spec"]["finally"] = [
        {"step": "report", "tool": "shell", "args": {"command": "echo {{ execution.phase }}"}}
    ]
    resources.create("playbooks", body)
    resources.execute("tidy", "tidy")
    resources.wait(
        "executions", "tidy", lambda obj: (obj.get("status") or {}).get("currentStep") == "sleep"
    )
    resources.cancel("tidy")
    status = resources.wait_finished("tidy")
    assert (status["phase"], status["error"]) == ("Cancelled", "spec.cancel is true")
    assert status["steps"]["sleep"]["phase"] == "Cancelled"
    assert status["steps"]["report"]["phase"] == "Succeeded"
    assert stored_result(resources, "tidy", "report")["stdout"].strip() == "Cancelled"
