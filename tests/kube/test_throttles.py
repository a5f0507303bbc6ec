"""The operator's own throttles: the API token bucket and the per-namespace cap on running Jobs."""

from __future__ import annotations

import asyncio

from noetl.kube import metrics
from noetl.kube.events import EventSink
from noetl.kube.ratelimit import TokenBucket
from noetl.kube.slots import JobSlots


class _HandClock:
    """Time that passes only when the bucket sleeps, so the bucket's waits are exact."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.waits.append(delay)
        self.now += delay
        await asyncio.sleep(0)  # other callers run meanwhile, as they would in a real wait


async def test_the_token_bucket_allows_a_burst_then_the_rate():
    clock = _HandClock()
    bucket = TokenBucket(qps=4, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        await bucket.acquire()
    assert clock.waits == []  # the burst went at once
    for _ in range(10):
        await bucket.acquire()
    assert clock.waits == [1 / 4] * 10  # then each call waited for its token, one at the rate


async def test_the_token_bucket_refills_with_time_up_to_its_burst():
    clock = _HandClock()
    bucket = TokenBucket(qps=4, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        await bucket.acquire()
    clock.now += 1  # a second idle brings back 4 tokens
    for _ in range(4):
        await bucket.acquire()
    assert clock.waits == []
    await bucket.acquire()
    assert clock.waits == [1 / 4]
    clock.now += 3600  # an hour idle brings back no more than the burst
    for _ in range(10):
        await bucket.acquire()
    assert clock.waits == [1 / 4]
    await bucket.acquire()
    assert clock.waits == [1 / 4, 1 / 4]


async def test_a_spare_call_leaves_the_bucket_its_reserve_for_work():
    clock = _HandClock()
    bucket = TokenBucket(qps=4, burst=10, reserve=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await bucket.acquire_spare()
    assert clock.waits == []  # spare calls took what was above the reserve, at once
    for _ in range(5):
        await bucket.acquire()
    assert clock.waits == []  # work still went at once: the reserve was left to it
    await bucket.acquire_spare()
    assert clock.now >= 100 + 6 / 4  # a spare call waited until the reserve was back, and one


async def test_a_spare_call_waits_while_work_waits():
    clock = _HandClock()
    bucket = TokenBucket(qps=4, burst=2, reserve=0, clock=clock, sleep=clock.sleep)
    order: list[str] = []

    async def call(kind: str) -> None:
        await (bucket.acquire_spare() if kind == "spare" else bucket.acquire())
        order.append(kind)

    await bucket.acquire()
    await bucket.acquire()  # empty: everyone waits from here
    await asyncio.gather(call("spare"), call("work"), call("work"), call("work"))
    assert order == ["work", "work", "work", "spare"]  # asked first, served last


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


class _BusyApi:
    """An API whose every token goes to work until `free` is set: Events only wait."""

    def __init__(self) -> None:
        self.free = asyncio.Event()
        self.posted: list[str] = []

    async def acquire_spare(self) -> None:
        await self.free.wait()

    def without_limit(self) -> _BusyApi:
        return self

    async def create(self, body: dict[str, object]) -> bool:
        self.posted.append(str(body["message"]))
        return True


async def test_events_wait_behind_work_and_past_the_limit_the_oldest_normal_one_is_dropped():
    api = _BusyApi()
    sink = EventSink(api, limit=3)  # type: ignore[arg-type]
    subject = {"metadata": {"name": "run", "namespace": "team", "uid": "u"}}
    dropped = metrics.EVENTS_DROPPED.labels(reason="StepStarted")
    before = dropped._value.get()
    sink.post(subject, "StepStarted", "step a started")
    sink.post(subject, "StepFailed", "step b failed", warning=True)
    sink.post(subject, "StepStarted", "step c started")
    sink.post(subject, "StepRetrying", "step b in 5s", warning=True)  # past the limit...
    sink.post(subject, "ExecutionFailed", "execution failed", warning=True)
    await asyncio.sleep(0)
    assert api.posted == []  # nothing went while work had every token
    api.free.set()
    await sink.drained()
    assert api.posted == ["step b failed", "step b in 5s", "execution failed"]
    assert dropped._value.get() == before + 2  # ...the oldest Normal ones made room, Warnings stay
