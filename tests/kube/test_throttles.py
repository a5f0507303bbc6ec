"""The operator's own throttles: the API token bucket and the per-namespace cap on running Jobs."""

from __future__ import annotations

import asyncio
import time

from noetl.kube.ratelimit import TokenBucket
from noetl.kube.slots import JobSlots


async def test_the_token_bucket_allows_a_burst_then_the_rate(monkeypatch):
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    bucket = TokenBucket(qps=50, burst=10)
    for _ in range(10):
        await bucket.acquire()
    assert waits == []  # the burst went at once
    begin = time.monotonic()
    for _ in range(10):
        await bucket.acquire()
    assert len(waits) >= 10  # each call after the burst waited for its token
    assert time.monotonic() - begin >= 10 / 50 * 0.9


async def test_job_slots_cap_running_jobs_per_namespace():
    slots = JobSlots(per_namespace=2)
    await slots.acquire("a", "job-1")
    await slots.acquire("a", "job-2")
    await slots.acquire("a", "job-1")  # the same Job again takes no second slot
    await slots.acquire("b", "job-1")  # another namespace has its own slots
    third = asyncio.create_task(slots.acquire("a", "job-3"))
    await asyncio.sleep(0.05)
    assert not third.done()
    slots.release("a", "job-1")
    await asyncio.wait_for(third, 1)
    assert slots.running("a") == 2
    slots.release("a", "job-1")  # twice is harmless
    assert slots.running("a") == 2
