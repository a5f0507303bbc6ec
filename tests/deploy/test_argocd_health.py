"""The Argo CD health checks in argocd/, run by a real Lua interpreter (lupa) the way Argo CD runs
them: the resource as the global `obj`, the script's returned table as the health.

The sample statuses come from the operator's own status builders, so a change in the status
shape the scripts read fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from noetl.engine import ExecutionState
from noetl.kube.cron import plan_cron
from noetl.kube.playbooks import playbook_document, playbook_status
from noetl.kube.status import execution_status
from noetl.playbook import Playbook, PlaybookInvalid, parse_playbook
from tests.deploy.chart import ROOT

lupa = pytest.importorskip("lupa")

ARGOCD = ROOT / "argocd"
HELLO = yaml.safe_load((ROOT / "playbooks" / "hello.yaml").read_text())


def health(script: Path, resource: dict[str, Any]) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    # JSON first: what Argo CD hands the script is the object as the API server serves it.
    runtime.globals().obj = runtime.table_from(json.loads(json.dumps(resource)), recursive=True)
    result = runtime.execute(script.read_text())
    return result["status"], result["message"]


def execution(
    state: ExecutionState | None, generation: int = 1, observed: int | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "apiVersion": "noetl.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": "hello-x7k2p", "namespace": "default", "generation": generation},
        "spec": {"playbookRef": {"name": "hello"}},
    }
    if state is not None:
        resource["status"] = execution_status(state, generation if observed is None else observed)
    return resource


def playbook(
    spec: dict[str, Any], generation: int = 1, observed: int | None = None, with_status: bool = True
) -> dict[str, Any]:
    resource = {
        **HELLO,
        "metadata": {"name": "hello", "namespace": "default", "generation": generation},
        "spec": spec,
    }
    if with_status:
        seen = {
            **resource,
            "metadata": {
                **resource["metadata"],
                "generation": generation if observed is None else observed,
            },
        }
        checked: Playbook | PlaybookInvalid
        try:
            checked = parse_playbook(playbook_document(seen))
        except PlaybookInvalid as invalid:
            checked = invalid
        status = playbook_status(seen, checked)
        resource["status"] = status
    return resource


@pytest.mark.parametrize(
    ("resource", "expected", "message"),
    [
        (execution(None), "Progressing", "Waiting for the operator to start the execution"),
        (execution(ExecutionState(phase="Pending")), "Progressing", "running: nothing yet"),
        (
            execution(ExecutionState(phase="Running", started_at=1.0, active={"greet": None})),
            "Progressing",
            "running: greet",
        ),
        (
            execution(ExecutionState(phase="Succeeded", started_at=1.0, finished_at=2.0)),
            "Healthy",
            "all steps finished",
        ),
        (
            execution(
                ExecutionState(
                    phase="Failed",
                    started_at=1.0,
                    finished_at=2.0,
                    error="step greet failed: exit code 3",
                )
            ),
            "Degraded",
            "step greet failed: exit code 3",
        ),
        (
            execution(
                ExecutionState(
                    phase="Cancelled",
                    started_at=1.0,
                    finished_at=2.0,
                    error="cancelled by the user",
                )
            ),
            "Suspended",
            "cancelled by the user",
        ),
        (
            execution(ExecutionState(phase="Running", started_at=1.0, suspended="spec.suspend")),
            "Suspended",
            "suspended (spec.suspend): no new step starts until resumed",
        ),
        (
            execution(
                ExecutionState(phase="Succeeded", started_at=1.0, finished_at=2.0),
                generation=2,
                observed=1,
            ),
            "Progressing",
            "Waiting for the operator to observe generation 2",
        ),
    ],
    ids=[
        "no-status",
        "pending",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "suspended",
        "stale-generation",
    ],
)
def test_execution_health(resource: dict[str, Any], expected: str, message: str) -> None:
    assert health(ARGOCD / "health-execution.lua", resource) == (expected, message)


def test_execution_with_an_unknown_phase() -> None:
    resource = execution(None)
    resource["status"] = {"phase": "Exploded", "observedGeneration": 1}
    assert health(ARGOCD / "health-execution.lua", resource) == (
        "Unknown",
        "Unknown phase Exploded",
    )


def test_execution_without_conditions_falls_back_to_the_error() -> None:
    resource = execution(None)
    resource["status"] = {"phase": "Failed", "observedGeneration": 1, "error": "boom"}
    assert health(ARGOCD / "health-execution.lua", resource) == ("Degraded", "boom")


def broken_spec() -> dict[str, Any]:
    spec = json.loads(json.dumps(HELLO["spec"]))
    spec["workflow"][0]["next"] = [{"step": "nowhere"}]
    return spec


@pytest.mark.parametrize(
    ("resource", "expected", "message"),
    [
        (playbook(HELLO["spec"]), "Healthy", "3 steps"),
        (playbook(broken_spec()), "Degraded", "Invalid: spec.workflow[0].next[0].step"),
        (
            playbook(HELLO["spec"], with_status=False),
            "Progressing",
            "Waiting for the operator to validate generation 1",
        ),
        (
            playbook(broken_spec(), generation=3, observed=2),
            "Progressing",
            "Waiting for the operator to validate generation 3",
        ),
    ],
    ids=["valid", "invalid", "no-status", "stale-generation"],
)
def test_playbook_health(resource: dict[str, Any], expected: str, message: str) -> None:
    status, text = health(ARGOCD / "health-playbook.lua", resource)
    assert status == expected
    assert text.startswith(message), text


def test_playbook_without_ready_condition() -> None:
    resource = playbook(HELLO["spec"])
    resource["status"]["conditions"] = []
    assert health(ARGOCD / "health-playbook.lua", resource) == (
        "Progressing",
        "Waiting for the Ready condition",
    )


@pytest.mark.parametrize("kind", ["Playbook", "Execution", "CronPlaybook"])
def test_argocd_cm_patch_embeds_the_scripts(kind: str) -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    embedded = patch["data"][f"resource.customizations.health.noetl.io_{kind}"]
    assert embedded == (ARGOCD / f"health-{kind.lower()}.lua").read_text()


def test_application_installs_the_chart() -> None:
    application = yaml.safe_load((ARGOCD / "application.yaml").read_text())
    assert application["kind"] == "Application"
    assert application["spec"]["source"]["path"] == "charts/noetl-operator"
    assert (ROOT / application["spec"]["source"]["path"] / "Chart.yaml").is_file()


def cronplaybook(generation: int = 1, observed: int | None = None, **spec: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "apiVersion": "noetl.io/v1alpha1",
        "kind": "CronPlaybook",
        "metadata": {
            "name": "hourly",
            "namespace": "default",
            "uid": "u-1",
            "generation": generation,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"schedule": "0 * * * *", "playbookRef": {"name": "hello"}, **spec},
    }
    status = plan_cron(resource, [], 1767229200.0).status  # 2026-01-01T01:00:00Z
    status["observedGeneration"] = generation if observed is None else observed
    return {**resource, "status": status}


@pytest.mark.parametrize(
    ("resource", "expected", "message"),
    [
        (cronplaybook(), "Healthy", "next run at 2026-01-01T02:00:00Z"),
        (cronplaybook(suspend=True), "Suspended", "spec.suspend is true"),
        (cronplaybook(schedule="every hour"), "Degraded", "InvalidSchedule: spec.schedule"),
        (
            cronplaybook(generation=2, observed=1),
            "Progressing",
            "Waiting for the operator to observe generation 2",
        ),
        (
            {**cronplaybook(), "status": None},
            "Progressing",
            "Waiting for the operator to observe generation 1",
        ),
    ],
    ids=["scheduled", "suspended", "invalid", "stale-generation", "no-status"],
)
def test_cronplaybook_health(resource: dict[str, Any], expected: str, message: str) -> None:
    status, text = health(ARGOCD / "health-cronplaybook.lua", resource)
    assert status == expected
    assert text.startswith(message), text


def test_a_queued_execution_is_progressing_with_what_it_waits_for() -> None:
    resource = execution(None)
    resource["status"] = {
        "phase": "Queued",
        "observedGeneration": 1,
        "message": "waiting for playbook hello: 2 of 2 running, 0 ahead in the queue",
        "conditions": [{"type": "Admitted", "status": "False", "reason": "Queued"}],
    }
    assert health(ARGOCD / "health-execution.lua", resource) == (
        "Progressing",
        "waiting for playbook hello: 2 of 2 running, 0 ahead in the queue",
    )
