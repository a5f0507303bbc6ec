"""One driver task per live Execution, started on its first sign of life and ended with it.

Events about an Execution, its Jobs or its child Executions are delivered here by name. A driver
that fails is started again (it resumes from the API server): at once after a conflict, after an
exponential backoff after transient trouble; a permanent error, or too many transient ones in a
row, ends the execution Failed with reason ReconcileError (`faults`), and a `spec.cancel` set
meanwhile ends it Cancelled, even when it cannot resume. A finished execution is remembered so
that late Job events do not wake it; a finished execution is deleted after its TTL
(`spec.ttlSecondsAfterFinished`, else the operator's default), its Jobs with it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict

from noetl.engine.state import FINISHED_PHASES
from noetl.kube import metrics
from noetl.kube.driver import ExecutionDriver, OperatorContext
from noetl.kube.faults import RECONCILE_ERROR, Backoff, classify, describe, end_run
from noetl.kube.inbox import ExecutionChanged, Message
from noetl.kube.pending import JobWithoutPod, PodWaiting
from noetl.kube.times import epoch_seconds

log = logging.getLogger(__name__)
FINISHED_MEMORY = 10_000
CONFLICTS_RETRIED_AT_ONCE = 5

Key = tuple[str, str]


class DriverRegistry:
    def __init__(self, context: OperatorContext) -> None:
        self.context = context
        self._drivers: dict[Key, ExecutionDriver] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._finished: OrderedDict[Key, None] = OrderedDict()
        self._cleanups: dict[Key, asyncio.TimerHandle] = {}
        self._wakes: dict[Key, asyncio.Event] = {}  # drivers waiting out a backoff
        settings = context.settings
        self.backoff = Backoff(
            settings.reconcile_backoff_seconds,
            settings.reconcile_backoff_max_seconds,
            random.Random(),
        )

    def __len__(self) -> int:
        return len(self._drivers)

    def deliver(
        self,
        namespace: str,
        name: str,
        message: Message | PodWaiting | JobWithoutPod | None = None,
    ) -> None:
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
            if isinstance(message, ExecutionChanged) and message.body["spec"].get("cancel"):
                wake = self._wakes.get(key)
                if wake is not None:
                    wake.set()  # a cancel does not wait for the backoff to pass

    def backing_off(self, namespace: str, name: str) -> bool:
        """Whether the execution's driver waits out a backoff before it resumes."""
        wake = self._wakes.get((namespace, name))
        return wake is not None and not wake.is_set()

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
        failures = conflicts = 0
        while True:
            try:
                await driver.run()
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:
                trouble = classify(error)
                if driver.progressed:
                    failures = conflicts = 0
                if trouble == "conflict":
                    conflicts += 1  # retried at once, unless it keeps happening
                    trouble = "conflict" if conflicts <= CONFLICTS_RETRIED_AT_ONCE else "transient"
                if trouble != "conflict":
                    failures += 1
                metrics.RECONCILE_ERRORS.labels(where=trouble).inc()
                if await self._ended(key, driver, error, trouble, failures):
                    break
                delay = 0.0 if trouble == "conflict" else self.backoff.delay(failures)
                log.warning(
                    "execution %s/%s: driver failed (%s, %d in a row); resuming in %.1fs: %s",
                    *key,
                    trouble,
                    failures,
                    delay,
                    describe(error),
                    exc_info=trouble == "transient",
                )
                await self._pause(key, delay)
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

    async def _ended(
        self, key: Key, driver: ExecutionDriver, error: Exception, trouble: str, failures: int
    ) -> bool:
        """After a failure: end the execution if it must end (its end time on the driver)."""
        try:
            execution = await self.context.api.get_custom("executions", *key)
        except Exception:
            execution = driver.execution or None  # what was read before is enough to end it
            if trouble != "permanent" and failures < self.context.settings.reconcile_retry_limit:
                return False
        if execution is None:
            return True  # deleted: nothing left to drive
        driver.execution = execution
        status = execution.get("status") or {}
        if status.get("phase") in FINISHED_PHASES:
            finished = status.get("finishedAt")
            driver.finished_at = epoch_seconds(finished) if finished else time.time()
            return True
        why = describe(error)
        if execution["spec"].get("cancel"):
            message = f"cancelled (spec.cancel is true) while the operator could not resume: {why}"
            driver.finished_at = await end_run(
                self.context.api, execution, "Cancelled", "Cancelled", message
            )
            return True
        if trouble == "permanent" or failures >= self.context.settings.reconcile_retry_limit:
            tries = "" if trouble == "permanent" else f" ({failures} attempts)"
            message = f"the operator cannot drive this execution{tries}: {why}"
            driver.finished_at = await end_run(
                self.context.api, execution, "Failed", RECONCILE_ERROR, message
            )
            return True
        return False

    async def _pause(self, key: Key, delay: float) -> None:
        """Wait `delay` on the operator's clock, or until a cancel of the execution arrives."""
        if delay <= 0:
            return
        wake = self._wakes[key] = asyncio.Event()
        timer = self.context.clock.call_later(delay, wake.set)
        try:
            await wake.wait()
        finally:
            timer.cancel()
            self._wakes.pop(key, None)
