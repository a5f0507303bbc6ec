"""The end of a step's log outlives its pod: kept with the results on a cluster, in the event log
locally, secrets masked in both; `noetl logs` and the web view show it when the pod is gone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from noetl.ui.sources.cluster import ClusterRuns
from tests.local.test_examples import noetl_run
from tests.operator.harness import Resources
from tests.operator.test_cli_cluster import noetl

pytestmark = pytest.mark.cluster

SECRET = "tail-secret-value-42"
COMMAND = 'for i in $(seq 1 80); do echo "line $i"; done; echo "token $STEP_TOKEN" >&2'
# The last 50 lines (logtail.TAIL_LINES): stdout's, then stderr's, the Secret masked.
TAIL = "\n".join([*(f"line {i}" for i in range(32, 81)), "token ***"])
PLAYBOOK = {
    "kind": "Playbook",
    "metadata": {"name": "talker"},
    "spec": {
        "workflow": [
            {"step": "start", "next": [{"step": "talk"}]},
            {
                "step": "talk",
                "tool": "shell",
                "args": {"command": COMMAND, "secretRef": "step-token"},
                "next": [{"step": "end"}],
            },
            {"step": "end"},
        ]
    },
}


def test_noetl_logs_shows_the_kept_tail_once_the_pod_is_gone(
    kube_cluster: Any, resources: Resources, tmp_path: Path
) -> None:
    path = tmp_path / "talker.yaml"
    path.write_text(yaml.safe_dump(PLAYBOOK))
    (tmp_path / "token.env").write_text(f"STEP_TOKEN={SECRET}\n")
    code, _ = noetl_run(str(path), "--secret", f"step-token={tmp_path / 'token.env'}", cwd=tmp_path)
    assert code == 0
    (event_log,) = (tmp_path / ".noetl" / "runs").glob("*.jsonl")
    assert SECRET not in event_log.read_text()
    local = noetl(kube_cluster, "logs", str(event_log), "--step", "talk")
    assert local.returncode == 0, local.stderr
    assert local.stdout == f"==> talk#1 <==\n{TAIL}\n"

    ns = resources.namespace
    resources.core.create_namespaced_secret(
        ns, {"metadata": {"name": "step-token"}, "stringData": {"STEP_TOKEN": SECRET}}
    )
    resources.create("playbooks", PLAYBOOK)
    resources.execute("talker-1", "talker")
    assert resources.wait_finished("talker-1")["phase"] == "Succeeded"

    with_pod = noetl(kube_cluster, "logs", "talker-1", "-n", ns)
    assert with_pod.returncode == 0, with_pod.stderr
    assert "line 1\n" in with_pod.stdout and "pod gone" not in with_pod.stderr  # the whole log

    selector = "noetl.io/step=talk"
    resources.core.delete_collection_namespaced_pod(
        ns, label_selector=selector, grace_period_seconds=0
    )
    deadline = time.monotonic() + 60
    while resources.core.list_namespaced_pod(ns, label_selector=selector).items:
        assert time.monotonic() < deadline, "the step's pod was not deleted"
        time.sleep(0.2)

    followed = "".join(f"[talk] {line}\n" for line in TAIL.split("\n"))
    for options, shown in (
        ((), f"==> talk <==\n{TAIL}\n"),
        (("--step", "talk"), f"==> talk <==\n{TAIL}\n"),
        (("-f",), followed),  # the execution has ended: -f ends after what is there
    ):
        gone = noetl(kube_cluster, "logs", "talker-1", "-n", ns, *options)
        assert gone.returncode == 0, gone.stderr
        assert gone.stdout == shown
        assert gone.stderr == (
            "step talk: pod gone; showing the last 50 lines kept with the results\n"
        )
        assert SECRET not in gone.stdout + gone.stderr
    other = noetl(kube_cluster, "logs", "talker-1", "-n", ns, "--step", "end")
    assert (other.returncode, other.stdout, other.stderr) == (0, "", "")

    # The web view's step detail shows the same tail.
    detail = asyncio.run(ClusterRuns(kube_cluster.api_client(), [ns]).step(ns, "talker-1", "talk"))
    assert detail is not None
    assert [(log.title, log.text) for log in detail.logs] == [
        ("the end of its log, kept with the results", TAIL)
    ]
