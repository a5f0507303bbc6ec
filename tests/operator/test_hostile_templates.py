"""Operator shell, on a real API server: hostile templates are refused without stopping the
operator, and what the API server makes of the YAML values `noetl run` reads as YAML 1.2."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.playbook.yaml_core import load_yaml
from tests.operator.harness import GROUP, VERSION, Resources

pytestmark = pytest.mark.cluster


def shell_playbook(name: str, command: str) -> dict[str, Any]:
    return {
        "kind": "Playbook",
        "metadata": {"name": name},
        "spec": {
            "workflow": [
                {"step": "start", "next": [{"step": "work"}]},
                {"step": "work", "tool": "shell", "args": {"command": command}},
            ]
        },
    }


def test_a_hostile_template_is_invalid_and_other_executions_carry_on(resources: Resources):
    resources.create("playbooks", shell_playbook("hostile", "echo {{ (9 ** (9 ** 8)) % 7 }}"))
    resources.create("playbooks", shell_playbook("benign", "echo fine"))
    resources.execute("of-benign", "benign")
    resources.execute("of-hostile", "hostile")
    hostile = resources.wait(
        "playbooks", "hostile", lambda obj: obj.get("status", {}).get("observedGeneration") == 1
    )
    assert hostile["status"]["conditions"][0]["reason"] == "Invalid"
    [error] = hostile["status"]["errors"]
    assert error["path"] == "spec.workflow[1].args.command"
    assert "over the template limits: an integer of more than 4,096 bits" in error["message"]
    assert resources.wait_finished("of-benign")["phase"] == "Succeeded"
    refused = resources.wait_finished("of-hostile")
    assert refused["conditions"][0]["reason"] == "InvalidPlaybook"
    assert "spec.workflow[1].args.command" in refused["error"]


def test_a_template_past_the_limits_at_run_time_fails_its_step(resources: Resources):
    resources.create("playbooks", shell_playbook("power", "echo {{ workload.n ** workload.n }}"))
    resources.execute("of-power", "power", {"n": 1000000})
    status = resources.wait_finished("of-power")
    assert status["phase"] == "Failed"
    assert status["error"] == (
        "step 'work' failed: args: template 'echo {{ workload.n ** workload.n }}': "
        "over the template limits: an integer of more than 4,096 bits"
    )


YAML_VALUES = """\
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: yaml-values}
spec:
  workload:
    day: 2024-05-01
    stamp: 2024-05-01T10:00:00Z
    answer: NO
    words: [yes, no, on, off, y, n, True, FALSE]
    zip: 02134
    numbers: [0o17, 0x1F, 1_000, 1e3]
    at: 12:30
    quoted: ["NO", '02134']
  workflow:
    - step: start
"""


def test_what_the_api_server_makes_of_yaml_values(resources: Resources):
    """`kubectl apply` and a YAML request body go through the same conversion (sigs.k8s.io/yaml,
    YAML 1.1 rules): docs/dsl.md shows users this table."""
    api = resources.custom.api_client
    request = api.param_serialize(
        "POST",
        f"/apis/{GROUP}/{VERSION}/namespaces/{resources.namespace}/playbooks",
        header_params={"Content-Type": "application/yaml", "Accept": "application/json"},
        body=YAML_VALUES,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request[:4])
    assert response.status == 201, response.read()
    workload = resources.get("playbooks", "yaml-values")["spec"]["workload"]
    assert workload == {
        "day": "2024-05-01",
        "stamp": "2024-05-01T10:00:00Z",
        "answer": False,
        "words": [True, False, True, False, True, False, True, False],
        "zip": 1116,
        "numbers": [15, 31, 1000, 1000],
        "at": "12:30",
        "quoted": ["NO", "02134"],
    }
    # What `noetl run` reads from the same text: only the quoted values agree everywhere.
    assert load_yaml(YAML_VALUES)["spec"]["workload"] == {
        "day": "2024-05-01",
        "stamp": "2024-05-01T10:00:00Z",
        "answer": "NO",
        "words": ["yes", "no", "on", "off", "y", "n", True, False],
        "zip": 2134,
        "numbers": [15, 31, "1_000", 1000.0],
        "at": "12:30",
        "quoted": ["NO", "02134"],
    }
