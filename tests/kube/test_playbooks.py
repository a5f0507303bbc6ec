"""The Playbook controller against an in-memory API server: a failed write is tried again."""

from __future__ import annotations

import asyncio
import time

from kubernetes.client.exceptions import ApiException

from noetl.kube.playbooks import PlaybookController
from tests.kube.fake_api import FakeKubeApi

VALID = {"workflow": [{"step": "start"}]}


async def until_done(controller: PlaybookController, api: FakeKubeApi, name: str) -> dict:
    # Validation runs in a worker process (its first start takes a while on a loaded machine):
    # wait for the status, bounded by a generous deadline rather than a count of loop turns.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = (api.get("Playbook", "team", name) or {}).get("status")
        if status:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("the Playbook was never validated")


async def test_a_status_write_that_fails_is_tried_again_until_it_is_done():
    api = FakeKubeApi()
    body = api.put(
        {"kind": "Playbook", "metadata": {"name": "p", "namespace": "team"}, "spec": VALID}
    )
    api.fail("patch", "Playbook", ApiException(status=500), TimeoutError("slow"), ApiException(429))
    controller = PlaybookController(api, backoff=(0,))  # type: ignore[arg-type]
    controller.changed(body)
    status = await until_done(controller, api, "p")
    assert status["conditions"][0]["status"] == "True"


async def test_an_invalid_playbook_is_reported_with_its_errors():
    api = FakeKubeApi()
    spec = {"workflow": [{"step": "start", "next": [{"step": "nowhere"}]}]}
    body = api.put(
        {"kind": "Playbook", "metadata": {"name": "bad", "namespace": "team"}, "spec": spec}
    )
    controller = PlaybookController(api, backoff=(0,))  # type: ignore[arg-type]
    controller.changed(body)
    status = await until_done(controller, api, "bad")
    assert status["conditions"][0]["reason"] == "Invalid"
    assert "nowhere" in status["errors"][0]["message"]
