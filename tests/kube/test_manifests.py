"""What the operator creates, as manifests: names, labels, security, secrets by reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from noetl.engine import ExecutionState, StartChildExecution, StartStep, StepState, record_key
from noetl.engine.machine import item_error_key
from noetl.kube.manifests import (
    BACKSTOP_SECONDS,
    child_execution,
    execution_config_map,
    execution_depth,
    execution_selector,
    owner_name,
    step_job,
)
from noetl.kube.names import dns_label, from_data_key, label_value, run_name, to_data_key
from noetl.kube.settings import OperatorSettings
from noetl.kube.status import SUMMARY_LIMIT, FinishedSteps, execution_status, merge_patch
from noetl.playbook import Step
from noetl.plugins.runtime import SECRET_DIR
from tests.cluster.pod_config import expand

EXECUTION = {
    "metadata": {
        "name": "weather-x7k2p",
        "namespace": "team-a",
        "uid": "1234-abcd",
        "generation": 1,
    }
}
ROOT = Path(__file__).resolve().parents[2]


def test_names_are_deterministic_valid_and_short():
    assert run_name("weather", "fetch_all", 3, 2) == run_name("weather", "fetch_all", 3, 2)
    assert run_name("weather", "fetch_all", None, 1) != run_name("weather", "fetch-all", None, 1)
    long = run_name("e" * 60, "s" * 63, 9999, 12)
    assert len(long) <= 63
    assert long == dns_label("e" * 60, "s" * 63, 9999, "a12")
    assert dns_label("Weather", "x_y") != dns_label("weather", "x-y")  # never collide by case or _


def test_a_step_job_is_locked_down_and_labelled():
    command = StartStep(
        "fetch_all", 3, 2, "http", {"url": "http://x", "secretRef": "api-token"}, None, 30.0
    )
    settings = OperatorSettings(allowed_secrets=["team-a/api-*"])
    job = step_job(EXECUTION, command, Step(step="fetch_all", tool="http"), settings)
    metadata, spec = job["metadata"], job["spec"]
    assert metadata["name"] == run_name("weather-x7k2p", "fetch_all", 3, 2)
    assert metadata["labels"]["noetl.io/execution"] == "weather-x7k2p"
    assert (
        metadata["labels"]["noetl.io/step"],
        metadata["labels"]["noetl.io/index"],
        metadata["labels"]["noetl.io/attempt"],
    ) == ("fetch_all", "3", "2")
    assert metadata["ownerReferences"][0]["uid"] == "1234-abcd"
    # The engine ends the step at 30s; the Job's own deadline is a backstop behind it.
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 30 + BACKSTOP_SECONDS)
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["image"] == OperatorSettings().images["http"]
    # A plugin that dies before writing its outcome leaves its log's tail there instead.
    assert (container["terminationMessagePath"], container["terminationMessagePolicy"]) == (
        "/dev/termination-log",
        "FallbackToLogsOnError",
    )
    assert "envFrom" not in container  # the runtime reads the Secret, to mask its values
    assert {"name": "secret", "mountPath": SECRET_DIR, "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "secret", "secret": {"secretName": "api-token"}} in pod["volumes"]
    request = json.loads(container["env"][0]["value"])
    assert request["args"]["url"] == "http://x"
    assert (request["index"], request["attempt"]) == (3, 2)


def test_step_pod_options_override_the_operator_defaults():
    step = Step.model_validate(
        {
            "step": "big",
            "tool": "shell",
            "pod": {"resources": {"limits": {"memory": "4Gi"}}, "nodeSelector": {"disk": "ssd"}},
        }
    )
    job = step_job(
        EXECUTION, StartStep("big", None, 1, "shell", {"command": "x"}), step, OperatorSettings()
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "4Gi"}}
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert job["spec"]["activeDeadlineSeconds"] == OperatorSettings().step_timeout_seconds


def test_the_step_input_survives_the_kubelets_variable_expansion():
    command = "psql -c 'DO $$ BEGIN PERFORM 1; END $$' && echo $(API_TOKEN) $$(HOME) $HOME"
    job = step_job(
        EXECUTION,
        StartStep("sql", None, 1, "shell", {"command": command}),
        Step(step="sql", tool="shell"),
        OperatorSettings(),
    )
    (variable,) = job["spec"]["template"]["spec"]["containers"][0]["env"]
    # What the process sees after the kubelet's expansion, with API_TOKEN a key of some Secret.
    seen = expand(variable["value"], {"API_TOKEN": "s3cr3t", "HOME": "/home"})
    assert json.loads(seen)["args"]["command"] == command


def test_labels_carry_long_execution_names_hashed_and_selectors_agree():
    name = "x" * 200
    execution = {"metadata": {**EXECUTION["metadata"], "name": name}}
    command = StartStep("s", 1, 1, "shell", {"command": "true"})
    job = step_job(execution, command, Step(step="s", tool="shell"), OperatorSettings())
    child = child_execution(execution, StartChildExecution("c", None, 1, "greet", {}))
    results = execution_config_map(execution, "r", "results", {})
    for labels in (
        job["metadata"]["labels"],
        job["spec"]["template"]["metadata"]["labels"],
        child["metadata"]["labels"],
        results["metadata"]["labels"],
    ):
        assert all(len(value) <= 63 for value in labels.values()), labels
        assert execution_selector(name) == f"noetl.io/execution={labels['noetl.io/execution']}"
    assert label_value(name) != label_value("x" * 199)
    assert label_value("weather-x7k2p") == "weather-x7k2p"
    assert child["metadata"]["labels"]["noetl.io/parent"] == label_value(name)
    # Whose Job (or child) it is comes from the ownerReference, which keeps the whole name.
    assert owner_name(job) == owner_name(child) == name


def test_pod_settings_reach_the_job_in_kubernetes_form():
    step = Step.model_validate(
        {
            "step": "gpu",
            "tool": "shell",
            "pod": {
                "resources": {"requests": {"cpu": "500m", "nvidia.com/gpu": 1}},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        }
    )
    job = step_job(
        EXECUTION, StartStep("gpu", None, 1, "shell", {"command": "x"}), step, OperatorSettings()
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "500m", "nvidia.com/gpu": 1}}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_a_secret_not_allowed_is_refused_when_the_job_is_built():
    command = StartStep("s", None, 1, "shell", {"command": "env", "secretRef": "admin-token"})
    step = Step(step="s", tool="shell")
    with pytest.raises(ValueError, match="'admin-token' is not among the operator's allowed"):
        step_job(EXECUTION, command, step, OperatorSettings(allowed_secrets=["other-ns/*"]))
    allowed = OperatorSettings(allowed_secrets=["team-*/admin-token"])
    job = step_job(EXECUTION, command, step, allowed)
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "secret", "secret": {"secretName": "admin-token"}} in volumes


def test_too_large_args_are_refused():
    with pytest.raises(ValueError, match="over the"):
        step_job(
            EXECUTION,
            StartStep("s", None, 1, "shell", {"command": "x" * 200_000}),
            Step(step="s", tool="shell"),
            OperatorSettings(),
        )


def test_a_child_execution_is_one_level_deeper_than_its_parent():
    command = StartChildExecution("greet_all", 1, 1, "greet", {})
    child = child_execution(EXECUTION, command)
    child["metadata"]["uid"] = "uid-of-the-child"  # as the API server gives it
    assert execution_depth(EXECUTION) == 0
    assert execution_depth(child) == 1
    assert execution_depth(child_execution(child, command)) == 2


def test_the_child_depth_limit_is_an_operator_setting():
    assert OperatorSettings().max_child_depth == 10
    assert OperatorSettings.from_env({"NOETL_MAX_CHILD_DEPTH": "3"}).max_child_depth == 3


def test_a_child_execution_is_owned_and_named_like_a_job():
    child = child_execution(
        EXECUTION, StartChildExecution("greet_all", 1, 1, "greet", {"who": "Ada"})
    )
    assert child["metadata"]["name"] == run_name("weather-x7k2p", "greet_all", 1, 1)
    assert child["metadata"]["labels"]["noetl.io/parent"] == "weather-x7k2p"
    assert child["spec"] == {"playbookRef": {"name": "greet"}, "workload": {"who": "Ada"}}


@pytest.mark.parametrize(
    "key", ["fetch", "fetch[3]", "fetch#items", "a-b_c[12]", item_error_key("a-b_c", 12)]
)
def test_result_keys_round_trip_through_config_map_keys(key):
    assert from_data_key(to_data_key(key)) == key


def test_the_status_summary_is_bounded():
    state = ExecutionState(phase="Running", started_at=1.0)
    results = {
        record_key(f"s{i}"): StepState(
            phase="Succeeded", attempt=1, started_at=i, finished_at=i + 0.5
        ).to_dict()
        for i in range(500)
    }
    state.steps["now"] = StepState(phase="Running", attempt=1, started_at=600)
    state.active["now"] = None
    status = execution_status(state, 1, FinishedSteps.from_results(results, state.steps))
    assert len(status["steps"]) == SUMMARY_LIMIT
    assert "now" in status["steps"] and "s499" in status["steps"] and "s0" not in status["steps"]
    assert {k: v for k, v in status["stepCounts"].items() if v} == {"Succeeded": 500, "Running": 1}
    assert status["currentStep"] == "now"
    assert status["conditions"][0]["status"] == "Unknown"


def test_a_status_patch_carries_only_what_changed():
    old = {"phase": "Running", "steps": {"a": {"phase": "Running"}, "b": {"phase": "Running"}}}
    new = {"phase": "Running", "steps": {"a": {"phase": "Succeeded"}, "c": {"phase": "Running"}}}
    assert merge_patch(old, new) == {
        "steps": {"a": {"phase": "Succeeded"}, "b": None, "c": {"phase": "Running"}}
    }
    assert merge_patch(new, new) == {}


def test_settings_come_from_the_environment():
    settings = OperatorSettings.from_env(
        {
            "NOETL_NAMESPACES": "a, b",
            "NOETL_IMAGES": '{"shell": "example/shell:1"}',
            "NOETL_API_QPS": "5",
            "NOETL_STEP_SERVICE_ACCOUNT": "steps",
            "NOETL_EXCLUDED_NAMESPACES": "kube-*, noetl-system",
            "NOETL_ALLOWED_SECRETS": '["team-a/pg"]',
            "NOETL_ALLOWED_NODE_SELECTORS": '{"pool": ["batch"]}',
        }
    )
    assert settings.excluded_namespaces == ["kube-*", "noetl-system"]
    assert (settings.allowed_secrets, settings.allowed_node_selectors) == (
        ["team-a/pg"],
        {"pool": ["batch"]},
    )
    assert settings.namespaces == ["a", "b"]
    assert settings.images["shell"] == "example/shell:1"
    assert settings.images["python"].endswith(
        f"noetl-plugin-python:{__import__('noetl').__version__}"
    )
    assert (settings.api_qps, settings.step_service_account) == (5.0, "steps")


def test_the_checked_in_crds_match_the_models():
    result = subprocess.run(
        [sys.executable, "-m", "noetl", "crds", "--check", "--output", str(ROOT / "crds")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
