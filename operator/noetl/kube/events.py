"""Kubernetes Events: step started, retrying; execution finished; playbook invalid.

Events are for people: posting one is best effort. One the API server does not take is logged
and dropped, never raised, so it cannot stop a driver or make it start over. An Event is the
lowest-priority call of the operator: it takes a token only when no other call waits for one
(`KubeApi.acquire_spare`), so Events never delay a Job or a status. Drivers do not wait for
their Events at all: they post them to the operator's `EventSink`, which sends them in the
background and, when more than `SINK_LIMIT` wait (work has had every token for a while), drops
the oldest Normal one, counted in `noetl_events_dropped_total`. Each driver also spends a
budget (`EventBudget`) on its step Events, so that no execution floods the API server with
them; the Events that say how an execution ended are never held back by it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from noetl.kube import metrics
from noetl.kube.api import KubeApi
from noetl.playbook import API_VERSION

log = logging.getLogger(__name__)
COMPONENT = "noetl-operator"
MESSAGE_LIMIT = 1024
BUDGET_BURST = 60
BUDGET_PER_SECOND = 1.0
SINK_LIMIT = 2000


class EventBudget:
    """A token bucket on the driver's clock: `burst` Events at once, then `rate` a second."""

    def __init__(
        self, now: Callable[[], float], rate: float = BUDGET_PER_SECOND, burst: int = BUDGET_BURST
    ) -> None:
        self.now = now
        self.rate = rate
        self.burst = float(burst)
        self._tokens = self.burst
        self._updated = now()

    def take(self) -> bool:
        now = self.now()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class EventSink:
    """Events posted by drivers, sent in the background in the order posted."""

    def __init__(self, api: KubeApi, limit: int = SINK_LIMIT) -> None:
        self.api = api
        self.limit = limit
        self._waiting: deque[dict[str, Any]] = deque()
        self._sender: asyncio.Task[None] | None = None

    def post(
        self, subject: dict[str, Any], reason: str, message: str, warning: bool = False
    ) -> None:
        """Queue an Event about `subject`; the caller goes on at once."""
        if len(self._waiting) >= self.limit:
            self._drop()
        self._waiting.append(_event(subject, reason, message, warning))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="events")
            self._sender.add_done_callback(_ended)

    async def drained(self) -> None:
        """Until every Event posted so far was sent (or failed)."""
        while self._sender is not None and not self._sender.done():
            await asyncio.wait({self._sender})

    def _drop(self) -> None:
        """Drop the oldest Normal Event waiting (the oldest of all when every one is a Warning)."""
        normal = next((e for e in self._waiting if e["type"] == "Normal"), self._waiting[0])
        self._waiting.remove(normal)
        metrics.EVENTS_DROPPED.labels(reason=normal["reason"]).inc()

    async def _send(self) -> None:
        while self._waiting:
            await self.api.acquire_spare()
            await _post(self.api.without_limit(), self._waiting.popleft())


def _ended(sender: asyncio.Task[None]) -> None:
    if not sender.cancelled() and sender.exception() is not None:
        log.warning("the Event sender stopped: %r", sender.exception())


async def record(
    api: KubeApi, subject: dict[str, Any], reason: str, message: str, warning: bool = False
) -> None:
    """Post an Event about `subject` (an Execution, or a Playbook) when no other call waits for
    a token; a failure is only logged."""
    await api.acquire_spare()
    await _post(api.without_limit(), _event(subject, reason, message, warning))


async def _post(api: KubeApi, event: dict[str, Any]) -> None:
    try:
        await api.create(event)
    except Exception as error:
        about = event["involvedObject"]["name"]
        log.warning("could not post the Event %s about %s: %s", event["reason"], about, error)


def _event(subject: dict[str, Any], reason: str, message: str, warning: bool) -> dict[str, Any]:
    metadata = subject["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{metadata['name']}.",
            "namespace": metadata["namespace"],
        },
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": subject.get("kind", "Execution"),
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
        },
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
