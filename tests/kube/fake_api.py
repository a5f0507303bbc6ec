"""An in-memory API server behind the `KubeApi` interface the operator's drivers use.

It keeps objects by kind, namespace and name, bumps a resourceVersion on every write, answers
AlreadyExists (create returns False) and NotFound (None, or nothing to delete) as `KubeApi` does,
and applies status and ConfigMap patches as JSON merge patches. Two kinds of trouble can be
injected: API errors (`fail`: the next calls of a verb and resource raise, e.g. 409, 410, 429,
500 or a timeout), and a crash of the operator right after its Nth write (`crash_after_writes`),
which raises `OperatorCrashed` past every `except Exception` in the operator, as a SIGKILL would
end it, leaving the objects as they were written.

A test plays the cluster's part for Jobs: `finish_job` gives a Job its pod and its end; and time
is a `FakeClock` that moves only when the test advances it.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from noetl.kube.shared_reads import selected
from noetl.loop import Clock
from noetl.plugins.envelope import encode
from noetl.plugins.messages import Outcome

Key = tuple[str, str, str]  # kind, namespace, name
PLURAL_KINDS = {
    "executions": "Execution",
    "playbooks": "Playbook",
    "cronplaybooks": "CronPlaybook",
}


class _Call:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class FakeClock(Clock):
    """Time that moves only when a test says so; callbacks run as their time is passed."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.time = start
        self._calls: list[tuple[float, int, _Call]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Call:
        call = _Call(callback)
        heapq.heappush(self._calls, (self.time + delay, next(self._order), call))
        return call

    def advance(self, seconds: float) -> None:
        self.time += seconds
        while self._calls and self._calls[0][0] <= self.time:
            _, _, call = heapq.heappop(self._calls)
            if call.callback is not None:
                call.callback()


class WatchedQueue(asyncio.Queue[Any]):
    """A driver's queue that tells when the driver waits on it with nothing left to read."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()

    async def get(self) -> Any:
        if self.empty():
            self.waiting.set()
        try:
            return await super().get()
        finally:
            self.waiting.clear()


async def until_idle(task: asyncio.Task[Any], queue: WatchedQueue, timeout: float = 60) -> None:
    """Until the driver has ended, or waits for a message with none queued (its work is done:
    nothing else wakes it, since the fake clock moves only when a test advances it)."""
    while not task.done() and not (queue.waiting.is_set() and queue.empty()):
        waiting = asyncio.ensure_future(queue.waiting.wait())
        done, _ = await asyncio.wait(
            {task, waiting}, timeout=timeout, return_when="FIRST_COMPLETED"
        )
        waiting.cancel()
        if not done:
            raise AssertionError(f"the driver neither waited nor ended within {timeout}s")
        await asyncio.sleep(0)  # a message put meanwhile is in the queue by now


class OperatorCrashed(BaseException):
    """The operator died right after a write (a BaseException: nothing in it may catch this)."""


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _field(obj: dict[str, Any], path: str) -> Any:
    """The value at a field selector's dotted path (`involvedObject.uid`)."""
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None  # type: ignore[assignment]
    return obj


class FakeKubeApi:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        # Lists by label cost what they return, not what is stored, as an API server's index.
        self._labelled: dict[tuple[str, str, str, str], set[str]] = {}
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name), in order
        self.created: Counter[Key] = Counter()  # successful creates by object
        self.status_patches: list[int] = []  # bytes of each status patch
        self.reads: list[tuple[str, str, str]] = []  # (verb, kind, selector or name), in order
        self.crash_after_writes: int | None = None
        self.crashed = False
        self._faults: dict[tuple[str, str], list[BaseException]] = {}
        self._versions = itertools.count(1)
        self._names = itertools.count(1)

    # Trouble ----------------------------------------------------------------------------------

    def fail(self, verb: str, kind: str, *errors: BaseException) -> None:
        """The next calls of `verb` on `kind` raise these, one each."""
        self._faults.setdefault((verb, kind), []).extend(errors)

    def revive(self) -> None:
        """A new operator process: calls are answered again."""
        self.crashed = False

    def _call(self, verb: str, kind: str) -> None:
        if self.crashed:  # a dead process makes no more calls, whatever it had under way
            raise OperatorCrashed("the operator is dead")
        faults = self._faults.get((verb, kind))
        if faults:
            raise faults.pop(0)

    def _wrote(self, verb: str, kind: str, name: str) -> None:
        self.writes.append((verb, kind, name))
        if self.crash_after_writes is not None and len(self.writes) >= self.crash_after_writes:
            self.crash_after_writes = None
            self.crashed = True
            raise OperatorCrashed(f"after write {len(self.writes)}: {verb} {kind} {name}")

    # Helpers for tests ------------------------------------------------------------------------

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as a user (or a controller) would, with no fault or crash."""
        body = copy.deepcopy(body)
        metadata = body["metadata"]
        metadata.setdefault("uid", f"uid-{next(self._names)}")
        metadata.setdefault("generation", 1)
        metadata["resourceVersion"] = str(next(self._versions))
        metadata.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        kind, namespace, name = body["kind"], metadata["namespace"], metadata["name"]
        self._forget((kind, namespace, name))
        self.objects[(kind, namespace, name)] = body
        for label, value in (metadata.get("labels") or {}).items():
            self._labelled.setdefault((kind, namespace, label, value), set()).add(name)
        return body

    def _forget(self, key: Key) -> dict[str, Any] | None:
        obj = self.objects.pop(key, None)
        if obj is not None:
            kind, namespace, name = key
            for label, value in (obj["metadata"].get("labels") or {}).items():
                self._labelled.get((kind, namespace, label, value), set()).discard(name)
        return obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for (k, _, _), obj in self.objects.items() if k == kind]

    def pod(self, namespace: str, job: str, state: dict[str, Any]) -> dict[str, Any]:
        """The Job's pod, its container in `state` (waiting, running, terminated), as the kubelet
        reports it."""
        template = self.objects[("Job", namespace, job)]["spec"]["template"]["metadata"]
        return self.put(
            {
                "kind": "Pod",
                "metadata": {
                    "name": f"{job}-pod",
                    "namespace": namespace,
                    "labels": {**template.get("labels", {}), "job-name": job},
                    "annotations": dict(template.get("annotations", {})),
                },
                "status": {"containerStatuses": [{"name": "step", "state": state}]},
            }
        )

    def finish_job(
        self,
        namespace: str,
        name: str,
        ok: bool = True,
        result: Any = None,
        log: str | None = None,
    ) -> dict[str, Any]:
        """The Job's pod ends with this outcome, and the Job controller marks it so: the pod."""
        job = self.objects[("Job", namespace, name)]
        error = None if ok else "step failed"
        message, _ = encode(Outcome(ok=ok, result=result, error=error, log=log))
        terminated = {"exitCode": 0 if ok else 1, "message": message}
        pod = self.pod(namespace, name, {"terminated": terminated})
        condition = "Complete" if ok else "Failed"
        job["status"] = {
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:00:01Z",
            "conditions": [{"type": condition, "status": "True"}],
        }
        job["metadata"]["resourceVersion"] = str(next(self._versions))
        return pod

    # The KubeApi interface --------------------------------------------------------------------

    async def acquire(self) -> None:
        await asyncio.sleep(0)  # a token, as the real bucket gives one: after a turn of the loop

    def without_limit(self) -> FakeKubeApi:
        return self

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get", PLURAL_KINDS[plural])
        self.reads.append(("get", PLURAL_KINDS[plural], name))
        return copy.deepcopy(self.get(PLURAL_KINDS[plural], namespace, name))

    async def _list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._call("list", kind)
        self.reads.append(("list", kind, selector))
        label, equals, value = selector.split(",")[0].partition("=")
        if equals:
            names = self._labelled.get((kind, namespace, label, value), set())
        else:  # a bare key, or no selector: every object of the kind there
            names = {n for k, ns, n in self.objects if (k, ns) == (kind, namespace)}
        found = [self.objects[(kind, namespace, name)] for name in sorted(names)]
        return [copy.deepcopy(obj) for obj in found if selected(obj, selector)]

    async def list_custom(self, plural: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list(PLURAL_KINDS[plural], namespace, selector)

    async def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list("Job", namespace, selector)

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list("Pod", namespace, selector)

    async def list_config_maps(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list("ConfigMap", namespace, selector)

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        self._call("list", "Event")
        self.reads.append(("list", "Event", field_selector))
        fields = dict(term.split("=", 1) for term in field_selector.split(","))
        return [
            copy.deepcopy(event)
            for (kind, ns, _), event in self.objects.items()
            if (kind, ns) == ("Event", namespace)
            and all(_field(event, path) == value for path, value in fields.items())
        ]

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get", "ConfigMap")
        self.reads.append(("get", "ConfigMap", name))
        return copy.deepcopy(self.get("ConfigMap", namespace, name))

    async def pod_log(self, namespace: str, pod: str) -> str:
        self._call("get", "Pod")
        return ""

    async def create(self, body: dict[str, Any]) -> bool:
        kind, metadata = body["kind"], body["metadata"]
        self._call("create", kind)
        name = metadata.get("name") or f"{metadata['generateName']}{next(self._names)}"
        key = (kind, metadata["namespace"], name)
        if key in self.objects:
            return False
        self.put({**body, "metadata": {**metadata, "name": name}})
        self.created[key] += 1
        self._wrote("create", kind, name)
        return True

    def _patch(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._call("patch", kind)
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            raise ApiException(status=404, reason="Not Found")
        json.dumps(patch)  # what is sent must be JSON
        merge(obj, copy.deepcopy(patch))
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        self._wrote("patch", kind, name)

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        self._patch(PLURAL_KINDS[plural], namespace, name, {"status": status})
        self.status_patches.append(len(json.dumps({"status": status})))

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        self._patch(PLURAL_KINDS[plural], namespace, name, patch)

    async def patch_config_map_data(
        self, namespace: str, name: str, data: dict[str, str | None]
    ) -> None:
        self._patch("ConfigMap", namespace, name, {"data": data})

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        self._call("delete", kind)
        if self._forget((kind, namespace, name)) is None:
            return
        if kind == "Job":  # background propagation takes the Job's pods too
            for pod in list(self._labelled.get(("Pod", namespace, "job-name", name), ())):
                self._forget(("Pod", namespace, pod))
        self._wrote("delete", kind, name)

    def close(self) -> None:
        pass
