"""One driver task per live Execution, started on its first sign of life and ended with it.

Events about an Execution, its Jobs or its child Executions are delivered here by name. A driver
that fails is started again after a pause (it resumes from the API server); a finished execution
is remembered so that late Job events do not wake it; a finished execution is deleted after its
TTL (`spec.ttlSecondsAfterFinished`, else the operator's default), its Jobs with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from noetl.kube import metrics
from noetl.kube.driver import ExecutionDriver, OperatorContext
from noetl.kube.inbox import Message

log = logging.getLogger(__name__)
RESTART_DELAY = 2.0
FINISHED_MEMORY = 10_000

Key = tuple[str, str]


class DriverRegistry:
    def __init__(self, context: OperatorContext) -> None:
        self.context = context
        self._drivers: dict[Key, ExecutionDriver] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._finished: OrderedDict[Key, None] = OrderedDict()
        self._cleanups: dict[Key, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._drivers)

    def deliver(self, namespace: str, name: str, message: Message | None = None) -> None:
        """Hand a message to the execution's driver, starting one if it has none."""
        key = (namespace, name)
        if key in self._finished:
            return
        driver = self._drivers.get(key)
        if driver is None:
            driver = self._drivers[key] = ExecutionDriver(self.context, namespace, name)
            self._tasks[key] = asyncio.create_task(
                self._drive(key, driver), name=f"execution {namespace}/{name}"
            )
        if message is not None:
            driver.queue.put_nowait(message)

    def forget(self, namespace: str, name: str) -> None:
        """The Execution is gone: stop its driver and its clean-up timer."""
        key = (namespace, name)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        self._drivers.pop(key, None)
        self._finished.pop(key, None)
        handle = self._cleanups.pop(key, None)
        if handle is not None:
            handle.cancel()

    def schedule_cleanup(self, namespace: str, name: str, finished_at: float, ttl: int) -> None:
        key = (namespace, name)
        if key in self._cleanups:
            return
        delay = max(0.0, finished_at + ttl - time.time())
        loop = asyncio.get_running_loop()
        self._cleanups[key] = loop.call_later(delay, lambda: loop.create_task(self._delete(key)))

    async def _delete(self, key: Key) -> None:
        self._cleanups.pop(key, None)
        await self.context.api.delete("Execution", *key)

    async def _drive(self, key: Key, driver: ExecutionDriver) -> None:
        while True:
            try:
                await driver.run()
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.RECONCILE_ERRORS.labels(where="driver").inc()
                log.exception(
                    "execution %s/%s: driver failed; resuming in %.0fs", *key, RESTART_DELAY
                )
                await asyncio.sleep(RESTART_DELAY)
                pending = driver.queue
                driver = ExecutionDriver(self.context, *key)
                driver.queue = pending  # keep what arrived meanwhile
                self._drivers[key] = driver
        self._drivers.pop(key, None)
        self._tasks.pop(key, None)
        if driver.finished_at is not None:
            self._finished[key] = None
            while len(self._finished) > FINISHED_MEMORY:
                self._finished.popitem(last=False)
            ttl = driver.execution.get("spec", {}).get("ttlSecondsAfterFinished")
            self.schedule_cleanup(
                *key,
                driver.finished_at,
                ttl if ttl is not None else self.context.settings.execution_ttl_seconds,
            )
