"""Containers on the node agent as a kubelet runs them: the securityContext enforced, the
termination-message file, images missing from local storage, containers that die with the
agent, readiness probes, and a node that outlives a restart of the API server and etcd."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.cluster import runtime
from tests.cluster.cluster import Cluster
from tests.cluster.control_plane import free_port
from tests.cluster.test_control_plane import _processes, job, job_condition, run_job, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def core(kube_cluster: Cluster) -> Any:
    with kube_cluster.api_client() as api:
        yield client.CoreV1Api(api)


def _waiting(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    statuses = pod.status.container_statuses or []
    return statuses[0].state.waiting if statuses else None


def test_security_context_is_enforced(
    kube_cluster: Cluster, kube_namespace: str, sample_image: str
) -> None:
    script = (
        "id -u; id -g; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
        "touch /written 2>/dev/null && echo root-writable || echo root-read-only; "
        "echo scratch > /tmp/scratch && cat /tmp/scratch; "
        "printf done > /var/run/result"
    )
    body = job(
        sample_image,
        "secure",
        script,
        container={
            "terminationMessagePath": "/var/run/result",
            "securityContext": {
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        },
        securityContext={"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True},
        volumes=[{"name": "tmp", "emptyDir": {}}],
    )
    with kube_cluster.api_client() as api:
        finished, (pod,) = run_job(api, kube_namespace, body)
        log = client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, kube_namespace)
    assert job_condition(finished)[0] == "Complete", log
    assert log.split() == [
        "65532",
        "65532",
        "CapEff:",
        "0000000000000000",
        "NoNewPrivs:",
        "1",
        "Seccomp:",
        "2",
        "root-read-only",
        "scratch",
    ]
    assert pod.status.container_statuses[0].state.terminated.message == "done"


def test_run_as_non_root_refuses_an_image_that_runs_as_root(
    core: client.CoreV1Api, kube_namespace: str, sample_image: str
) -> None:
    container = {"name": "main", "image": sample_image, "command": ["true"]}
    pod = {
        "metadata": {"name": "rooted"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True},
            "containers": [container],
        },
    }
    created = core.create_namespaced_pod(kube_namespace, pod)
    waiting = wait_for(
        lambda: _waiting(core, kube_namespace, "rooted"), what="the container to wait"
    )
    while waiting.reason == "ContainerCreating":
        waiting = wait_for(lambda: _waiting(core, kube_namespace, "rooted"))
    assert waiting.reason == "CreateContainerConfigError"
    assert waiting.message == (
        "container has runAsNonRoot and image will run as root "
        f'(pod: "rooted_{kube_namespace}({created.metadata.uid})", container: main)'
    )
    assert core.read_namespaced_pod("rooted", kube_namespace).status.phase == "Pending"


@pytest.mark.parametrize(
    ("policy", "reasons"),
    [("Never", {"ErrImageNeverPull"}), ("IfNotPresent", {"ErrImagePull", "ImagePullBackOff"})],
)
def test_an_image_missing_from_local_storage_waits_with_the_kubelets_reason(
    core: client.CoreV1Api, kube_namespace: str, policy: str, reasons: set[str]
) -> None:
    image = f"example.invalid/absent:{uuid.uuid4().hex[:8]}"
    container = {"name": "main", "image": image, "imagePullPolicy": policy}
    pod = {"metadata": {"name": "absent"}, "spec": {"containers": [container]}}
    core.create_namespaced_pod(kube_namespace, pod)

    def failed_pull() -> Any:
        waiting = _waiting(core, kube_namespace, "absent")
        return waiting if waiting is not None and waiting.reason in reasons else None

    waiting = wait_for(failed_pull, what="a pull failure")
    if policy == "Never":
        assert waiting.message == (
            f'Container image "{image}" is not present with pull policy of Never'
        )
    else:
        assert image in waiting.message
    assert core.read_namespaced_pod("absent", kube_namespace).status.phase == "Pending"


def test_containers_die_with_the_agent(
    kube_cluster: Cluster, sample_image: str, tmp_path: Path
) -> None:
    """A cluster in a process that gets SIGKILL leaves no container behind."""
    marker = f"agent-killed-{uuid.uuid4().hex[:8]}"
    up = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster", "up"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert up.stdout is not None
        kubeconfig = ""
        for line in up.stdout:
            if line.startswith("export KUBECONFIG="):
                kubeconfig = line.strip().removeprefix("export KUBECONFIG=")
                break
        assert kubeconfig, "the cluster did not start"
        with config.new_client_from_config(config_file=kubeconfig) as api:
            core = client.CoreV1Api(api)
            wait_for(lambda: core.list_namespaced_service_account("default").items)
            container = {
                "name": "main",
                "image": sample_image,
                "command": ["sh", "-c", f"sleep 600 # {marker}"],
            }
            pod = {"metadata": {"name": "sleeper"}, "spec": {"containers": [container]}}
            core.create_namespaced_pod("default", pod)
            wait_for(
                lambda: core.read_namespaced_pod("sleeper", "default").status.phase == "Running",
                what="the pod to run",
            )
        assert marker in _processes()
    finally:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
    wait_for(lambda: marker not in _processes(), 30, "the container to be removed")


def test_the_node_stays_ready_when_the_api_server_and_etcd_restart(
    kube_cluster: Cluster, sample_image: str
) -> None:
    with Cluster(kube_cluster.bin_dir, node_name="restarted", log=lambda _: None) as cluster:
        cluster.control_plane.restart("etcd", "kube-apiserver")
        restarted = datetime.datetime.now(datetime.UTC)
        with cluster.api_client() as api:
            coordination = client.CoordinationV1Api(api)

            def renewed() -> bool:
                lease = coordination.read_namespaced_lease("restarted", "kube-node-lease")
                return bool(lease.spec.renew_time > restarted)

            wait_for(renewed, 30, "the node's lease to be renewed after the restart")
            wait_for(lambda: client.CoreV1Api(api).list_namespaced_service_account("default").items)
            finished, _ = run_job(api, "default", job(sample_image, "after", "echo back"))
            assert job_condition(finished)[0] == "Complete"
    assert cluster.node_agent is not None
    assert not runtime.labelled(cluster.node_agent.id), "stop() leaves no container"


def test_a_readiness_probe_decides_when_the_pod_is_ready(
    core: client.CoreV1Api, kube_namespace: str, sample_image: str, tmp_path: Path
) -> None:
    port = free_port()
    tmp_path.chmod(0o755)
    container = {
        "name": "web",
        "image": sample_image,
        "command": ["python3", "-m", "http.server", str(port), "--directory", "/srv"],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        "volumeMounts": [{"name": "content", "mountPath": "/srv"}],
    }
    pod = {
        "metadata": {"name": "web"},
        "spec": {
            "containers": [container],
            "volumes": [{"name": "content", "hostPath": {"path": str(tmp_path)}}],
            "terminationGracePeriodSeconds": 1,
        },
    }
    core.create_namespaced_pod(kube_namespace, pod)

    def status() -> Any:
        return core.read_namespaced_pod("web", kube_namespace).status

    wait_for(lambda: status().phase == "Running", what="the pod to run")
    # The server answers 404 for /ready until the file exists: running, not ready.
    wait_for(lambda: _get(port, "/"), what="the server to answer")
    assert not status().container_statuses[0].ready
    (tmp_path / "ready").write_text("yes")
    wait_for(lambda: status().container_statuses[0].ready, what="the probe to pass")
    conditions = {c.type: c.status for c in status().conditions}
    assert conditions["Ready"] == "True"


def _get(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None
