"""What a playbook may ask of the cluster: tolerations, node selectors and Secrets by allow-list,
and a size that its execution's snapshot ConfigMap can hold."""

from __future__ import annotations

from typing import Any

from noetl.kube.playbooks import (
    MAX_SNAPSHOT_BYTES,
    playbook_document,
    playbook_status,
    run_problems,
    snapshot_text,
)
from noetl.kube.settings import OperatorSettings
from noetl.kube.tenancy import secret_refusal
from noetl.playbook import parse_playbook


def document(pod: dict[str, Any] | None = None, secret: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"step": "start", "tool": "shell", "args": {"command": "true"}}
    if pod is not None:
        step["pod"] = pod
    if secret is not None:
        step["args"]["secretRef"] = secret
    return {"kind": "Playbook", "metadata": {"name": "p"}, "spec": {"workflow": [step]}}


def problems(body: dict[str, Any], settings: OperatorSettings, namespace: str = "team-a") -> list:
    playbook = parse_playbook(body)
    return run_problems(playbook, snapshot_text(body), namespace, settings)


GPU = {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_by_default_a_playbook_may_ask_for_no_toleration_node_or_secret():
    body = document({"tolerations": [GPU], "nodeSelector": {"pool": "reserved"}}, secret="admin")
    found = {(p.path, p.message.split(" (")[0]) for p in problems(body, OperatorSettings())}
    assert found == {
        (
            "spec.workflow[0].pod.tolerations[0]",
            "the toleration {'key': 'gpu', 'operator': 'Exists', 'effect': 'NoSchedule'} is not"
            " allowed by the operator's allowedTolerations",
        ),
        (
            "spec.workflow[0].pod.nodeSelector.pool",
            "selecting nodes by pool=reserved is not allowed by the operator's"
            " allowedNodeSelectors",
        ),
        (
            "spec.workflow[0].args.secretRef",
            "the Secret 'admin' is not among the operator's allowedSecrets for namespace 'team-a'",
        ),
    }
    assert all("none allowed" in p.message for p in problems(body, OperatorSettings()))


def test_what_the_settings_allow_passes():
    settings = OperatorSettings(
        allowed_tolerations=[{"key": "gpu", "effect": "NoSchedule"}],
        allowed_node_selectors={"pool": ["batch", "gpu-*"]},
        allowed_secrets=["team-*/pg"],
    )
    body = document({"tolerations": [GPU], "nodeSelector": {"pool": "gpu-a100"}}, secret="pg")
    assert problems(body, settings) == []
    # The same entries do not stretch to other keys, effects, values, names or namespaces.
    wider = {"key": "gpu", "operator": "Exists", "effect": "NoExecute"}
    everything = {"operator": "Exists"}
    for pod in (
        {"tolerations": [wider]},
        {"tolerations": [everything]},
        {"nodeSelector": {"pool": "reserved"}},
        {"nodeSelector": {"zone": "batch"}},
    ):
        assert len(problems(document(pod), settings)) == 1, pod
    assert len(problems(document(secret="pg"), settings, namespace="other")) == 1
    assert len(problems(document(secret="pg-admin"), settings)) == 1


def test_a_templated_secret_is_checked_when_its_step_starts():
    body = document(secret="{{ workload.secret }}")
    assert problems(body, OperatorSettings()) == []
    assert secret_refusal("team-a", "admin", OperatorSettings()) is not None
    assert secret_refusal("team-a", "pg", OperatorSettings(allowed_secrets=["team-a/pg"])) is None


def test_a_playbook_too_large_to_snapshot_is_invalid():
    body = document()
    body["spec"]["workload"] = {"blob": "x" * MAX_SNAPSHOT_BYTES}
    (problem,) = problems(body, OperatorSettings())
    assert problem.path == "spec"
    assert f"over the {MAX_SNAPSHOT_BYTES} bytes" in problem.message
    resource = {"metadata": {"name": "p", "generation": 1}, "spec": body["spec"]}
    status = playbook_status(resource, parse_playbook(playbook_document(resource)))
    assert status["conditions"][0]["reason"] == "Invalid"
    assert status["errors"][0]["path"] == "spec"
