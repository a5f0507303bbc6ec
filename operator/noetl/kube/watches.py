"""Watches of the step Jobs and their pods, made by the operator itself rather than by kopf.

These are its busiest streams: a step Job and its pod change five times or more each in a life of
a second. kopf would take every change through its handler machinery (a task per object, causes,
handler state, loggers), and it filters by label only after decoding every Job and pod of the
namespace. Here the API server filters (`labelSelector`), each change is decoded once, in the
watch's own thread, and handed to a plain function on the event loop: what the operator spends per
step is then mostly its own work.

A watch lists first and hands over every object it finds as a change of type None (as kopf does
when it starts), then follows from the list's resourceVersion. When the server ends the stream it
resumes from the last version seen (bookmarks keep it fresh); when that version is too old (410
Gone) it lists again. Any other error is logged and retried after a backoff, as kopf does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatchcase
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
Change = Callable[[str | None, dict[str, Any]], None]
SERVER_TIMEOUT = 300
BACKOFFS = (1.0, 2.0, 5.0, 10.0)


class Gone(Exception):
    """The version to resume from is too old: list again."""


class Watch:
    """One kind (`jobs` or `pods`) in one namespace (None: all, or those matching one of the
    shell patterns `only`), as a thread that hands each change to `changed` on the event loop."""

    def __init__(
        self,
        api_client: client.ApiClient,
        kind: str,
        namespace: str | None,
        selector: str,
        changed: Change,
        only: Sequence[str] = (),
        backoffs: Sequence[float] = BACKOFFS,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.selector = selector
        self.changed = changed
        self.only = only
        self.backoffs = backoffs
        self._list = _lister(api_client, kind, namespace)
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Changes decoded but not yet handed over, and whether the loop was woken for them:
        # a burst wakes it once, not once per change.
        self._arrived: list[tuple[str | None, dict[str, Any]]] = []
        self._woken = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        name = f"watch {self.kind} in {self.namespace or 'all namespaces'}"
        threading.Thread(target=self._follow, name=name, daemon=True).start()

    def stop(self) -> None:
        """No change is handed over after this; the thread ends with its stream."""
        self._stopped.set()

    def _follow(self) -> None:
        version: str | None = None
        failures = 0
        while not self._stopped.is_set():
            try:
                if version is None:
                    version = self._relist()
                for reached in self._stream(version):
                    version, failures = reached, 0
            except Gone:
                version = None
            except Exception as error:
                delay = self.backoffs[min(failures, len(self.backoffs) - 1)]
                failures += 1
                log.warning("watch of %s failed, again in %gs: %s", self.kind, delay, error)
                self._stopped.wait(delay)

    def _relist(self) -> str:
        response = self._list(label_selector=self.selector, _preload_content=False)
        found = json.loads(response.data)
        for obj in found["items"]:
            self._hand_over(None, obj)
        return str(found["metadata"]["resourceVersion"])

    def _stream(self, version: str) -> Iterator[str]:
        """Each change from `version` on, handed over; yields the version reached."""
        try:
            response = self._list(
                label_selector=self.selector,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=SERVER_TIMEOUT,
                _preload_content=False,
                _request_timeout=(10, SERVER_TIMEOUT + 30),
            )
        except ApiException as error:
            if error.status == 410:
                raise Gone from None
            raise
        try:
            for line in response:
                if self._stopped.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone
                    raise RuntimeError(obj.get("message") or obj)
                if kind != "BOOKMARK":
                    self._hand_over(kind, obj)
                yield obj["metadata"]["resourceVersion"]
        finally:
            response.close()  # a stream left unread cannot go back to the pool for reuse
            response.release_conn()

    def _hand_over(self, kind: str | None, obj: dict[str, Any]) -> None:
        assert self._loop is not None
        namespace = obj["metadata"].get("namespace", "")
        if self.only and not any(fnmatchcase(namespace, pattern) for pattern in self.only):
            return
        with self._lock:
            self._arrived.append((kind, obj))
            if self._woken:
                return
            self._woken = True
        self._loop.call_soon_threadsafe(self._hand_over_arrived)

    def _hand_over_arrived(self) -> None:
        with self._lock:
            arrived, self._arrived, self._woken = self._arrived, [], False
        for kind, obj in arrived:
            if not self._stopped.is_set():
                self.changed(kind, obj)


def _lister(api_client: client.ApiClient, kind: str, namespace: str | None) -> Callable[..., Any]:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    if kind == "pods":
        if namespace is None:
            return core.list_pod_for_all_namespaces
        return lambda **kwargs: core.list_namespaced_pod(namespace, **kwargs)
    if namespace is None:
        return batch.list_job_for_all_namespaces
    return lambda **kwargs: batch.list_namespaced_job(namespace, **kwargs)
