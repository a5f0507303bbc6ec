"""End to end as a user installs NoETL: `helm install` of the chart into the test cluster with
this checkout's images (pinned tags, pull policy Never), so the operator runs in its own pod
from its image, under the chart's ServiceAccount and RBAC, with in-cluster configuration and its
probes; then every example playbook runs as an Execution, each step a Job in its plugin image as
uid 65532 on a read-only root.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from noetl.kube.settings import PLUGIN_TOOLS
from tests.cluster.cluster import Cluster
from tests.cluster.control_plane import free_port
from tests.images import ensure_images
from tests.local.test_examples import EXPECTED, users_server  # noqa: F401  (fixture)
from tests.operator.harness import Resources
from tests.operator.test_operator import apply_all_examples, workload_of

pytestmark = [pytest.mark.cluster, pytest.mark.containers]
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "noetl-operator"
CONTAINER_STEP_IMAGE = "docker.io/library/debian:bookworm-slim"  # playbooks/container.yaml's
RELEASE = "noetl-operator"  # the chart names its objects after it
UI_PORT = free_port()  # the web view's pod shares the machine's network too


class Release:
    """The chart installed in one namespace that its operator also watches."""

    def __init__(self, cluster: Cluster, namespace: str, home: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def helm(self, *args: str) -> str:
        completed = subprocess.run(
            [str(self.cluster.bin_dir / "helm"), *args, "--namespace", self.namespace],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr + self.pods() + self.operator_log()
        return completed.stdout

    def install(self, *settings: str) -> None:
        self.helm("upgrade", "--install", RELEASE, str(CHART), "--wait", "--timeout=4m", *settings)

    def operator_pod(self) -> Any:
        with self.cluster.api_client() as api:
            pods = client.CoreV1Api(api).list_namespaced_pod(
                self.namespace, label_selector="app.kubernetes.io/name=noetl-operator"
            )
        running = [p for p in pods.items if p.status.phase == "Running"]
        return running[0] if running else None

    def pods(self) -> str:
        """The namespace's pods with their containers' states: why one is not ready."""
        with self.cluster.api_client() as api:
            pods = client.CoreV1Api(api).list_namespaced_pod(self.namespace).items
        lines = [
            f"{pod.metadata.name}: {pod.status.phase} {status.state} ready={status.ready}"
            for pod in pods
            for status in pod.status.container_statuses or []
        ]
        return "\npods:\n" + "\n".join(lines)

    def operator_log(self) -> str:
        pod = self.operator_pod()
        if pod is None:
            return "\n(no operator pod is running)"
        with self.cluster.api_client() as api:
            log = client.CoreV1Api(api).read_namespaced_pod_log(
                pod.metadata.name, self.namespace, tail_lines=40
            )
        return f"\noperator log:\n{log}"


@pytest.fixture(scope="module")
def release(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    images = ensure_images()  # this checkout's images, under pinned tags
    repository, _, tag = images["operator"].rpartition(":")
    plugins = {tool: images[tool] for tool in PLUGIN_TOOLS}
    namespace = f"e2e-{uuid.uuid4().hex[:6]}"
    with kube_cluster.api_client() as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    installed = Release(kube_cluster, namespace, tmp_path_factory.mktemp("helm"))
    installed.install(
        f"--set=image.repository={repository}",
        f"--set=image.tag={tag}",
        "--set=image.pullPolicy=Never",
        f"--set-json=plugins.images={json.dumps(plugins)}",
        "--set=plugins.pullPolicy=Never",
        # Pods share the machine's network: ports of their own.
        f"--set=healthPort={free_port()}",
        f"--set=metrics.port={free_port()}",
        "--set=ui.enabled=true",
        f"--set=ui.port={UI_PORT}",
        f"--set-json=watchNamespaces={json.dumps([namespace])}",
        # The postgres example's step reads its connection from this Secret.
        f"--set-json=settings.allowedSecrets={json.dumps([f'{namespace}/pg'])}",
    )
    yield installed
    installed.helm("uninstall", RELEASE, "--wait")
    with kube_cluster.api_client() as api:
        client.CoreV1Api(api).delete_namespace(namespace)


@pytest.fixture
def resources(release: Release) -> Iterator[Resources]:
    with release.cluster.api_client() as api:
        yield Resources(api, release.namespace)


def test_the_operator_runs_in_its_pod_from_its_image(release: Release) -> None:
    pod = release.operator_pod()
    assert pod is not None
    (container,) = pod.spec.containers
    assert container.image == ensure_images()["operator"]
    assert container.image_pull_policy == "Never"
    assert pod.spec.service_account_name == RELEASE
    (status,) = pod.status.container_statuses
    assert status.ready and status.image_id.startswith("sha256:")


def test_every_example_gives_its_documented_result(
    resources: Resources,
    users_server: str,  # noqa: F811
    postgres_server: Any,
) -> None:
    secret = {k: base64.b64encode(v.encode()).decode() for k, v in postgres_server.env().items()}
    resources.core.create_namespaced_secret(
        resources.namespace, {"metadata": {"name": "pg"}, "data": secret}
    )
    apply_all_examples(resources)
    runs: dict[str, tuple[tuple[str, ...], dict[str, Any], Any]] = {
        f"ex-{i}": (args, workload_of(args), result)
        for i, (args, result) in enumerate(EXPECTED.items())
    }
    runs["ex-http"] = (
        ("python-http.yaml",),
        {"base_url": users_server},
        {"count": 3, "cities": ["London", "New York"]},
    )
    runs["ex-postgres"] = (
        ("postgres.yaml",),
        {},
        [
            {"city": "Oslo", "readings": 2, "average": 6.5},
            {"city": "Paris", "readings": 1, "average": 19.0},
        ],
    )
    # A container step: a stock Debian image (present: the images are built on it), as uid 65532.
    runs["ex-container"] = (
        ("container.yaml",),
        {},
        {"greeting": "Hello from debian, Ada", "user": 65532},
    )
    for name, (args, workload, _) in runs.items():
        resources.execute(name, Path(args[0]).stem, workload)
    images = ensure_images()
    for name, (_, _, result) in runs.items():
        status = resources.wait_finished(name, timeout=300)
        assert (status["phase"], status.get("error")) == ("Succeeded", None), name
        assert resources.result(status) == result, name
        for job in resources.jobs(name):
            (container,) = job.spec.template.spec.containers
            assert container.image in {*images.values(), CONTAINER_STEP_IMAGE}
            assert container.image_pull_policy == "Never"
            assert container.security_context.read_only_root_filesystem
            assert job.spec.template.spec.security_context.run_as_user == 65532


SCRATCH = """
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: scratch}
spec:
  workflow:
    - step: start
      next: [{step: write}]
    - step: write
      tool: shell
      args:
        command: "{{ workload.command }}"
      next: [{step: end}]
    - step: end
  output: "{{ write.stdout }}"
"""


def test_a_step_runs_as_65532_and_writes_only_to_tmp(resources: Resources) -> None:
    resources.create("playbooks", yaml.safe_load(SCRATCH))
    resources.execute("tmp", "scratch", {"command": "echo x > /tmp/x && cat /tmp/x && id -u"})
    resources.execute("root", "scratch", {"command": "echo x > /x"})
    tmp = resources.wait_finished("tmp", timeout=120)
    assert tmp["phase"] == "Succeeded", tmp.get("error")
    assert tmp["result"].split() == ["x", "65532"]
    root = resources.wait_finished("root", timeout=120)
    assert root["phase"] == "Failed"
    assert "Read-only file system" in json.dumps(root["error"])


UI_PLAYBOOK = """
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: seen}
spec:
  workflow:
    - step: start
      next: [{step: say}]
    - step: say
      tool: shell
      args: {command: echo seen}
      next: [{step: end}]
    - step: end
"""


def test_the_web_view_runs_in_its_pod_and_shows_the_namespaces_executions(
    resources: Resources,
) -> None:
    """The chart's web view (the operator's image, its read-only ServiceAccount): `helm --wait`
    saw it ready; it lists and shows an Execution, and refuses actions, which are off."""
    resources.create("playbooks", yaml.safe_load(UI_PLAYBOOK))
    resources.execute("seen-by-ui", "seen", {})
    assert resources.wait_finished("seen-by-ui")["phase"] == "Succeeded"
    base = f"http://127.0.0.1:{UI_PORT}"
    with urllib.request.urlopen(f"{base}/executions", timeout=30) as listing:
        assert "seen-by-ui" in listing.read().decode()
    page = f"{base}/executions/{resources.namespace}/seen-by-ui"
    with urllib.request.urlopen(page, timeout=30) as execution:
        assert "Succeeded" in execution.read().decode()
    cancel = urllib.request.Request(f"{page}/cancel", data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(cancel, timeout=30)
    assert refused.value.code == 403


def test_a_step_whose_image_is_missing_fails_with_a_clear_message(
    release: Release, resources: Resources
) -> None:
    """Runs last: it re-installs the release with an image that local storage does not hold.
    The node reports ErrImageNeverPull: told at once as an Event, and the step fails naming it
    when the pending deadline (shortened here) passes, never left Running."""
    release.install(
        "--reuse-values",
        "--set=plugins.images.shell=ghcr.io/noetl/absent:0",
        "--set=settings.stepPendingTimeout=5",
    )
    playbook = yaml.safe_load((ROOT / "playbooks" / "hello.yaml").read_text())
    playbook["metadata"]["name"] = "absent-image"  # the examples' own `hello` ran earlier here
    resources.create("playbooks", playbook)
    resources.execute("absent", "absent-image")
    status = resources.wait_finished("absent", timeout=60)
    assert status["phase"] == "Failed"
    assert "ghcr.io/noetl/absent:0" in json.dumps(status.get("error"))
    events = [e.message for e in resources.events("absent")]
    assert any("ghcr.io/noetl/absent:0" in (message or "") for message in events)
