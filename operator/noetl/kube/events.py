"""Kubernetes Events: step started, retrying; execution finished; playbook invalid."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from noetl.kube.api import KubeApi
from noetl.playbook import API_VERSION

COMPONENT = "noetl-operator"
MESSAGE_LIMIT = 1024


async def record(
    api: KubeApi, subject: dict[str, Any], reason: str, message: str, warning: bool = False
) -> None:
    """Post an Event about `subject` (an Execution, or a Playbook)."""
    metadata = subject["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await api.create(
        {
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
    )
