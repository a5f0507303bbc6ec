"""The Playbook controller: validates each Playbook and says so in its status.

`status.conditions[Ready]` is True for a valid playbook and False (reason Invalid) with every
problem and the path of its field otherwise; `status.errors` lists them one by one, and
`status.steps` counts the steps. A Playbook is looked at again only when its generation changes.
Validation runs in a worker process within a time and memory budget (`noetl.playbook.budget`),
never in the event loop that drives the Executions.
"""

from __future__ import annotations

import time
from typing import Any

from noetl.kube import events
from noetl.kube.api import KubeApi
from noetl.kube.status import timestamp
from noetl.playbook import Playbook, PlaybookInvalid
from noetl.playbook.budget import parse_within_budget

MAX_ERRORS = 50


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
    if isinstance(checked, PlaybookInvalid):
        errors = [{"path": e.path, "message": e.message} for e in checked.errors[:MAX_ERRORS]]
        steps = len((body.get("spec") or {}).get("workflow") or [])
        condition = {
            "status": "False",
            "reason": "Invalid",
            "message": "; ".join(f"{e['path']}: {e['message']}" for e in errors),
        }
    else:
        errors, steps = [], len(checked.steps)
        condition = {"status": "True", "reason": "Valid", "message": f"{steps} steps"}
    return {
        "observedGeneration": metadata.get("generation"),
        "steps": steps,
        "errors": errors or None,
        "conditions": [
            {"type": "Ready", **condition, "lastTransitionTime": timestamp(time.time())}
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
