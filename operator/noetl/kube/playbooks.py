"""The Playbook controller: validates each Playbook and says so in its status.

`status.conditions[Ready]` is True for a valid playbook and False (reason Invalid) with every
problem and the path of its field otherwise; `status.errors` lists them one by one, and
`status.steps` counts the steps. A Playbook is looked at again only when its generation changes.
A write that fails (the API server busy or away) is tried again with a growing pause, with the
newest version of the Playbook, until it is done or the Playbook is deleted: kopf's event
handlers are never retried by kopf itself.

A playbook too large to snapshot is invalid here too: every Execution keeps the playbook it runs
in one ConfigMap, which the API server refuses past 1 MiB of data. `run_problems` adds what an
Execution's namespace and the operator's settings forbid (see tenancy.py).

Validation runs in a worker process within a time and memory budget (`noetl.playbook.budget`),
never in the event loop that drives the Executions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from noetl.kube import events, metrics
from noetl.kube.api import KubeApi
from noetl.kube.conditions import ConditionStatus, condition
from noetl.kube.settings import OperatorSettings
from noetl.kube.tenancy import pod_violations, secret_violations
from noetl.playbook import Playbook, PlaybookError, PlaybookInvalid
from noetl.playbook.budget import parse_within_budget

MAX_ERRORS = 50
MAX_SNAPSHOT_BYTES = 1_000_000
"""A ConfigMap holds 1 MiB (1,048,576 bytes) of keys and values; this leaves room for the key."""


def snapshot_text(document: dict[str, Any]) -> str:
    """The playbook as an Execution's snapshot ConfigMap keeps it."""
    return json.dumps(document, separators=(",", ":"))


def size_problems(text: str) -> list[PlaybookError]:
    size = len(text.encode())
    if size <= MAX_SNAPSHOT_BYTES:
        return []
    return [
        PlaybookError(
            "spec",
            f"the playbook is {size} bytes as JSON, over the {MAX_SNAPSHOT_BYTES} bytes that an"
            " execution's snapshot ConfigMap holds: move large data out of the playbook",
        )
    ]


def run_problems(
    playbook: Playbook, text: str, namespace: str, settings: OperatorSettings
) -> list[PlaybookError]:
    """Why a valid playbook may still not run in `namespace`: its size, or what it asks for."""
    return (
        size_problems(text)
        + pod_violations(playbook, settings)
        + secret_violations(playbook, namespace, settings)
    )


def playbook_document(body: dict[str, Any]) -> dict[str, Any]:
    """The Playbook resource as the document `parse_playbook` reads."""
    return {
        "kind": "Playbook",
        "metadata": {"name": body["metadata"]["name"]},
        "spec": body.get("spec"),
    }


def playbook_status(body: dict[str, Any], checked: Playbook | PlaybookInvalid) -> dict[str, Any]:
    """The status of a Playbook, given what validating it gave."""
    metadata = body["metadata"]
    if isinstance(checked, Playbook):
        too_large = size_problems(snapshot_text(playbook_document(body)))
        if too_large:
            checked = PlaybookInvalid(too_large)
    ready: ConditionStatus
    if isinstance(checked, PlaybookInvalid):
        errors = [{"path": e.path, "message": e.message} for e in checked.errors[:MAX_ERRORS]]
        steps = len((body.get("spec") or {}).get("workflow") or [])
        ready, reason = "False", "Invalid"
        message = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
    else:
        errors, steps = [], len(checked.steps)
        ready, reason, message = "True", "Valid", f"{steps} steps"
    generation = metadata.get("generation")
    previous = (body.get("status") or {}).get("conditions")
    return {
        "observedGeneration": generation,
        "steps": steps,
        "errors": errors or None,
        "conditions": [
            condition("Ready", ready, reason, message, generation, time.time(), previous)
        ],
    }


async def reconcile_playbook(api: KubeApi, body: dict[str, Any]) -> None:
    metadata = body["metadata"]
    if (body.get("status") or {}).get("observedGeneration") == metadata.get("generation"):
        return
    checked: Playbook | PlaybookInvalid
    try:
        checked = await parse_within_budget(playbook_document(body))
    except PlaybookInvalid as invalid:
        checked = invalid
    status = playbook_status(body, checked)
    await api.patch_status("playbooks", metadata["namespace"], metadata["name"], status)
    if status["errors"]:
        subject = {**body, "kind": "Playbook"}
        await events.record(
            api, subject, "Invalid", status["conditions"][0]["message"], warning=True
        )


log = logging.getLogger(__name__)
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class PlaybookController:
    """Validates Playbooks as they change, one task per Playbook, retrying until it is done."""

    def __init__(self, api: KubeApi, backoff: Sequence[float] = BACKOFF_SECONDS) -> None:
        self.api = api
        self.backoff = backoff
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def changed(self, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self._latest[key] = body
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._reconcile(key), name=f"playbook {key}")

    def deleted(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._latest.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def _reconcile(self, key: tuple[str, str]) -> None:
        failures = 0
        try:
            while key in self._latest:
                body = self._latest[key]
                try:
                    await reconcile_playbook(self.api, body)
                except Exception as error:
                    metrics.RECONCILE_ERRORS.labels(where="playbook").inc()
                    pause = self.backoff[min(failures, len(self.backoff) - 1)]
                    failures += 1
                    log.warning("playbook %s/%s: %s; again in %.0fs", *key, error, pause)
                    await asyncio.sleep(pause)
                    continue
                if self._latest.get(key) is body:  # nothing newer came meanwhile
                    del self._latest[key]
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]
