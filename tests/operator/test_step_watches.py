"""Step Jobs and pods watched through kopf, as they are under `--peering` or kopf's richer
namespace patterns (an exclusion): the steps run and the execution ends as with the operator's own
watches, which every other operator test uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import OperatorProcess, Resources

pytestmark = pytest.mark.cluster


def test_steps_watched_by_kopf_run_to_the_end(
    kube_cluster: Any, isolated: Resources, tmp_path: Path
):
    # One pattern with an exclusion: kopf's to match, and so the step Jobs and pods are its too.
    only_this = f"{isolated.namespace},!{isolated.namespace}-none"
    operator = OperatorProcess(
        kube_cluster.kubeconfig,
        tmp_path / "operator.log",
        {"NOETL_NAMESPACES": json.dumps([only_this])},
    )
    workflow = [
        {"step": "start", "next": [{"step": "first"}]},
        {
            "step": "first",
            "tool": "shell",
            "args": {"command": "echo 1"},
            "next": [{"step": "second"}],
        },
        {"step": "second", "tool": "shell", "args": {"command": "echo {{ first.stdout | trim }}2"}},
    ]
    spec = {"workflow": workflow, "output": "{{ second.stdout | trim }}"}
    isolated.create("playbooks", {"kind": "Playbook", "metadata": {"name": "two"}, "spec": spec})
    operator.start()
    try:
        isolated.execute("two", "two")
        status = isolated.wait_finished("two")
    finally:
        operator.stop()
    assert status["phase"] == "Succeeded"
    assert status["result"] == "12"
