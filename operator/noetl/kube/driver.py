"""Drives one Execution: the shared execution loop, wired to the cluster.

The driver reads the Execution, the playbook and workload it runs, fixed at its start
(`checkpoint.snapshot_of`), and what was saved of it (`Checkpoint`), then hands the engine to
an `ExecutionLoop` whose effects are Kubernetes objects (`KubeEffects`). Watch events reach it
on its queue as messages (`inbox`; `pending` for pods that cannot start).
On a restart it first feeds what happened while nobody watched, round after round until the
state is still (a finished run becomes current only once the run before it is fed).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from noetl.engine import CancelRequested, Engine, Event, ExecutionStarted
from noetl.engine.state import FINISHED_PHASES
from noetl.kube import metrics
from noetl.kube.api import KubeApi
from noetl.kube.checkpoint import Checkpoint, refuse, snapshot_of
from noetl.kube.effects import KubeEffects
from noetl.kube.inbox import Inbox, Message
from noetl.kube.manifests import execution_depth
from noetl.kube.pending import PendingExpired, PendingPods, PodWaiting
from noetl.kube.results import MAX_RESULT_BYTES
from noetl.kube.settings import OperatorSettings
from noetl.kube.slots import JobSlots
from noetl.kube.status import epoch_seconds
from noetl.loop import Clock, ExecutionLoop
from noetl.playbook import PlaybookInvalid


@dataclass
class OperatorContext:
    api: KubeApi
    settings: OperatorSettings
    slots: JobSlots = field(default_factory=lambda: JobSlots(200))
    clock: Clock = field(default_factory=Clock)


class ExecutionDriver:
    def __init__(self, context: OperatorContext, namespace: str, name: str) -> None:
        self.context = context
        self.namespace = namespace
        self.name = name
        self.queue: asyncio.Queue[Message | PodWaiting | PendingExpired | Event] = asyncio.Queue()
        self.execution: dict[str, Any] = {}
        self.finished_at: float | None = None
        self.checkpoint: Checkpoint | None = None

    @property
    def progressed(self) -> bool:
        """Whether this driver saved a turn: the trouble before it is then behind the run."""
        return self.checkpoint is not None and self.checkpoint.saves > 0

    async def run(self) -> None:
        api, clock = self.context.api, self.context.clock
        execution = await api.get_custom("executions", self.namespace, self.name)
        if execution is None:
            return
        self.execution = execution
        status = execution.get("status") or {}
        if status.get("phase") in FINISHED_PHASES:
            finished = status.get("finishedAt")
            self.finished_at = epoch_seconds(finished) if finished else clock.now()
            return
        try:
            snapshot = await snapshot_of(api, execution, self.context.settings)
        except (PlaybookInvalid, LookupError) as error:
            self.finished_at = await refuse(api, execution, error)
            return
        spec, uid = execution["spec"], execution["metadata"]["uid"]
        # The status reports the generation the run follows (`observedGeneration`): the one it
        # started from, whatever was edited since; a cancel acted on moves it on (inbox).
        if not spec.get("cancel"):
            execution["metadata"]["generation"] = snapshot.generation
        engine = Engine(
            snapshot.playbook,
            snapshot.workload,
            {"id": uid, "name": self.name},
            depth=execution_depth(execution),
            max_child_depth=self.context.settings.max_child_depth,
            result_limit=MAX_RESULT_BYTES,
        )
        checkpoint = self.checkpoint = await Checkpoint.load(api, execution)
        inbox = Inbox(api, execution, checkpoint.state)
        context = self.context
        pending = PendingPods(
            api,
            execution,
            checkpoint.state,
            clock,
            context.settings.step_pending_timeout,
            self.queue.put_nowait,
        )
        effects = KubeEffects(
            api,
            context.settings,
            context.slots,
            engine,
            execution,
            checkpoint,
            inbox,
            clock,
            pending,
        )
        loop = ExecutionLoop(
            engine, effects, checkpoint.state, checkpoint.results, self.queue, clock
        )
        metrics.EXECUTIONS_ACTIVE.inc()
        try:
            first: list[Event] = []
            if loop.state.phase == "Pending":
                first.append(ExecutionStarted(at=clock.now()))
            else:
                await _catch_up(loop, inbox)
            if spec.get("cancel"):
                first.append(CancelRequested(at=clock.now(), reason="spec.cancel is true"))
            await loop.run(first)
        finally:
            pending.stop()
            metrics.EXECUTIONS_ACTIVE.dec()
            self.finished_at = effects.finished_at


async def _catch_up(loop: ExecutionLoop, inbox: Inbox) -> None:
    """Feed what ended while no operator watched, until feeding it again changes nothing."""
    while not loop.state.finished:
        before = json.dumps(loop.state.to_dict())
        await loop.feed(await inbox.recovered(loop.clock.now()))
        if json.dumps(loop.state.to_dict()) == before:
            break
