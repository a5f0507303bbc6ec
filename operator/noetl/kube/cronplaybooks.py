"""The CronPlaybook controller: starts Executions on schedule, one task per CronPlaybook.

Each task reads the newest CronPlaybook and the Executions it owns, asks `cron.plan_cron` what to
do, does it (create the due Execution, cancel the ones Replace replaces, delete those past the
history limits, write the status), and sleeps until the next schedule time or until woken: by a
change of the CronPlaybook, or by one of its Executions finishing. Everything it decides is read
back from the API server, so an operator that restarts across a due time finds the missed run
in `lastScheduleTime` and starts it (once: its name is deterministic), within the deadline.
A failed round is tried again with a growing pause; an Execution the API server refuses (a
quota, an invalid embedded playbook) makes the `Ready` condition False (`FailedCreate`) with
the server's words, and is tried again at the longest pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException

from noetl.kube import events, metrics
from noetl.kube.api import KubeApi
from noetl.kube.conditions import condition
from noetl.kube.cron import CRON_LABEL, plan_cron
from noetl.kube.refusals import error_text
from noetl.kube.status import merge_patch
from noetl.loop import Clock

log = logging.getLogger(__name__)
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

Key = tuple[str, str]


class CronController:
    def __init__(
        self, api: KubeApi, clock: Clock, backoff: Sequence[float] = BACKOFF_SECONDS
    ) -> None:
        self.api = api
        self.clock = clock
        self.backoff = backoff
        self._latest: dict[Key, dict[str, Any]] = {}
        self._wake: dict[Key, asyncio.Event] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._posted: dict[Key, dict[str, str]] = {}  # reason -> the last message posted

    def changed(self, body: dict[str, Any]) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        self._latest[key] = body
        self.poke(*key)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run(key), name=f"cronplaybook {key}")

    def poke(self, namespace: str, name: str) -> None:
        """Look again now (one of its Executions finished, or it changed)."""
        self._wake.setdefault((namespace, name), asyncio.Event()).set()

    def deleted(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._latest.pop(key, None)
        self._wake.pop(key, None)
        self._posted.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def _run(self, key: Key) -> None:
        failures = 0
        wake = self._wake.setdefault(key, asyncio.Event())
        while key in self._latest:
            wake.clear()
            try:
                pause = await self._round(key)
                failures = 0
            except Exception as error:
                metrics.RECONCILE_ERRORS.labels(where="cronplaybook").inc()
                pause = self.backoff[min(failures, len(self.backoff) - 1)]
                failures += 1
                log.warning("cronplaybook %s/%s: %s; again in %.0fs", *key, error, pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=max(0.0, pause))

    async def _round(self, key: Key) -> float:
        """One look: do what is due; the seconds until the next look."""
        namespace, name = key
        cron = await self.api.get_custom("cronplaybooks", namespace, name)
        if cron is None:
            return self.backoff[-1]
        self._latest[key] = cron
        uid = cron["metadata"]["uid"]
        executions = [
            e
            for e in await self.api.list_custom("executions", namespace, f"{CRON_LABEL}={name}")
            if any(ref.get("uid") == uid for ref in e["metadata"].get("ownerReferences") or [])
        ]
        now = self.clock.now()
        plan = plan_cron(cron, executions, now)
        subject = {**cron, "kind": "CronPlaybook"}
        if plan.create is not None:
            started = plan.create["metadata"]["name"]
            try:
                created = await self.api.create(plan.create)
            except ApiException as error:
                if error.status is None or error.status >= 500 or error.status == 429:
                    raise  # the server's trouble: tried again with a pause
                await self._refused(cron, subject, started, error)
                return self.backoff[-1]
            if created:
                await events.record(self.api, subject, "Started", f"started execution {started}")
        for doomed in plan.cancel:
            await self.api.patch_custom("executions", namespace, doomed, {"spec": {"cancel": True}})
            await events.record(self.api, subject, "Replaced", f"cancelled execution {doomed}")
        for doomed in plan.delete:
            await self.api.delete("Execution", namespace, doomed)
        patch = merge_patch(cron.get("status") or {}, plan.status)
        if patch:
            await self.api.patch_status("cronplaybooks", namespace, name, patch)
        posted = self._posted.setdefault(key, {})
        for reason, message, warning in plan.events:
            if posted.get(reason) != message:  # a Forbid skip is seen at every look: say it once
                posted[reason] = message
                await events.record(self.api, subject, reason, message, warning)
        return (plan.next_at or now) - self.clock.now()

    async def _refused(
        self, cron: dict[str, Any], subject: dict[str, Any], name: str, error: ApiException
    ) -> None:
        """The API server will not take the due Execution (a quota, say): say so and why."""
        message = f"cannot create execution {name}: {error_text(error)}"
        metadata = cron["metadata"]
        generation = metadata.get("generation")
        previous = (cron.get("status") or {}).get("conditions")
        ready = condition(
            "Ready", "False", "FailedCreate", message, generation, self.clock.now(), previous
        )
        await self.api.patch_status(
            "cronplaybooks", metadata["namespace"], metadata["name"], {"conditions": [ready]}
        )
        await events.record(self.api, subject, "FailedCreate", message, warning=True)
