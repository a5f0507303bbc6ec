"""Kubernetes Events: step started, retrying; execution finished; playbook invalid.

Events are for people: posting one is best effort. One the API server does not take is logged
and dropped, never raised, so it cannot stop a driver or make it start over. Each driver spends
a budget (`EventBudget`) on its step Events, so that no execution floods the API server with
them; the Events that say how an execution ended are never held back.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from noetl.kube.api import KubeApi
from noetl.playbook import API_VERSION

log = logging.getLogger(__name__)
COMPONENT = "noetl-operator"
MESSAGE_LIMIT = 1024
BUDGET_BURST = 60
BUDGET_PER_SECOND = 1.0


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


async def record(
    api: KubeApi, subject: dict[str, Any], reason: str, message: str, warning: bool = False
) -> None:
    """Post an Event about `subject` (an Execution, or a Playbook); a failure is only logged."""
    try:
        await api.create(_event(subject, reason, message, warning))
    except Exception as error:
        name = subject["metadata"]["name"]
        log.warning("could not post the Event %s about %s: %s", reason, name, error)


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
