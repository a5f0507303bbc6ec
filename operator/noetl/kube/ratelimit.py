"""A client-side token bucket for API calls (kopf has none of its own for our calls).

QPS and burst mean what they mean for client-go: `burst` calls may go at once, then `qps` a
second. Callers await a token; nothing is dropped here, calls only wait. Two kinds of caller:
work (Jobs, status, results, reads) awaits `acquire()`, first come first served; what may wait
for all of it (Events) awaits `acquire_spare()`, which gives a token only while no work waits
and the bucket holds more than its reserve, so that a call of work never waits for one of those.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        reserve: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`reserve`: tokens spare calls leave for work (half the burst unless given).
        `clock` and `sleep` measure and pass time; tests give a clock they move by hand."""
        self.rate = qps
        self.capacity = float(max(1, burst))
        self.reserve = min(self.capacity - 1, float(burst // 2 if reserve is None else reserve))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = asyncio.Lock()
        self._spare_lock = asyncio.Lock()
        self._work_waiting = 0

    @property
    def busy(self) -> bool:
        """Whether calls of work wait for tokens now (a backlog)."""
        return self._work_waiting > 0

    async def acquire(self) -> None:
        """A token for a call of work: after the calls of work that asked before it."""
        self._work_waiting += 1
        try:
            async with self._lock:
                while not self._take(keep=0):
                    await self._sleep(self._until(1))
        finally:
            self._work_waiting -= 1

    async def acquire_spare(self) -> None:
        """A token for a call that gives way to work: none while work waits or the bucket is
        down to its reserve."""
        async with self._spare_lock:
            while self._work_waiting or not self._take(keep=self.reserve):
                await self._sleep(max(self._until(1 + self.reserve), 1 / self.rate))

    def _take(self, keep: float) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens < 1 + keep:
            return False
        self._tokens -= 1
        return True

    def _until(self, tokens: float) -> float:
        """Seconds until the bucket holds `tokens` (as of its last update)."""
        return max(0.0, (tokens - self._tokens) / self.rate)
