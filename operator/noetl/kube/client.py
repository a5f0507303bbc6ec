"""The cluster side of the `noetl` command: submit, list, get, status, logs, cancel, suspend,
resume, retry and resubmit Executions.

Plain, blocking calls through the official client, with the user's kubeconfig (or the pod's
service account). `submit` creates (or updates) the Playbook, then an Execution of it with a
generated name, and can follow it to the end through a watch. `logs --follow` streams every
step pod's log as it is written, one thread per pod, until the execution has ended; `logs`
shows, for a step whose pods are gone, the end of its log kept with its results.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from noetl.engine import merge_workload
from noetl.engine.state import FINISHED_PHASES, log_key, record_key
from noetl.kube.kubeconfig import load_kube_config
from noetl.kube.manifests import PURPOSE_LABEL, STEP_LABEL, execution_selector
from noetl.kube.names import RESULTS_PURPOSE, from_data_key
from noetl.kube.times import epoch_seconds
from noetl.playbook import API_GROUP, API_VERSION, GROUP_VERSION, Playbook
from noetl.tables import duration, table

LOG_SUFFIX = log_key("")


@dataclass(frozen=True)
class StepLog:
    """A step's log: a pod's whole log, or (`kept`) the end of it kept with the step's results
    once the pod is gone; `source` is the pod's name, or the step's."""

    source: str
    text: str
    kept: bool = False


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

    def executions(self) -> list[dict[str, Any]]:
        """The namespace's Executions, the most recent first."""
        found: Any = self.custom.list_namespaced_custom_object(
            API_GROUP, GROUP_VERSION, self.namespace, "executions"
        )
        items: list[dict[str, Any]] = found["items"]
        return sorted(items, key=lambda e: e["metadata"]["creationTimestamp"], reverse=True)

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

    def logs(self, name: str, step: str | None = None) -> Iterator[StepLog]:
        """The log of each step pod of the execution, oldest first; then, for each step whose
        pods are all gone (TTL, node loss, garbage collection), the end of its log kept with
        its results, in the order the steps finished."""
        execution = self.execution(name)  # a name that exists, even with no pod yet
        selector = execution_selector(name) + (f",{STEP_LABEL}={step}" if step else "")
        pods: list[Any] = self.core.list_namespaced_pod(
            self.namespace, label_selector=selector
        ).items
        for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
            try:
                text = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace)
            except ApiException as error:
                text = f"(no log: {error.reason})"
            yield StepLog(pod.metadata.name, text)
        with_pods = {(pod.metadata.labels or {}).get(STEP_LABEL) for pod in pods}
        yield from self._gone(execution, with_pods, step)

    def _gone(
        self, execution: dict[str, Any], with_pods: set[str | None], step: str | None
    ) -> Iterator[StepLog]:
        """The kept tails of the steps (or `step`) with no pod left, in the order they ended:
        from the execution's results ConfigMaps."""
        metadata = execution["metadata"]
        selector = f"{execution_selector(metadata['name'])},{PURPOSE_LABEL}={RESULTS_PURPOSE}"
        config_maps: list[Any] = self.core.list_namespaced_config_map(
            self.namespace, label_selector=selector
        ).items
        stored: dict[str, str] = {}  # by engine key
        for config_map in config_maps:
            owners = config_map.metadata.owner_references or []
            if any(owner.uid == metadata["uid"] for owner in owners):
                stored.update((from_data_key(k), v) for k, v in (config_map.data or {}).items())
        kept = []
        for name in (key.removesuffix(LOG_SUFFIX) for key in stored if key.endswith(LOG_SUFFIX)):
            if name in with_pods or step not in (None, name):
                continue
            log = json.loads(stored[log_key(name)])
            record = json.loads(stored.get(record_key(name), "{}"))
            kept.append((record.get("finished_at") or 0.0, StepLog(name, log, kept=True)))
        yield from (log for _, log in sorted(kept, key=lambda pair: pair[0]))

    def follow_logs(
        self, name: str, step: str | None = None, poll_seconds: float = 1.0
    ) -> Iterator[StepLog]:
        """Each line of every step pod (`source`: the pod) as it is written, until the execution
        has ended and each of its pods' logs has been read to the end; then, as `logs` does,
        the kept tail of each step whose pods were all gone."""
        execution = self.execution(name)
        selector = execution_selector(name) + (f",{STEP_LABEL}={step}" if step else "")
        lines: queue.Queue[tuple[str, str]] = queue.Queue()
        streams: dict[str, threading.Thread] = {}
        with_pods: set[str | None] = set()
        finished = False
        while True:
            if not finished:
                # Read before listing: every pod of an execution that has ended is in the list.
                execution = self.execution(name)
                finished = (execution.get("status") or {}).get("phase") in FINISHED_PHASES
                pods: list[Any] = self.core.list_namespaced_pod(
                    self.namespace, label_selector=selector
                ).items
                with_pods |= {(pod.metadata.labels or {}).get(STEP_LABEL) for pod in pods}
                for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
                    started = pod.status is not None and pod.status.phase != "Pending"
                    if started and pod.metadata.name not in streams:
                        thread = threading.Thread(
                            target=self._stream, args=(pod.metadata.name, lines), daemon=True
                        )
                        streams[pod.metadata.name] = thread
                        thread.start()
            deadline = time.monotonic() + poll_seconds
            while (wait := deadline - time.monotonic()) > 0:
                try:
                    yield StepLog(*lines.get(timeout=wait))
                except queue.Empty:
                    break
            if finished and not any(t.is_alive() for t in streams.values()) and lines.empty():
                yield from self._gone(execution, with_pods, step)
                return

    def _stream(self, pod: str, lines: queue.Queue[tuple[str, str]]) -> None:
        try:
            # Unread (_preload_content=False): a urllib3 response, read as the pod writes.
            response: Any = self.core.read_namespaced_pod_log(
                pod, self.namespace, follow=True, _preload_content=False
            )
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    lines.put((pod, line.decode("utf-8", errors="replace")))
            if pending:
                lines.put((pod, pending.decode("utf-8", errors="replace")))
        except ApiException as error:
            lines.put((pod, f"(no log: {error.reason})"))


def execution_rows(executions: list[dict[str, Any]], now: float) -> list[list[object]]:
    """NAME, PLAYBOOK, PHASE, STARTED, DURATION of each Execution, as `noetl list` prints."""
    rows: list[list[object]] = []
    for execution in executions:
        spec, status = execution.get("spec") or {}, execution.get("status") or {}
        playbook = (spec.get("playbookRef") or {}).get("name") or "(embedded)"
        started = status.get("startedAt")
        took = status.get("duration")
        if started and not took:
            took = duration(now - epoch_seconds(started))
        phase = status.get("phase") or "Pending"
        rows.append([execution["metadata"]["name"], playbook, phase, started, took])
    return rows


def describe_long(execution: dict[str, Any], now: float) -> str:
    """`noetl get`: what `kubectl describe` would say, with the steps as a table."""
    metadata, spec = execution["metadata"], execution.get("spec") or {}
    status = execution.get("status") or {}
    playbook = (spec.get("playbookRef") or {}).get("name") or "(embedded)"
    started = status.get("startedAt")
    took = status.get("duration") or (duration(now - epoch_seconds(started)) if started else None)
    fields = [
        ("Name", metadata["name"]),
        ("Namespace", metadata.get("namespace")),
        ("Playbook", playbook),
        ("Phase", status.get("phase") or "Pending"),
        ("Started", started),
        ("Finished", status.get("finishedAt")),
        ("Duration", took),
        ("Error", status.get("error")),
    ]
    if status.get("result") is not None:
        fields.append(("Result", json.dumps(status["result"], default=str)[:200]))
    if status.get("resultRef"):
        ref = status["resultRef"]
        fields.append(("Result", f"in ConfigMap {ref['configMap']}, key {ref['key']}"))
    lines = [f"{label + ':':<10} {value}" for label, value in fields if value is not None]
    conditions = status.get("conditions") or []
    if conditions:
        lines += ["Conditions:"] + [
            "  " + line
            for line in table(
                ["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"],
                [
                    [
                        c.get("type"),
                        c.get("status"),
                        c.get("reason"),
                        c.get("lastTransitionTime"),
                        c.get("message"),
                    ]
                    for c in conditions
                ],
            ).splitlines()
        ]
    steps = status.get("steps") or {}
    if steps:
        rows = []
        for step, summary in steps.items():
            begun, ended = summary.get("startedAt"), summary.get("finishedAt")
            took_step = None
            if begun:
                end = epoch_seconds(ended) if ended else now
                took_step = duration(end - epoch_seconds(begun))
            rows.append(
                [
                    step,
                    summary.get("phase"),
                    summary.get("attempts"),
                    summary.get("items"),
                    begun,
                    took_step,
                    summary.get("message"),
                ]
            )
        header = ["STEP", "PHASE", "ATTEMPTS", "ITEMS", "STARTED", "DURATION", "MESSAGE"]
        lines += ["Steps:"] + ["  " + line for line in table(header, rows).splitlines()]
    return "\n".join(lines)


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
