"""Executions and Playbooks on a cluster, read through the API server with the user's kubeconfig
(or the pod's service account).

This is the one place that knows where the operator keeps what:

- phase, times, error: `Execution.status`;
- each step's state, attempts and loop counts: the engine's records, those of the steps in flight
  in `status.engine`, those of finished steps in the results ConfigMaps under `<step>.record`
  (else the summary `status.steps`);
- the graph: the playbook as run, ConfigMap `<execution>-playbook` (key `playbook.json`), else
  the Playbook the Execution names;
- a step's result: the results ConfigMaps (labels `noetl.io/execution`,
  `noetl.io/purpose=results`);
- a step's attempts, rendered args and logs: its pods (labels `noetl.io/execution`,
  `noetl.io/step`); the args from the `NOETL_INPUT_JSON` value, never from any other variable;
  once its pods are gone, the end of its log kept in the results ConfigMaps under `<step>.log`;
- the Events: core Events whose involved object is the Execution;
- live changes: a watch on the Execution, and one on all Executions for the list;
- actions: through `noetl.kube.client.Cluster`, as the `noetl` commands do them (cancel,
  suspend and resume patch the spec; retry creates an Execution with `spec.retryOf`).

The blocking official client runs in threads, so the server's loop never waits on the network.
Secrets are never read: a step's Secret is only named (`args.secretRef`) in what is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from noetl.engine import log_key, record_key
from noetl.engine.state import FINISHED_PHASES, ExecutionState
from noetl.kube.client import Cluster, NotFound
from noetl.kube.manifests import (
    ATTEMPT_LABEL,
    EXECUTION_LABEL,
    INDEX_LABEL,
    PURPOSE_LABEL,
    STEP_LABEL,
)
from noetl.kube.names import RESULTS_PURPOSE, from_data_key, snapshot_config_map
from noetl.kube.refusals import error_text
from noetl.kube.times import epoch_seconds
from noetl.playbook.models import API_GROUP as GROUP
from noetl.playbook.models import GROUP_VERSION as VERSION
from noetl.plugins.runtime import INPUT_JSON_VAR
from noetl.ui.model import (
    LOCAL,
    Attempt,
    EventView,
    ExecutionSummary,
    ExecutionView,
    LogText,
    PlaybookView,
    StepDetail,
    StepView,
    applicable_actions,
    graph_of,
    place_errors,
)
from noetl.ui.sources import ActionRefused, fill_steps, step_views

T = TypeVar("T")
Args = tuple[Any, ...]
ListCall = tuple[Callable[..., Any], Args]  # a list function of the client and its arguments
LOG_BYTES = 256 * 1024  # the end of each pod's log, enough to read and small enough to send
RECORD = record_key("")  # the suffix of a finished step's record among the results
WATCH_SECONDS = 300
REWATCH_SECONDS = 2
REQUEST_SECONDS = 15


class ClusterRuns:
    """The cluster source, over all namespaces or the given ones."""

    name = "cluster"

    def __init__(self, api_client: client.ApiClient, namespaces: list[str] | None = None) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespaces = namespaces or None
        self._api_client = api_client

    def owns(self, namespace: str) -> bool:
        return namespace != LOCAL and (self.namespaces is None or namespace in self.namespaces)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("_request_timeout", REQUEST_SECONDS)  # an unreachable cluster fails fast
        return await asyncio.to_thread(function, *args, **kwargs)

    async def _list(self, plural: str) -> list[dict[str, Any]]:
        if self.namespaces is None:
            found: Any = await self._call(
                self.custom.list_cluster_custom_object, GROUP, VERSION, plural
            )
            return list(found["items"])
        items: list[dict[str, Any]] = []
        for namespace in self.namespaces:
            found = await self._call(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural
            )
            items += found["items"]
        return items

    async def _get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: Any = await self._call(
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "executions",
                name,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    async def executions(self) -> list[ExecutionSummary]:
        return [_summary(execution) for execution in await self._list("executions")]

    async def execution(self, namespace: str, name: str) -> ExecutionView | None:
        execution = await self._get(namespace, name)
        if execution is None:
            return None
        return fill_steps(await self._view(execution))

    async def _view(self, execution: dict[str, Any]) -> ExecutionView:
        status = execution.get("status") or {}
        metadata = execution["metadata"]
        view = ExecutionView(**vars(_summary(execution)), error=status.get("error"))
        spec = await self._playbook_spec(execution)
        if spec is None:
            view.note = "the playbook of this execution is not readable: only steps that ran show"
        else:
            view.graph = graph_of(spec)
        if status.get("engine"):
            # The state holds the steps in flight; finished steps' records are with the results.
            stored = await self._stored(metadata["namespace"], metadata["name"])
            records = {
                key: json.loads(text) for key, text in stored.items() if key.endswith(RECORD)
            }
            state = ExecutionState.from_dict(json.loads(status["engine"]))
            view.steps = step_views(state, records, view.graph.nodes)
        else:
            view.steps = {
                name: StepView(name, entry.get("phase", "Waiting"), entry.get("attempts", 0))
                for name, entry in (status.get("steps") or {}).items()
            }
        awaiting = bool(status.get("awaitingApproval"))
        view.actions = applicable_actions(view.phase, reachable=True, awaiting_approval=awaiting)
        return view

    async def _playbook_spec(self, execution: dict[str, Any]) -> Any:
        metadata, spec = execution["metadata"], execution.get("spec") or {}
        try:
            snapshot: Any = await self._call(
                self.core.read_namespaced_config_map,
                snapshot_config_map(metadata["name"]),
                metadata["namespace"],
            )
            return json.loads(snapshot.data["playbook.json"]).get("spec")
        except (ApiException, KeyError, TypeError, ValueError):
            pass  # not started yet: what it will run
        if spec.get("playbook") is not None:
            return spec["playbook"]
        ref = (spec.get("playbookRef") or {}).get("name")
        if not ref:
            return None
        try:
            found: Any = await self._call(
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                metadata["namespace"],
                "playbooks",
                ref,
            )
        except ApiException:
            return None
        return found.get("spec")

    async def step(self, namespace: str, name: str, step: str) -> StepDetail | None:
        view = await self.execution(namespace, name)
        if view is None or step not in view.steps:
            return None
        detail = StepDetail(view.steps[step])
        pods: Any = await self._call(
            self.core.list_namespaced_pod,
            namespace,
            label_selector=f"{EXECUTION_LABEL}={name},{STEP_LABEL}={step}",
        )
        for pod in sorted(pods.items, key=_attempt_order):
            detail.attempts.append(_attempt(pod))
            detail.logs.append(LogText(f"pod {pod.metadata.name}", await self._log(pod)))
        if detail.attempts and view.steps[step].message and detail.step.state == "Failed":
            detail.attempts[-1].error = detail.attempts[-1].error or view.steps[step].message
        if detail.step.finished is not None:  # results are written when a step ends
            stored = await self._stored(namespace, name)
            detail.has_result, detail.result = _result(stored, step)
            if not pods.items and log_key(step) in stored:
                text = json.loads(stored[log_key(step)])
                detail.logs.append(LogText("the end of its log, kept with the results", text))
        return detail

    async def _log(self, pod: Any) -> str:
        if (pod.status.phase or "Pending") == "Pending":
            return "(not started)"
        try:
            text: Any = await self._call(
                self.core.read_namespaced_pod_log,
                pod.metadata.name,
                pod.metadata.namespace,
                limit_bytes=LOG_BYTES,
            )
        except ApiException as error:
            return f"(no log: {error.reason})"
        return str(text)

    async def _stored(self, namespace: str, name: str) -> dict[str, str]:
        """Everything in the execution's results ConfigMaps, by engine key, as JSON text."""
        found: Any = await self._call(
            self.core.list_namespaced_config_map,
            namespace,
            label_selector=f"{EXECUTION_LABEL}={name},{PURPOSE_LABEL}={RESULTS_PURPOSE}",
        )
        return {
            from_data_key(key): text
            for config_map in found.items
            for key, text in (config_map.data or {}).items()
        }

    async def events(self, namespace: str, name: str) -> list[EventView]:
        found: Any = await self._call(
            self.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.name={name},involvedObject.kind=Execution",
        )
        events = [
            EventView(
                _seconds(event.last_timestamp or event.event_time or event.first_timestamp),
                event.type or "Normal",
                event.reason or "",
                event.message or "",
            )
            for event in found.items
        ]
        return sorted(events, key=lambda event: event.time or 0)

    async def _watch(
        self, *lists: tuple[Callable[..., Any], tuple[Any, ...]]
    ) -> AsyncIterator[Any]:
        """Each object the watches of these list calls see, until they all end (after
        WATCH_SECONDS, or broken); each watch runs in a thread of its own."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        streams = [watch.Watch() for _ in lists]

        def follow(
            stream: watch.Watch, function: Callable[..., Any], args: tuple[Any, ...]
        ) -> None:
            try:
                for event in stream.stream(function, *args, timeout_seconds=WATCH_SECONDS):
                    loop.call_soon_threadsafe(queue.put_nowait, event["object"])
            except Exception:  # the watch broke: what was seen stands, and one can look again
                pass
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        for stream, (function, args) in zip(streams, lists, strict=True):
            threading.Thread(target=follow, args=(stream, function, args), daemon=True).start()
        ended = 0
        try:
            while ended < len(lists):
                found = await queue.get()
                if found is None:
                    ended += 1
                else:
                    yield found
        finally:
            for stream in streams:
                stream.stop()

    async def changes(self, namespace: str, name: str) -> AsyncIterator[None]:
        """Each new version of the Execution."""
        one: ListCall = (
            functools.partial(
                self.custom.list_namespaced_custom_object, field_selector=f"metadata.name={name}"
            ),
            (GROUP, VERSION, namespace, "executions"),
        )
        async for execution in self._watch(one):
            yield
            if ((execution.get("status") or {}).get("phase")) in FINISHED_PHASES:
                return

    async def every_change(self) -> AsyncIterator[None]:
        """Each new version of any Execution shown; the watches started again when they end."""
        lists: list[ListCall]
        if self.namespaces is None:
            lists = [(self.custom.list_cluster_custom_object, (GROUP, VERSION, "executions"))]
        else:
            lists = [
                (self.custom.list_namespaced_custom_object, (GROUP, VERSION, ns, "executions"))
                for ns in self.namespaces
            ]
        while True:
            async for _ in self._watch(*lists):
                yield
            await asyncio.sleep(REWATCH_SECONDS)  # not in a tight loop when watches break

    async def _act(self, namespace: str, name: str, act: Callable[[Cluster], T]) -> T:
        """What the `noetl` command does, in a thread; a refusal said in a sentence."""
        try:
            return await asyncio.to_thread(act, Cluster(namespace, self._api_client))
        except NotFound as missing:
            raise ActionRefused(str(missing)) from None
        except ApiException as error:
            raise ActionRefused(f"the API server refused: {error_text(error)}") from None

    async def cancel(self, namespace: str, name: str) -> None:
        await self._act(namespace, name, lambda cluster: cluster.cancel(name))

    async def suspend(self, namespace: str, name: str) -> None:
        await self._act(namespace, name, lambda cluster: cluster.suspend(name))

    async def resume(self, namespace: str, name: str) -> None:
        await self._act(namespace, name, lambda cluster: cluster.resume(name, {}))

    async def retry(self, namespace: str, name: str) -> str:
        return await self._act(namespace, name, lambda cluster: cluster.run_again(name, {}, True))

    async def playbooks(self) -> list[PlaybookView]:
        views = []
        for playbook in await self._list("playbooks"):
            status = playbook.get("status") or {}
            ready = next(
                (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
            )
            valid = None if ready is None else ready.get("status") == "True"
            errors = [(e.get("path", ""), e.get("message", "")) for e in status.get("errors") or []]
            spec = playbook.get("spec") or {}
            graph = graph_of(spec)
            place_errors(errors, graph)
            metadata = playbook["metadata"]
            views.append(
                PlaybookView(
                    metadata["name"],
                    metadata["namespace"],
                    "cluster",
                    valid,
                    errors,
                    graph,
                    spec.get("description"),
                )
            )
        return views

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._api_client.close()


def _summary(execution: dict[str, Any]) -> ExecutionSummary:
    metadata, spec = execution["metadata"], execution.get("spec") or {}
    status = execution.get("status") or {}
    playbook = (spec.get("playbookRef") or {}).get("name") or "(embedded)"
    started = status.get("startedAt") or metadata.get("creationTimestamp")
    return ExecutionSummary(
        metadata["name"],
        metadata["namespace"],
        playbook,
        status.get("phase") or "Pending",
        _seconds(started),
        _seconds(status.get("finishedAt")),
    )


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return epoch_seconds(str(value).replace("Z", "+00:00"))


def _result(stored: dict[str, str], step: str) -> tuple[bool, Any]:
    text = stored.get(step)
    if text is None:
        return False, None
    try:
        return True, json.loads(text)
    except ValueError:
        return True, text


def _attempt_order(pod: Any) -> tuple[int, int]:
    labels = pod.metadata.labels or {}
    return int(labels.get(INDEX_LABEL, -1)), int(labels.get(ATTEMPT_LABEL, 0))


def _attempt(pod: Any) -> Attempt:
    labels = pod.metadata.labels or {}
    index = labels.get(INDEX_LABEL)
    attempt = Attempt(int(labels.get(ATTEMPT_LABEL, 0)), int(index) if index else None)
    phase = pod.status.phase or "Pending"
    attempt.state = phase if phase in ("Running", "Succeeded", "Failed") else "Starting"
    attempt.started = _seconds(pod.status.start_time)
    for container in pod.status.container_statuses or []:
        terminated = container.state.terminated if container.state else None
        if terminated is not None:
            attempt.finished = _seconds(terminated.finished_at)
            if terminated.exit_code:
                attempt.error = f"{terminated.reason or 'Error'} (exit code {terminated.exit_code})"
    for container in pod.spec.containers:
        for variable in container.env or []:
            if variable.name == INPUT_JSON_VAR and variable.value:  # the one variable shown
                with contextlib.suppress(ValueError):
                    attempt.args = json.loads(variable.value).get("args")
    return attempt
