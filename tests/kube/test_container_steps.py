"""`container` steps on a cluster, without a kubelet: the Job built for one, how its ended or
refused pod is read. (Pods of real images run on the test cluster only once it runs images.)"""

from __future__ import annotations

from typing import Any

from noetl.engine import StartStep
from noetl.kube.inbox import PodEnded
from noetl.kube.manifests import step_job
from noetl.kube.settings import OperatorSettings
from noetl.playbook import Step
from noetl.playbook.models import PodOptions
from noetl.plugins import container
from tests.kube.fake_api import FakeKubeApi
from tests.kube.test_driver import NS, Operator, submit

EXECUTION = {"metadata": {"name": "ex", "namespace": "team", "uid": "u-1"}}
ARGS = {
    "image": "docker.io/library/debian:bookworm-slim",
    "command": ["sh", "-c"],
    "args": ["echo hi"],
    "env": {"WHO": "Ada", "N": 3},
    "workingDir": "/work",
    "secretRef": "creds",
}


def test_a_container_step_is_a_job_of_its_image_with_the_step_defaults():
    command = StartStep("greet", None, 1, "container", ARGS, None, 60.0)
    pod_options = PodOptions(resources={"limits": {"memory": "1Gi"}}, nodeSelector={"pool": "x"})
    step = Step(step="greet", tool="container", pod=pod_options)
    settings = OperatorSettings(
        allowed_secrets=["team/creds"], allowed_node_selectors={"pool": ["x"]}
    )
    job = step_job(EXECUTION, command, step, settings)
    pod = job["spec"]["template"]["spec"]
    [box] = pod["containers"]
    assert (box["image"], box["command"], box["args"], box["workingDir"]) == (
        "docker.io/library/debian:bookworm-slim",
        ["sh", "-c"],
        ["echo hi"],
        "/work",
    )
    assert box["env"] == [{"name": "WHO", "value": "Ada"}, {"name": "N", "value": "3"}]
    assert box["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert box["terminationMessagePath"] == "/dev/termination-log"
    assert box["resources"] == {"limits": {"memory": "1Gi"}}
    assert pod["nodeSelector"] == {"pool": "x"}
    # The same locked-down defaults as every step's pod: non-root, read-only, no capabilities.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == settings.step_run_as_user
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert box["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert job["metadata"]["labels"]["noetl.io/tool"] == "container"


def test_a_container_ending_is_read_from_its_termination_message_else_its_output():
    assert container.outcome(0, '{"n": 1}', "ignored").result == {"n": 1}
    assert container.outcome(0, "plain words", "").result == "plain words"
    assert container.outcome(0, "", "line 1\nline 2\n").result == {"stdout": "line 1\nline 2"}
    failed = container.outcome(3, "", "working\nno such table\n")
    assert (failed.ok, failed.error) == (False, "container exited with code 3: no such table")


GREET = {
    "workflow": [
        {"step": "start", "next": [{"step": "greet"}]},
        {"step": "greet", "tool": "container", "args": {"image": "root-only:1"}},
    ]
}


def _refused_pod(job: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    template = job["spec"]["template"]["metadata"]
    return {
        "kind": "Pod",
        "metadata": {
            "name": f"{job['metadata']['name']}-pod",
            "namespace": NS,
            "labels": {**template["labels"], "job-name": job["metadata"]["name"]},
            "annotations": dict(template["annotations"]),
        },
        "status": {
            "containerStatuses": [{"state": {"waiting": {"reason": reason, "message": message}}}]
        },
    }


async def test_a_container_the_kubelet_refuses_fails_its_step_naming_why():
    api = FakeKubeApi()
    submit(api, GREET)
    operator = Operator(api)
    operator.start()
    await operator.idle()
    [job] = operator.unfinished_jobs()
    why = "container has runAsNonRoot and image will run as root"
    operator.driver.queue.put_nowait(PodEnded(_refused_pod(job, "CreateContainerConfigError", why)))
    await operator.idle()
    status = operator.status()
    assert status["phase"] == "Failed"
    assert status["error"] == (
        f"step 'greet' failed: the container was refused: CreateContainerConfigError: {why}"
    )
