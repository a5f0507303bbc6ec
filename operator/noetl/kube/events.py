"""Kubernetes Events: step started, retrying; execution finished; playbook invalid.

Events are for people: posting one is best effort. One the API server does not take is logged
and dropped, never raised, so it cannot stop a driver or make it start over.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from typing import Any

from noetl.kube.api import KubeApi
from noetl.playbook import API_VERSION

log = logging.getLogger(__name__)
COMPONENT = "noetl-operator"
MESSAGE_LIMIT = 1024


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
