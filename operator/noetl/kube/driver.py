"""Drives one Execution: the shared execution loop, wired to the cluster.

The driver reads the Execution, the playbook and workload it runs, fixed at its start
(`checkpoint.snapshot_of`), and what was saved of it (`Checkpoint`), then hands the engine to
an `ExecutionLoop` whose effects are Kubernetes objects (`KubeEffects`). Watch events reach it
on its queue as messages (`inbox`; `pending` for pods that cannot start).
When an earlier driver had begun (it froze the snapshot), it first feeds what happened while
nobody watched, round after round until the state is still (a finished run becomes current only
once the run before it is fed); cancelled before its start was saved, it deletes the runs that
earlier driver began, which its state does not know (`sweep`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast

from noetl.engine import Engine, Event, ExecutionStarted
from noetl.engine.state import FINISHED_PHASES
from noetl.kube import metrics
from noetl.kube.admission import Admission
from noetl.kube.api import KubeApi
from noetl.kube.checkpoint import Checkpoint, refuse, retried_results, snapshot_of
from noetl.kube.effects import KubeEffects
from noetl.kube.inbox import Inbox, Message, spec_events
from noetl.kube.manifests import execution_depth
from noetl.kube.pending import PendingMessage, PendingPods
from noetl.kube.results import MAX_RESULT_BYTES
from noetl.kube.settings import OperatorSettings
from noetl.kube.shared_reads import SharedReads
from noetl.kube.slots import JobSlots
from noetl.kube.sweep import stop_runs
from noetl.kube.times import epoch_seconds
from noetl.loop import Clock, ExecutionLoop
from noetl.playbook import PlaybookInvalid


@dataclass
class OperatorContext:
    api: KubeApi
    settings: OperatorSettings
    slots: JobSlots = field(default_factory=lambda: JobSlots(200))
    clock: Clock = field(default_factory=Clock)
    admission: Admission = field(init=False)
    reads: SharedReads = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.api, self.clock)
        self.reads = SharedReads(self.api)

    @property
    def driver_api(self) -> KubeApi:
        """The API as drivers use it: their start-up reads shared with the drivers starting
        alongside (`SharedReads` answers every call `KubeApi` does)."""
        return cast(KubeApi, self.reads)


class ExecutionDriver:
    def __init__(self, context: OperatorContext, namespace: str, name: str) -> None:
        self.context = context
        self.namespace = namespace
        self.name = name
        self.queue: asyncio.Queue[Message | PendingMessage | Event] = asyncio.Queue()
        self.execution: dict[str, Any] = {}
        self.finished_at: float | None = None
        self.checkpoint: Checkpoint | None = None

    @property
    def progressed(self) -> bool:
        """Whether this driver saved a turn: the trouble before it is then behind the run."""
        return self.checkpoint is not None and self.checkpoint.saves > 0

    async def run(self) -> None:
        api, clock = self.context.driver_api, self.context.clock
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
        if not status.get("engine"):  # not started: it may have to wait its turn
            refused = await self.context.admission.admit(execution, snapshot.playbook)
            if refused is not None:
                self.finished_at = await refuse(
                    api, execution, refused.message, refused.reason, refused.phase
                )
                return
        spec, uid = execution["spec"], execution["metadata"]["uid"]
        engine = Engine(
            snapshot.playbook,
            snapshot.workload,
            {"id": uid, "name": self.name},
            depth=execution_depth(execution),
            max_child_depth=self.context.settings.max_child_depth,
            result_limit=MAX_RESULT_BYTES,
            finally_grace=self.context.settings.finally_grace_seconds,
        )
        checkpoint = self.checkpoint = await Checkpoint.load(api, execution)
        if checkpoint.state.phase == "Pending" and spec.get("retryOf"):
            # Seeded again after a crash before the start was saved: the same keys, no harm.
            try:
                checkpoint.results.update(await retried_results(api, execution, engine.graph))
            except LookupError as error:
                self.finished_at = await refuse(api, execution, error, "NothingToRetry")
                return
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
            if loop.state.phase != "Pending":
                await _catch_up(loop, inbox)
            # What the spec asks (cancel, suspend, approvals) comes before the start: an
            # Execution created suspended starts no step at all.
            first += spec_events(spec, loop.state, clock.now())
            if loop.state.phase == "Pending":
                first.append(ExecutionStarted(at=clock.now()))
                if snapshot.frozen_before:
                    # Its first save may have waited: an earlier driver may have started runs.
                    await loop.feed(first)
                    first = []
                    if loop.state.finished:  # cancelled: the runs it began are not in the state
                        await stop_runs(api, execution)
                    await _catch_up(loop, inbox)
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
