"""Admission under concurrency limits: which Executions may start, decided from the API server.

A playbook's `spec.concurrency` puts its Executions behind gates: `playbook/<name>` (at most
`max` running at once) and `semaphore/<name>` (shared by every playbook of the namespace that
names it). An Execution behind a gate writes `status.admission.gates` and waits in phase
`Queued`; when admitted it writes `status.admission.admittedAt` and starts. So the whole queue is
in the API server: an Execution holds a slot of a gate from its `admittedAt` until it finishes,
and waits for one while it has gates and no `admittedAt`. `decide` (pure) reads nothing else,
and a restarted operator admits exactly the Executions the previous one would have. An
Execution of the same playbook that no driver has looked at yet (no gates written, not started)
counts as waiting at the same gates, so a backlog is admitted by priority, not by which driver
happened to decide first; one of another playbook sharing a semaphore is seen once its driver
has written its gates.

Among those waiting at a gate, higher `spec.priority` goes first, then older (creation time,
then name). Decisions in a namespace are made one at a time (a lock), each on a fresh list, so
two drivers never take the last slot twice. A waiting driver looks again when an Execution of
its namespace finishes or is deleted, and every `RECHECK_SECONDS` in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from noetl.engine.state import FINISHED_PHASES, ExecutionPhase
from noetl.kube.api import KubeApi
from noetl.kube.conditions import condition
from noetl.kube.times import timestamp
from noetl.loop import Clock
from noetl.playbook import Playbook

RECHECK_SECONDS = 30.0
QUEUED = "Queued"


@dataclass(frozen=True)
class Gate:
    key: str
    limit: int
    policy: str = "Queue"  # Queue | Forbid | Replace


@dataclass(frozen=True)
class Decision:
    admit: bool
    reason: str = ""
    refuse: str | None = None  # it may not run at all: why
    cancel: tuple[str, ...] = field(default_factory=tuple)  # Executions it replaces


@dataclass(frozen=True)
class Refused:
    """An Execution that ends before it starts: refused by Forbid, or cancelled while queued."""

    phase: ExecutionPhase
    reason: str
    message: str


def gates_of(execution: dict[str, Any], playbook: Playbook) -> list[Gate]:
    concurrency = playbook.spec.concurrency
    if concurrency is None:
        return []
    gates = []
    ref = (execution.get("spec") or {}).get("playbookRef")
    if concurrency.max is not None and ref:  # an embedded playbook has no siblings to count
        gates.append(Gate(f"playbook/{ref['name']}", concurrency.max, concurrency.policy))
    if concurrency.semaphore is not None:
        semaphore = concurrency.semaphore
        gates.append(Gate(f"semaphore/{semaphore.name}", semaphore.max))
    return gates


def _admission(execution: dict[str, Any]) -> dict[str, Any]:
    return dict((execution.get("status") or {}).get("admission") or {})


def _finished(execution: dict[str, Any]) -> bool:
    return (execution.get("status") or {}).get("phase") in FINISHED_PHASES


def _playbook_ref(execution: dict[str, Any]) -> str | None:
    ref = (execution.get("spec") or {}).get("playbookRef") or {}
    return ref.get("name")


def _started(execution: dict[str, Any]) -> bool:
    return bool((execution.get("status") or {}).get("engine"))


def _queue_order(execution: dict[str, Any]) -> tuple[int, str, str]:
    metadata = execution["metadata"]
    priority = int((execution.get("spec") or {}).get("priority") or 0)
    return (-priority, metadata.get("creationTimestamp") or "", metadata["name"])


def decide(me: dict[str, Any], gates: list[Gate], executions: list[dict[str, Any]]) -> Decision:
    """Whether `me` may start now, from the namespace's Executions as the API server has them."""
    name = me["metadata"]["name"]
    others = [e for e in executions if e["metadata"]["name"] != name and not _finished(e)]
    mine = _playbook_ref(me)
    cancel: list[str] = []
    waits: list[str] = []

    def gates_known(execution: dict[str, Any]) -> list[str]:
        # One of my playbook's that no driver has looked at yet (just created, or the operator
        # just started) waits at my gates too: without this, whichever is decided first would
        # pass, whatever its priority.
        known = _admission(execution).get("gates")
        if known is None and mine and _playbook_ref(execution) == mine and not _started(execution):
            return [gate.key for gate in gates]
        return list(known or [])

    for gate in gates:
        at_gate = [e for e in others if gate.key in gates_known(e)]
        holders = [e for e in at_gate if _admission(e).get("admittedAt")]
        waiting = [
            e
            for e in at_gate
            if not _admission(e).get("admittedAt") and not (e.get("spec") or {}).get("cancel")
        ]
        ahead = sum(1 for e in waiting if _queue_order(e) < _queue_order(me))
        free = gate.limit - len(holders)
        if ahead < free:
            continue
        what = gate.key.replace("/", " ", 1)
        running = f"{len(holders)} of {gate.limit} running"
        if gate.policy == "Forbid":
            return Decision(False, refuse=f"{what}: {running} (concurrency.policy Forbid)")
        if gate.policy == "Replace":
            replaceable = sorted(
                (e for e in holders if not (e.get("spec") or {}).get("cancel")),
                key=lambda e: str(_admission(e).get("admittedAt")),
            )
            # Those already cancelled will free their slots: replace only what is still short.
            short = ahead + 1 - free - (len(holders) - len(replaceable))
            cancel += [e["metadata"]["name"] for e in replaceable[: max(0, short)]]
        waits.append(f"{what}: {running}, {ahead} ahead in the queue")
    if not waits:
        return Decision(True)
    return Decision(False, reason="waiting for " + "; ".join(waits), cancel=tuple(cancel))


class Admission:
    """The namespace-wide gatekeeper the drivers of an operator share."""

    def __init__(self, api: KubeApi, clock: Clock) -> None:
        self.api = api
        self.clock = clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._changes: defaultdict[str, asyncio.Condition] = defaultdict(asyncio.Condition)

    def released(self, namespace: str) -> None:
        """An Execution of `namespace` finished or went: those waiting look again."""
        changes = self._changes[namespace]

        async def notify() -> None:
            async with changes:
                changes.notify_all()

        asyncio.get_running_loop().create_task(notify())

    async def admit(self, execution: dict[str, Any], playbook: Playbook) -> Refused | None:
        """Wait until `execution` may start (None), or until it may not start at all.

        What it wrote to the status (the admission record) is put into `execution` too.
        """
        gates = gates_of(execution, playbook)
        if not gates or _admission(execution).get("admittedAt"):
            return None
        metadata = execution["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        keys = [gate.key for gate in gates]
        while True:
            async with self._locks[namespace]:
                listed = await self.api.list_custom("executions", namespace, "")
                me = next((e for e in listed if e["metadata"]["name"] == name), execution)
                if (me.get("spec") or {}).get("cancel"):
                    return Refused("Cancelled", "Cancelled", "cancelled while queued")
                decision = decide(me, gates, listed)
                if decision.refuse is not None:
                    return Refused("Failed", "ConcurrencyLimit", decision.refuse)
                if decision.admit:
                    admission = {"gates": keys, "admittedAt": timestamp(self.clock.now())}
                    await self._write(execution, {"admission": admission})
                    return None
                for doomed in decision.cancel:
                    await self.api.patch_custom(
                        "executions", namespace, doomed, {"spec": {"cancel": True}}
                    )
                await self._queued(execution, keys, decision.reason)
            changes = self._changes[namespace]
            async with changes:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changes.wait(), RECHECK_SECONDS)

    async def _queued(self, execution: dict[str, Any], keys: list[str], reason: str) -> None:
        status = execution.get("status") or {}
        if status.get("phase") == QUEUED and status.get("message") == reason:
            return
        generation = execution["metadata"].get("generation")
        admitted = condition(
            "Admitted",
            "False",
            QUEUED,
            reason,
            generation,
            self.clock.now(),
            status.get("conditions"),
        )
        await self._write(
            execution,
            {
                "phase": QUEUED,
                "message": reason,
                "observedGeneration": generation,
                "admission": {"gates": keys},
                "conditions": [admitted],
            },
        )

    async def _write(self, execution: dict[str, Any], patch: dict[str, Any]) -> None:
        metadata = execution["metadata"]
        await self.api.patch_status("executions", metadata["namespace"], metadata["name"], patch)
        execution["status"] = {**(execution.get("status") or {}), **patch}
