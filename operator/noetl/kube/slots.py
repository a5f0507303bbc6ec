"""An operator-wide cap on step Jobs running at once in each namespace.

Loops have their own `maxInFlight`; this bounds the sum over every execution of a namespace, so
that one large playbook cannot flood a cluster. A slot is taken before a Job is created and given
back when the Job finishes (or could not be created). Slots are counted by Job name, so seeing
the same Job twice takes or gives one slot only.
"""

from __future__ import annotations

import asyncio


class JobSlots:
    def __init__(self, per_namespace: int) -> None:
        self.per_namespace = per_namespace
        self._held: dict[str, set[str]] = {}
        self._freed: dict[str, asyncio.Condition] = {}

    def running(self, namespace: str) -> int:
        return len(self._held.get(namespace, ()))

    async def acquire(self, namespace: str, job: str) -> None:
        held = self._held.setdefault(namespace, set())
        if job in held:
            return
        freed = self._freed.setdefault(namespace, asyncio.Condition())
        async with freed:
            await freed.wait_for(lambda: len(held) < self.per_namespace)
            held.add(job)

    def release(self, namespace: str, job: str) -> None:
        held = self._held.get(namespace)
        if held is None or job not in held:
            return
        held.discard(job)
        freed = self._freed[namespace]

        async def notify() -> None:
            async with freed:
                freed.notify()

        asyncio.get_running_loop().create_task(notify())
