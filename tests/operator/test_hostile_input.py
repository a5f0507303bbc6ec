"""The operator under careless or hostile input: `$` in step input, names of 200 characters, typos
in pod settings, tolerations and Secrets the operator does not allow, playbooks too large to
snapshot, refusals by a quota, floats, and the CLI on names that do not exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from noetl.kube.client import Cluster
from noetl.kube.names import label_value
from noetl.kube.playbooks import MAX_SNAPSHOT_BYTES
from tests.local.test_examples import noetl_run
from tests.operator.fixtures import SHARED_PREFIX
from tests.operator.harness import GROUP, VERSION, OperatorProcess, Resources
from tests.operator.test_cli_cluster import noetl

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def playbook(name: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    workflow = [{"step": "start", "next": [{"step": steps[0]["step"]}]}, *steps]
    return {"kind": "Playbook", "metadata": {"name": name}, "spec": {"workflow": workflow, **spec}}


def test_a_step_gets_dollars_verbatim_as_it_does_locally(resources: Resources, tmp_path: Path):
    resources.core.create_namespaced_secret(
        resources.namespace,
        {"metadata": {"name": "step-token"}, "stringData": {"STEP_TOKEN": "not-for-the-input"}},
    )
    # $$ is PostgreSQL's dollar quote; $(STEP_TOKEN) names a key of the step's Secret.
    command = "printf '%s\\n' 'DO $$ BEGIN PERFORM 1; END $$' '$(STEP_TOKEN)' \"${#STEP_TOKEN}\""
    body = playbook(
        "dollars",
        {"step": "sql", "tool": "shell", "args": {"command": command, "secretRef": "step-token"}},
        output="{{ sql.stdout }}",
    )
    path = tmp_path / "dollars.yaml"
    path.write_text(yaml.safe_dump(body))
    (tmp_path / "token.env").write_text("STEP_TOKEN=not-for-the-input\n")
    code, local = noetl_run(
        str(path), "--secret", f"step-token={tmp_path / 'token.env'}", cwd=tmp_path
    )
    assert (code, local["result"]) == (0, "DO $$ BEGIN PERFORM 1; END $$\n$(STEP_TOKEN)\n17")

    resources.create("playbooks", body)
    resources.execute("dollars", "dollars")
    status = resources.wait_finished("dollars")
    assert (status["phase"], status.get("error")) == ("Succeeded", None)
    assert status["result"] == local["result"]


def test_executions_with_names_of_200_and_253_characters_run_to_the_end(resources: Resources):
    resources.apply_playbook_file(PLAYBOOKS / "hello.yaml")
    resources.apply_playbook_file(PLAYBOOKS / "greet.yaml")
    resources.apply_playbook_file(PLAYBOOKS / "sub-playbook.yaml")
    hello, children = "hello-" + "x" * 194, "children-" + "y" * 244
    resources.execute(hello, "hello", {"name": "long names"})
    resources.execute(children, "sub-playbook")
    assert resources.wait_finished(hello)["result"] == "Hello, long names!"
    assert resources.wait_finished(children)["result"] == ["Hi, Ada", "Hi, Grace"]
    resources.wait_for_events(children, "ExecutionSucceeded")
    (job,) = resources.jobs(hello)
    assert job.metadata.labels["noetl.io/execution"] == label_value(hello) != hello


def test_typos_in_pod_settings_are_refused_by_the_api_server(resources: Resources):
    # An unknown field is a strict-decoding error (400); a bad value fails the schema (422).
    cases = {
        "limit": ({"resources": {"limit": {"memory": "1Gi"}}}, 400, "pod.resources.limit"),
        "quantity": ({"resources": {"limits": {"memory": "lots"}}}, 422, "limits.memory"),
        "effect": ({"tolerations": [{"key": "gpu", "effect": "Never"}]}, 422, "[0].effect"),
        "efect": ({"tolerations": [{"key": "gpu", "efect": "NoSchedule"}]}, 400, "[0].efect"),
    }
    for name, (pod, code, field) in cases.items():
        body = playbook(
            name, {"step": "s", "tool": "shell", "args": {"command": "true"}, "pod": pod}
        )
        with pytest.raises(ApiException) as caught:
            # As `kubectl apply` sends it: unknown fields are errors, not silently dropped.
            resources.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                resources.namespace,
                "playbooks",
                {"apiVersion": f"{GROUP}/{VERSION}", **body},
                field_validation="Strict",
            )
        assert caught.value.status == code, (name, caught.value.body)
        assert field in caught.value.body, caught.value.body


def test_what_the_operator_does_not_allow_fails_the_execution_clearly(resources: Resources):
    toleration = {
        "key": "dedicated",
        "operator": "Equal",
        "value": "payroll",
        "effect": "NoSchedule",
    }
    steps = {
        "tolerates": {"pod": {"tolerations": [toleration]}},
        "selects": {"pod": {"nodeSelector": {"pool": "payroll"}}},
        "reads": {"args": {"command": "env", "secretRef": "admin-credentials"}},
        "templated": {"args": {"command": "env", "secretRef": "{{ workload.secret }}"}},
    }
    for name, extra in steps.items():
        step = {"step": "s", "tool": "shell", "args": {"command": "true"}, **extra}
        resources.create("playbooks", playbook(name, step))
        resources.execute(name, name, {"secret": "admin-credentials"})
    words = {
        "tolerates": "spec.workflow[1].pod.tolerations[0]: the toleration",
        "selects": "spec.workflow[1].pod.nodeSelector.pool: selecting nodes by pool=payroll",
        "reads": "spec.workflow[1].args.secretRef: the Secret 'admin-credentials' is not among",
        "templated": "the Secret 'admin-credentials' is not among the operator's allowedSecrets",
    }
    for name, expected in words.items():
        status = resources.wait_finished(name)
        assert status["phase"] == "Failed", name
        assert expected in status["error"], status["error"]
        assert not resources.jobs(name), name  # no pod ever ran with it


def test_a_playbook_too_large_to_snapshot_is_invalid(resources: Resources):
    body = playbook("huge", {"step": "s", "tool": "shell", "args": {"command": "true"}})
    body["spec"]["workload"] = {"blob": "x" * MAX_SNAPSHOT_BYTES}
    resources.create("playbooks", body)
    found = resources.wait(
        "playbooks", "huge", lambda obj: obj.get("status", {}).get("observedGeneration") == 1
    )
    assert found["status"]["conditions"][0]["reason"] == "Invalid"
    assert found["status"]["errors"][0]["path"] == "spec"
    resources.execute("huge", "huge")
    status = resources.wait_finished("huge")
    assert status["phase"] == "Failed"
    assert "snapshot ConfigMap holds" in status["error"]


def test_a_quota_refusal_keeps_the_api_servers_words(resources: Resources):
    resources.quota("no-jobs", {"count/jobs.batch": "0"})
    resources.apply_playbook_file(PLAYBOOKS / "hello.yaml")
    resources.execute("quota", "hello")
    status = resources.wait_finished("quota")
    assert status["phase"] == "Failed"
    assert "Forbidden (403)" in status["error"] and "exceeded quota: no-jobs" in status["error"]


def test_a_whole_float_comes_back_a_float(resources: Resources, kube_cluster: Any):
    code = "def main():\n    return {'average': 19.0, 'count': 2}"
    resources.create("playbooks", playbook("floats", {"step": "s", "tool": "python", "code": code}))
    resources.execute("floats", "floats")
    status = resources.wait_finished("floats")
    result = Cluster(resources.namespace, kube_cluster.api_client()).result(
        resources.get("executions", "floats")
    )
    assert status["phase"] == "Succeeded"
    assert result == {"average": 19.0, "count": 2}
    assert isinstance(result["average"], float) and isinstance(result["count"], int)
    assert json.dumps(result) == '{"average": 19.0, "count": 2}'


def test_the_cli_on_a_missing_execution_says_so_in_one_line(
    kube_cluster: Any, resources: Resources
):
    for command in ("status", "logs", "cancel"):
        done = noetl(kube_cluster, command, "no-such-run", "-n", resources.namespace)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert done.stderr == (
            f"no execution 'no-such-run' in namespace '{resources.namespace}'\n"
        ), command
        assert done.stdout == ""


def test_the_operator_log_has_no_line_per_watch_event(
    resources: Resources, noetl_operator: OperatorProcess
):
    resources.apply_playbook_file(PLAYBOOKS / "hello.yaml")
    resources.execute("quiet", "hello")
    assert resources.wait_finished("quiet")["phase"] == "Succeeded"
    log = noetl_operator.log_path.read_text()
    assert resources.namespace.startswith(SHARED_PREFIX)
    handled = [line for line in log.splitlines() if "Handler" in line and "succeeded." in line]
    assert handled == []


def test_a_cluster_wide_operator_leaves_excluded_namespaces_alone(
    kube_cluster: Any, isolated: Resources, isolated_too: Resources, tmp_path: Path
):
    # All namespaces but the shared operator's (and, as the chart does, kube-*) and one of ours.
    skipped = isolated_too
    operator = OperatorProcess(
        kube_cluster.kubeconfig,
        tmp_path / "operator.log",
        {"NOETL_EXCLUDED_NAMESPACES": f"{SHARED_PREFIX}*,kube-*,{skipped.namespace}"},
    )
    operator.start()
    try:
        for where in (skipped, isolated):  # the excluded one first: its events come first
            where.apply_playbook_file(PLAYBOOKS / "hello.yaml")
            where.execute("hello", "hello")
        assert isolated.wait_finished("hello")["phase"] == "Succeeded"
        assert isolated.wait("playbooks", "hello", lambda obj: bool(obj.get("status")))
        assert "status" not in skipped.get("executions", "hello")
        assert "status" not in skipped.get("playbooks", "hello")
        assert not skipped.jobs("hello")
    finally:
        operator.stop()
