"""The cluster side of the `noetl` command: submit, status, logs, cancel, suspend, resume, retry
and resubmit Executions.

Plain, blocking calls through the official client, with the user's kubeconfig (or the pod's
service account). `submit` creates (or updates) the Playbook, then an Execution of it with a
generated name, and can follow it to the end through a watch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from noetl.engine import merge_workload
from noetl.engine.state import FINISHED_PHASES
from noetl.kube.kubeconfig import load_kube_config
from noetl.kube.manifests import STEP_LABEL, execution_selector
from noetl.playbook import API_GROUP, API_VERSION, GROUP_VERSION, Playbook


class NotFound(LookupError):
    """The named Execution does not exist in the namespace."""


class Cluster:
    def __init__(self, namespace: str, api_client: client.ApiClient | None = None) -> None:
        self.namespace = namespace
        api_client = api_client or load_kube_config()
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def apply_playbook(self, playbook: Playbook) -> None:
        body: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "Playbook",
            "metadata": {"name": playbook.name, "namespace": self.namespace},
            "spec": playbook.spec.model_dump(by_alias=True, exclude_none=True),
        }
        try:
            current: Any = self.custom.get_namespaced_custom_object(
                API_GROUP, GROUP_VERSION, self.namespace, "playbooks", playbook.name
            )
        except ApiException as error:
            if error.status != 404:
                raise
            self.custom.create_namespaced_custom_object(
                API_GROUP, GROUP_VERSION, self.namespace, "playbooks", body
            )
            return
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        self.custom.replace_namespaced_custom_object(
            API_GROUP, GROUP_VERSION, self.namespace, "playbooks", playbook.name, body
        )

    def create_execution(self, playbook: str, workload: dict[str, Any]) -> str:
        body = {
            "apiVersion": API_VERSION,
            "kind": "Execution",
            "metadata": {"generateName": f"{playbook}-", "namespace": self.namespace},
            "spec": {"playbookRef": {"name": playbook}, "workload": workload},
        }
        created: Any = self.custom.create_namespaced_custom_object(
            API_GROUP, GROUP_VERSION, self.namespace, "executions", body
        )
        return str(created["metadata"]["name"])

    def run_again(self, name: str, overrides: dict[str, Any], keep: bool) -> str:
        """A new Execution of what `name` ran, its workload with `overrides` laid over it; with
        `keep` (a retry) it names `name` in spec.retryOf, and the operator seeds it from there."""
        earlier = self.execution(name)["spec"]
        spec = {
            key: earlier[key]
            for key in ("playbookRef", "playbook", "ttlSecondsAfterFinished")
            if key in earlier
        }
        spec["workload"] = merge_workload(earlier.get("workload") or {}, overrides)
        if keep:
            spec["retryOf"] = name
        body = {
            "apiVersion": API_VERSION,
            "kind": "Execution",
            "metadata": {"generateName": f"{name}-", "namespace": self.namespace},
            "spec": spec,
        }
        created: Any = self.custom.create_namespaced_custom_object(
            API_GROUP, GROUP_VERSION, self.namespace, "executions", body
        )
        return str(created["metadata"]["name"])

    def _not_found(self, name: str) -> NotFound:
        return NotFound(f"no execution {name!r} in namespace {self.namespace!r}")

    def execution(self, name: str) -> dict[str, Any]:
        try:
            found: Any = self.custom.get_namespaced_custom_object(
                API_GROUP, GROUP_VERSION, self.namespace, "executions", name
            )
        except ApiException as error:
            if error.status == 404:
                raise self._not_found(name) from None
            raise
        return dict(found)

    def cancel(self, name: str) -> None:
        self._patch_spec(name, {"cancel": True})

    def suspend(self, name: str) -> None:
        self._patch_spec(name, {"suspend": True})

    def resume(self, name: str, values: dict[str, Any]) -> None:
        """Resume, and approve with `values` the approval steps waiting now (read from status)."""
        status = self.execution(name).get("status") or {}
        waiting = status.get("awaitingApproval") or []
        approvals = {"approvals": {step: values for step in waiting}} if waiting else {}
        self._patch_spec(name, {"suspend": False, **approvals})

    def _patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        try:
            self.custom.patch_namespaced_custom_object(
                API_GROUP, GROUP_VERSION, self.namespace, "executions", name, {"spec": spec}
            )
        except ApiException as error:
            if error.status == 404:
                raise self._not_found(name) from None
            raise

    def follow(
        self, name: str, on_change: Callable[[dict[str, Any]], None], timeout: int = 3600
    ) -> dict[str, Any]:
        """Watch the Execution until it ends; `on_change` sees each new version."""
        for event in watch.Watch().stream(
            self.custom.list_namespaced_custom_object,
            API_GROUP,
            GROUP_VERSION,
            self.namespace,
            "executions",
            field_selector=f"metadata.name={name}",
            timeout_seconds=timeout,
        ):
            execution = event["object"]
            on_change(execution)
            if (execution.get("status") or {}).get("phase") in FINISHED_PHASES:
                return dict(execution)
        raise TimeoutError(f"execution {name} did not finish within {timeout}s")

    def result(self, execution: dict[str, Any]) -> Any:
        status = execution.get("status") or {}
        ref = status.get("resultRef")
        if not ref:
            return status.get("result")
        config_map: Any = self.core.read_namespaced_config_map(ref["configMap"], self.namespace)
        return json.loads(config_map.data[ref["key"]])

    def logs(self, name: str, step: str | None = None) -> Iterator[tuple[str, str]]:
        """(pod name, log text) of each step pod of the execution, oldest first."""
        self.execution(name)  # a name that exists, even with no pod yet
        selector = execution_selector(name) + (f",{STEP_LABEL}={step}" if step else "")
        pods: list[Any] = self.core.list_namespaced_pod(
            self.namespace, label_selector=selector
        ).items
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
            try:
                text = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace)
            except ApiException as error:
                text = f"(no log: {error.reason})"
            yield pod.metadata.name, text


def describe(execution: dict[str, Any]) -> str:
    """A few lines for people: phase, timing, each step in the summary."""
    status = execution.get("status") or {}
    lines = [
        f"execution {execution['metadata']['name']}: {status.get('phase', 'Pending')}"
        + (f" in {status['duration']}" if status.get("duration") else "")
    ]
    if status.get("error"):
        lines.append(f"  error: {status['error']}")
    for name, step in (status.get("steps") or {}).items():
        detail = ", ".join(f"{key} {step[key]}" for key in ("attempts", "items") if key in step)
        lines.append(
            f"  {name}: {step['phase']}"
            + (f" ({detail})" if detail else "")
            + (f" - {step['message']}" if step.get("message") else "")
        )
    return "\n".join(lines)
