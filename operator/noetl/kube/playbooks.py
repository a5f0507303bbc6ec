"""The Playbook controller: validates each Playbook and says so in its status.

`status.conditions[Ready]` is True for a valid playbook and False (reason Invalid) with every
problem and the path of its field otherwise; `status.errors` lists them one by one, and
`status.steps` counts the steps. A Playbook is looked at again only when its generation changes.
"""

from __future__ import annotations

import time
from typing import Any

from noetl.kube import events
from noetl.kube.api import KubeApi
from noetl.kube.status import timestamp
from noetl.playbook import PlaybookInvalid, parse_playbook

MAX_ERRORS = 50


def playbook_status(body: dict[str, Any]) -> dict[str, Any]:
    metadata = body["metadata"]
    document = {
        "kind": "Playbook",
        "metadata": {"name": metadata["name"]},
        "spec": body.get("spec"),
    }
    try:
        playbook = parse_playbook(document)
    except PlaybookInvalid as invalid:
        errors = [{"path": e.path, "message": e.message} for e in invalid.errors[:MAX_ERRORS]]
        steps = len((body.get("spec") or {}).get("workflow") or [])
        condition = {
            "status": "False",
            "reason": "Invalid",
            "message": "; ".join(f"{e['path']}: {e['message']}" for e in errors),
        }
    else:
        errors, steps = [], len(playbook.steps)
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
    status = playbook_status(body)
    await api.patch_status("playbooks", metadata["namespace"], metadata["name"], status)
    if status["errors"]:
        subject = {**body, "kind": "Playbook"}
        await events.record(
            api, subject, "Invalid", status["conditions"][0]["message"], warning=True
        )
