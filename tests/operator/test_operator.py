"""The operator on a real API server: examples, validation, concurrency, retry, timeout, cancel,
deletion, events, secrets, large results and large playbooks."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from noetl.kube.names import run_name
from tests.local.test_examples import EXPECTED, USERS, users_server  # noqa: F401  (fixture)
from tests.operator.harness import Resources

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def apply_all_examples(resources: Resources) -> None:
    for path in sorted(PLAYBOOKS.glob("*.yaml")):
        resources.apply_playbook_file(path)


def workload_of(args: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    pairs = [args[i + 1] for i, arg in enumerate(args) if arg == "--set"]
    return {key: yaml.safe_load(value) for key, _, value in (pair.partition("=") for pair in pairs)}


def test_every_example_gives_the_result_it_gives_locally(resources: Resources):
    apply_all_examples(resources)
    runs = {f"ex-{i}": args for i, args in enumerate(EXPECTED)}
    for name, args in runs.items():
        resources.execute(name, Path(args[0]).stem, workload_of(args))
    for name, args in runs.items():
        status = resources.wait_finished(name, timeout=180)
        assert (status["phase"], status.get("error")) == ("Succeeded", None), name
        assert status["result"] == EXPECTED[args], name


def test_the_python_http_example(resources: Resources, users_server: str):  # noqa: F811
    resources.apply_playbook_file(PLAYBOOKS / "python-http.yaml")
    resources.execute("http", "python-http", {"base_url": users_server})
    assert resources.wait_finished("http")["result"] == {
        "count": 3,
        "cities": ["London", "New York"],
    }
    assert len(USERS) == 3


@pytest.mark.postgres
def test_the_postgres_example_with_its_secret(resources: Resources, postgres_server: Any):
    secret = {k: base64.b64encode(v.encode()).decode() for k, v in postgres_server.env().items()}
    resources.core.create_namespaced_secret(
        resources.namespace, {"metadata": {"name": "pg"}, "data": secret}
    )
    resources.apply_playbook_file(PLAYBOOKS / "postgres.yaml")
    resources.execute("pg", "postgres")
    status = resources.wait_finished("pg")
    result = resources.result(status)
    assert result == [
        {"city": "Oslo", "readings": 2, "average": 6.5},
        {"city": "Paris", "readings": 1, "average": 19.0},
    ]
    assert isinstance(result[1]["average"], float)  # as locally, not 19
    job = resources.jobs("pg")[0]
    pod = job.spec.template.spec
    assert [v.secret.secret_name for v in pod.volumes if v.secret] == ["pg"]
    text = json.dumps(resources.get("executions", "pg")) + json.dumps(
        [e.message for e in resources.wait_for_events("pg", "ExecutionSucceeded")]
    )
    assert postgres_server.password not in text


def test_the_api_server_rejects_what_it_can_check(resources: Resources):
    def playbook(name: str, workflow: list[dict[str, Any]]) -> dict[str, Any]:
        return {"kind": "Playbook", "metadata": {"name": name}, "spec": {"workflow": workflow}}

    cases = {
        "no-start": ([{"step": "begin"}], "needs a step named 'start'"),
        "duplicate": ([{"step": "start"}, {"step": "start"}], "Duplicate value"),
        "bad-name": ([{"step": "start"}, {"step": "Not OK"}], "spec.workflow[1].step"),
        "bad-mode": (
            [{"step": "start", "tool": "shell", "loop": {"in": [1], "mode": "sometimes"}}],
            "spec.workflow[0].loop.mode",
        ),
    }
    for name, (workflow, words) in cases.items():
        with pytest.raises(ApiException) as caught:
            resources.create("playbooks", playbook(name, workflow))
        assert caught.value.status == 422
        assert words in caught.value.body, caught.value.body


def test_the_controller_reports_what_only_it_can_check(resources: Resources):
    body = {
        "kind": "Playbook",
        "metadata": {"name": "broken"},
        "spec": {
            "workflow": [
                {"step": "start", "next": [{"step": "ghost"}]},
                {"step": "x", "tool": "shell", "args": {"command": "echo {{ oops"}},
            ]
        },
    }
    resources.create("playbooks", body)
    playbook = resources.wait(
        "playbooks", "broken", lambda obj: obj.get("status", {}).get("observedGeneration") == 1
    )
    ready = playbook["status"]["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "Invalid")
    paths = {error["path"] for error in playbook["status"]["errors"]}
    assert {
        "spec.workflow[0].next[0].step",
        "spec.workflow[1].args.command",
        "spec.workflow[1].step",
    } <= paths
    resources.execute("of-broken", "broken")
    status = resources.wait_finished("of-broken")
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "InvalidPlaybook"
    assert "spec.workflow[0].next[0].step: no step named 'ghost'" in status["error"]
    resources.wait_for_events("of-broken", "InvalidPlaybook")


def test_a_missing_playbook_fails_the_execution_clearly(resources: Resources):
    resources.execute("orphan", "nowhere")
    status = resources.wait_finished("orphan")
    assert (
        status["error"]
        == f"spec.playbookRef.name: no Playbook named 'nowhere' in namespace {resources.namespace}"
    )


def pod_spans(resources: Resources, execution: str) -> dict[str, tuple[datetime, datetime]]:
    spans = {}
    for pod in resources.core.list_namespaced_pod(
        resources.namespace, label_selector=f"noetl.io/execution={execution}"
    ).items:
        terminated = pod.status.container_statuses[0].state.terminated
        key = pod.metadata.labels["noetl.io/step"] + pod.metadata.labels.get("noetl.io/index", "")
        spans[key] = (terminated.started_at, terminated.finished_at)
    return spans


def test_parallel_branches_overlap_and_the_join_waits(resources: Resources):
    resources.apply_playbook_file(PLAYBOOKS / "fan-out-join.yaml")
    resources.execute("fan", "fan-out-join", {"pause": 2})
    assert resources.wait_finished("fan")["phase"] == "Succeeded"
    spans = pod_spans(resources, "fan")
    latest_start = max(spans[b][0] for b in ("one", "two", "three"))
    earliest_end = min(spans[b][1] for b in ("one", "two", "three"))
    assert latest_start < earliest_end  # all three were running at once
    assert spans["combine"][0] >= max(spans[b][1] for b in ("one", "two", "three"))


def test_retry_creates_one_job_per_attempt_and_records_events(resources: Resources):
    resources.apply_playbook_file(PLAYBOOKS / "retry.yaml")
    resources.execute("flaky", "retry")
    status = resources.wait_finished("flaky")
    assert status["result"] == "ok on attempt 3"
    assert status["steps"]["flaky"]["attempts"] == 3
    assert sorted(job.metadata.name for job in resources.jobs("flaky")) == [
        "flaky-flaky-a1",
        "flaky-flaky-a2",
        "flaky-flaky-a3",
    ]
    expected = ["StepRetrying"] * 2 + ["StepStarted"] * 3 + ["StepFailed"] * 2
    found = resources.wait_for_events("flaky", *expected, "ExecutionSucceeded")
    reasons = [e.reason for e in found]
    assert reasons.count("StepRetrying") == 2
    assert (
        reasons.count("StepStarted"),
        reasons.count("StepFailed"),
        reasons.count("StepSucceeded"),
    ) == (3, 2, 0)
    # The last attempt's success ended the execution: its Event tells both.
    [ended] = [e.message for e in found if e.reason == "ExecutionSucceeded"]
    assert ended == "execution succeeded; step flaky#3 succeeded"


def sleeper(name: str, seconds: int, timeout: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "step": "sleep",
        "tool": "shell",
        "args": {"command": f"sleep {seconds}"},
    }
    if timeout:
        step["timeout"] = timeout
    return {
        "kind": "Playbook",
        "metadata": {"name": name},
        "spec": {"workflow": [{"step": "start", "next": [{"step": "sleep"}]}, step]},
    }


def test_a_step_timeout_fails_the_step(resources: Resources):
    resources.create("playbooks", sleeper("slow", 60, "2s"))
    resources.execute("slow", "slow")
    status = resources.wait_finished("slow")
    assert status["phase"] == "Failed"
    assert status["error"] == "step 'sleep' failed: timed out after 2s"


def test_cancel_deletes_running_jobs(resources: Resources):
    resources.create("playbooks", sleeper("long", 120))
    resources.execute("long", "long")
    resources.wait(
        "executions", "long", lambda obj: (obj.get("status") or {}).get("currentStep") == "sleep"
    )
    resources.cancel("long")
    status = resources.wait_finished("long")
    assert status["phase"] == "Cancelled"
    assert status["conditions"][0]["status"] == "False"
    resources.wait("executions", "long", lambda obj: not resources.jobs("long"), timeout=120)


def test_deleting_an_execution_collects_everything_it_owns(resources: Resources):
    resources.create("playbooks", sleeper("doomed", 120))
    resources.execute("doomed", "doomed")
    resources.wait("executions", "doomed", lambda obj: bool(resources.jobs("doomed")))
    resources.custom.delete_namespaced_custom_object(
        "noetl.io",
        "v1alpha1",
        resources.namespace,
        "executions",
        "doomed",
        propagation_policy="Foreground",
    )

    def all_gone(_: Any) -> bool:
        config_maps = resources.core.list_namespaced_config_map(
            resources.namespace, label_selector="noetl.io/execution=doomed"
        ).items
        return not resources.jobs("doomed") and not config_maps

    resources.wait("executions", "doomed", all_gone, timeout=90)


def test_secrets_never_reach_status_or_events(resources: Resources):
    # Masked by value, whatever the keys are called: the plugin runtime reads the mounted Secret.
    values = {"DB_PW": "pw-hunter22", "X": "xylophone-77", "API_TOKEN": "s3cr3t-value-4711"}
    resources.core.create_namespaced_secret(
        resources.namespace, {"metadata": {"name": "token"}, "stringData": values}
    )
    body = {
        "kind": "Playbook",
        "metadata": {"name": "leaky"},
        "spec": {
            "workflow": [
                {"step": "start", "next": [{"step": "use"}]},
                {
                    "step": "use",
                    "tool": "shell",
                    "args": {
                        "secretRef": "token",
                        "command": 'echo "$DB_PW $X"; echo "token is $API_TOKEN $X" >&2; exit 1',
                    },
                },
            ]
        },
    }
    resources.create("playbooks", body)
    resources.execute("leaky", "leaky")
    status = resources.wait_finished("leaky")
    assert status["phase"] == "Failed"
    assert "token is *** ***" in status["error"]
    everything = json.dumps(resources.get("executions", "leaky")) + json.dumps(
        [e.message for e in resources.wait_for_events("leaky", "StepFailed", "ExecutionFailed")]
    )
    job = resources.jobs("leaky")[0]
    everything += json.dumps(resources.batch.api_client.sanitize_for_serialization(job))
    for value in values.values():
        assert value not in everything


def test_a_large_result_travels_through_the_pod_log_and_a_config_map(resources: Resources):
    body = {
        "kind": "Playbook",
        "metadata": {"name": "big"},
        "spec": {
            "workflow": [
                {"step": "start", "next": [{"step": "make"}]},
                {
                    "step": "make",
                    "tool": "python",
                    "code": "def main(n):\n    return ['x' * 100] * n",
                    "args": {"n": 100},
                },
            ]
        },
    }
    resources.create("playbooks", body)
    resources.execute("big", "big")
    status = resources.wait_finished("big")
    assert status["phase"] == "Succeeded", status.get("error")
    assert "result" not in status or status["result"] is None
    ref = status["resultRef"]
    data = resources.core.read_namespaced_config_map(ref["configMap"], resources.namespace).data
    assert json.loads(data[ref["key"]]) == ["x" * 100] * 100


def test_a_2000_step_playbook_runs_its_routing_steps(resources: Resources):
    steps: list[dict[str, Any]] = [{"step": "start", "next": [{"step": "s0"}]}]
    steps += [{"step": f"s{i}", "next": [{"step": f"s{i + 1}"}]} for i in range(1999)]
    steps += [{"step": "s1999", "tool": "shell", "args": {"command": "echo done"}}]
    resources.create(
        "playbooks", {"kind": "Playbook", "metadata": {"name": "huge"}, "spec": {"workflow": steps}}
    )
    playbook = resources.wait(
        "playbooks", "huge", lambda obj: obj.get("status", {}).get("observedGeneration") == 1
    )
    assert playbook["status"]["steps"] == 2001
    assert not playbook["metadata"].get("annotations")  # no last-handled-configuration kept by kopf
    resources.execute("huge", "huge")
    status = resources.wait_finished("huge", timeout=120)
    assert (status["phase"], status["result"]["stdout"]) == ("Succeeded", "done")
    assert len(status["steps"]) <= 100
    assert status["stepCounts"] == {"Succeeded": 2001}


def test_a_child_execution_past_its_step_timeout_is_stopped(resources: Resources):
    resources.create("playbooks", sleeper("nap", 120))
    parent = {"step": "child", "tool": "playbook", "timeout": "3s", "args": {"name": "nap"}}
    resources.create(
        "playbooks",
        {
            "kind": "Playbook",
            "metadata": {"name": "impatient"},
            "spec": {"workflow": [{"step": "start", "next": [{"step": "child"}]}, parent]},
        },
    )
    resources.execute("impatient", "impatient")
    status = resources.wait_finished("impatient")
    assert (status["phase"], status["error"]) == (
        "Failed",
        "step 'child' failed: timed out after 3s",
    )
    resources.wait(
        "executions", run_name("impatient", "child", None, 1), lambda obj: not obj, timeout=120
    )  # deleted
