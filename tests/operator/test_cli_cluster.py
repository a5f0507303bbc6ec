"""`noetl submit`, `status`, `logs` and `cancel` against the real API server and operator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import Resources

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def noetl(kube_cluster: Any, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kube_cluster.kubeconfig), "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "noetl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_submit_wait_status_and_logs(kube_cluster: Any, resources: Resources):
    ns = resources.namespace
    submitted = noetl(
        kube_cluster,
        "submit",
        str(PLAYBOOKS / "hello.yaml"),
        "-n",
        ns,
        "--set",
        "name=CLI",
        "--wait",
    )
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == '"Hello, CLI!"'
    name = submitted.stderr.split("execution ", 1)[1].split()[0]
    assert name.startswith("hello-")
    assert "greet: Succeeded" in submitted.stderr
    status = noetl(kube_cluster, "status", name, "-n", ns)
    assert status.stdout.startswith(f"execution {name}: Succeeded")
    logs = noetl(kube_cluster, "logs", name, "-n", ns, "--step", "greet")
    assert "Hello, CLI!" in logs.stdout


def test_submit_without_wait_then_cancel(kube_cluster: Any, resources: Resources, tmp_path: Path):
    ns = resources.namespace
    path = tmp_path / "sleepy.yaml"
    path.write_text(
        "apiVersion: noetl.io/v1alpha1\n"
        "kind: Playbook\n"
        "metadata: {name: sleepy}\n"
        "spec:\n"
        "  workflow:\n"
        "    - step: start\n"
        "      next: [{step: nap}]\n"
        "    - step: nap\n"
        "      tool: shell\n"
        "      args: {command: sleep 120}\n"
    )
    submitted = noetl(kube_cluster, "submit", str(path), "-n", ns)
    name = submitted.stdout.strip()
    assert name.startswith("sleepy-"), submitted.stderr
    resources.wait(
        "executions", name, lambda obj: (obj.get("status") or {}).get("currentStep") == "nap"
    )
    deadline = time.monotonic() + 60
    while not resources.jobs(name):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert noetl(kube_cluster, "cancel", name, "-n", ns).returncode == 0
    assert resources.wait_finished(name)["phase"] == "Cancelled"
    assert "Cancelled" in noetl(kube_cluster, "status", name, "-n", ns).stdout


def test_logs_follow_list_and_get(kube_cluster: Any, resources: Resources):
    ns = resources.namespace
    resources.create(
        "playbooks",
        {
            "kind": "Playbook",
            "metadata": {"name": "talker"},
            "spec": {
                "workflow": [
                    {"step": "start", "next": [{"step": "talk"}]},
                    {
                        "step": "talk",
                        "tool": "shell",
                        "args": {"command": "for i in 1 2 3; do echo line $i; sleep 1; done"},
                    },
                ]
            },
        },
    )
    resources.execute("talk-1", "talker")
    # Started before the step's pod exists; it ends by itself when the execution has ended.
    followed = noetl(kube_cluster, "logs", "talk-1", "-n", ns, "-f")
    assert followed.returncode == 0, followed.stderr
    lines = [line for line in followed.stdout.splitlines() if "line " in line]
    assert [line.split("] ", 1)[1] for line in lines] == ["line 1", "line 2", "line 3"]
    assert lines[0].startswith("[talk-1-talk-a1")

    listed = noetl(kube_cluster, "list", "-n", ns)
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("talk-1"))
    assert row[:3] == ["talk-1", "talker", "Succeeded"] and row[4].endswith("s")

    kubectl_plugin = Path(sys.executable).parent / "kubectl-noetl"
    env = {**os.environ, "KUBECONFIG": str(kube_cluster.kubeconfig)}
    got = subprocess.run(
        [str(kubectl_plugin), "get", "talk-1", "-n", ns],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert got.returncode == 0, got.stderr
    assert "Phase:     Succeeded" in got.stdout
    steps = {
        line.split()[0]: line.split() for line in got.stdout.split("Steps:\n", 1)[1].splitlines()
    }
    assert steps["talk"][1] == "Succeeded"
    missing = noetl(kube_cluster, "get", "nope", "-n", ns)
    assert missing.returncode == 1 and "no execution 'nope'" in missing.stderr
