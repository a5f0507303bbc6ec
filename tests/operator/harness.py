"""Helpers for operator tests: install the CRDs, run `noetl operator` as a real process, and
create and wait for resources through the API server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from noetl.kube.manifests import execution_selector
from noetl.kube.settings import PLUGIN_TOOLS
from noetl.playbook import API_GROUP, GROUP_VERSION
from tests.cluster.control_plane import free_port
from tests.images import ensure_images

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = API_GROUP, GROUP_VERSION
TERMINAL = ("Succeeded", "Failed", "Cancelled")


def install_crds(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        names.append(body["metadata"]["name"])
        try:
            extensions.create_custom_resource_definition(body)
        except ApiException as error:
            if error.status != 409:
                raise
    deadline = time.monotonic() + 120
    for name in names:
        while True:
            conditions = extensions.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            assert time.monotonic() < deadline, f"CRD {name} not established"
            time.sleep(0.2)


def step_image_settings() -> dict[str, str]:
    """Operator settings that run steps in this checkout's plugin images (pinned tags, built by
    tests/images.py into local image storage), never pulled."""
    pinned = ensure_images()
    images = {tool: pinned[tool] for tool in PLUGIN_TOOLS}
    return {"NOETL_IMAGES": json.dumps(images), "NOETL_IMAGE_PULL_POLICY": "Never"}


class OperatorProcess:
    """`noetl operator` in a child process, as it runs in its pod, its steps in this checkout's
    plugin images."""

    def __init__(
        self, kubeconfig: str | Path, log_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "PYTHONWARNINGS": "ignore",
            **step_image_settings(),
            **self.extra_env,
        }
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "noetl",
                "operator",
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                str(self.health_port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, f"operator exited: see {self.log_path}"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
                ):
                    return
            except OSError:
                assert time.monotonic() < deadline, f"operator not healthy: see {self.log_path}"
                time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            return str(response.read().decode())

    def api_calls(self) -> dict[tuple[str, str], float]:
        calls = {}
        for line in self.metrics().splitlines():
            if line.startswith("noetl_api_calls_total{"):
                labels, value = line[len("noetl_api_calls_total{") :].split("} ")
                parts = dict(item.split("=") for item in labels.split(","))
                calls[(parts["verb"].strip('"'), parts["resource"].strip('"'))] = float(value)
        return calls


class Resources:
    """Playbooks and Executions of one namespace."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    def apply_playbook_file(self, path: Path) -> dict[str, Any]:
        return self.create("playbooks", yaml.safe_load(path.read_text()))

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", **body}
        created: Any = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        )
        return dict(created)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        found: Any = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name
        )
        return dict(found)

    def execute(
        self, name: str, playbook: str, workload: dict[str, Any] | None = None, **spec: Any
    ) -> None:
        self.create(
            "executions",
            {
                "kind": "Execution",
                "metadata": {"name": name},
                "spec": {"playbookRef": {"name": playbook}, "workload": workload or {}, **spec},
            },
        )

    def cancel(self, name: str) -> None:
        """What `noetl cancel` does: set the Execution's `spec.cancel`."""
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "executions", name, {"spec": {"cancel": True}}
        )

    def wait(self, plural: str, name: str, done: Any, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                obj = self.get(plural, name)
            except ApiException as error:
                if error.status != 404:
                    raise
                obj = {}
            if done(obj):
                return obj
            if time.monotonic() > deadline:
                status = json.dumps(
                    {k: v for k, v in (obj.get("status") or {}).items() if k != "engine"}, indent=1
                )
                raise AssertionError(
                    f"{plural}/{name} did not get there in {timeout}s; status: {status}"
                )
            time.sleep(0.3)

    def wait_finished(self, name: str, timeout: float = 120) -> dict[str, Any]:
        execution = self.wait(
            "executions",
            name,
            lambda obj: (obj.get("status") or {}).get("phase") in TERMINAL,
            timeout,
        )
        return dict(execution["status"])

    def result(self, status: dict[str, Any]) -> Any:
        """A finished execution's result, inline or from the ConfigMap its resultRef names."""
        ref = status.get("resultRef")
        if not ref:
            return status.get("result")
        data = self.core.read_namespaced_config_map(ref["configMap"], self.namespace).data
        return json.loads(data[ref["key"]])

    def jobs(self, execution: str) -> list[Any]:
        return list(
            self.batch.list_namespaced_job(
                self.namespace, label_selector=execution_selector(execution)
            ).items
        )

    def quota(self, name: str, hard: dict[str, str]) -> None:
        """A ResourceQuota, once admission counts against it (the controller wrote its status)."""
        self.core.create_namespaced_resource_quota(
            self.namespace, {"metadata": {"name": name}, "spec": {"hard": hard}}
        )
        for event in watch.Watch().stream(
            self.core.list_namespaced_resource_quota,
            self.namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=60,
        ):
            if (event["object"].status.hard or {}) == hard:
                return
        raise AssertionError(f"the quota controller never wrote the status of quota {name}")

    def events(self, name: str) -> list[Any]:
        return [
            e
            for e in self.core.list_namespaced_event(self.namespace).items
            if e.involved_object.name == name
        ]

    def wait_for_events(self, name: str, *reasons: str, timeout: float = 90) -> list[Any]:
        """The Events about `name` once those of `reasons` are there, each at least as many times
        as it is given. Events are posted after the status write a test waits for, and those of
        one turn concurrently, so they may come a moment after it."""
        wanted = Counter(reasons)
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(name)
            seen = Counter(e.reason for e in found)
            if all(seen[reason] >= count for reason, count in wanted.items()):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the Events of {name} are {sorted(seen.elements())} after {timeout}s, "
                    f"not yet {sorted(wanted.elements())}"
                )
            time.sleep(0.3)
