"""The execution loop both shells share: one queue of events, the engine, timers, commands out.

The engine decides; this loop feeds it one event at a time and carries out what it decides
through a small set of effects each shell provides (`Effects`): start a run (a process locally,
a Job or a child Execution on a cluster), cancel one, announce what happened (progress, event
log, Kubernetes Events, metrics), and persist after each turn. Timers (retries, step timeouts,
the execution timeout) are kept here on a `Clock` (a fake one in tests), armed from the state,
so a restarted shell re-arms them from their due times. A run that cannot even start comes back
to the engine as that run's failure: only the engine sets a phase.

A turn is every event waiting on the queue, fed in order; the shell persists once at its end, so
a burst of completions costs one save, not one per event. A shell may also put off a save (the
operator does, while what it would save can still be read back from the cluster) and post
`PERSIST_DUE` when it wants the save it put off: a turn of its own, with no event.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Protocol

from noetl.engine import (
    CancelStep,
    Command,
    Engine,
    Event,
    ExecutionState,
    FinishExecution,
    ScheduleRetry,
    ScheduleTimer,
    StartChildExecution,
    StartStep,
    StepFailed,
    StepSucceeded,
    TimerFired,
)

Run = StartStep | StartChildExecution
PERSIST_DUE = object()  # posted by a shell: persist now, though no event came


class RunRefused(Exception):
    """A run could not even start (no image for its tool, input too large, refused by the API).

    Raised by `Effects.start_run`; the loop turns it into the run's `StepFailed`, so the engine
    decides what follows (a retry, routing on error, failing the execution).
    """


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock:
    """Seconds since the epoch, and callbacks after a delay: the loop's only sense of time."""

    def now(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        return asyncio.get_running_loop().call_later(delay, callback)


class Effects:
    """What a shell does for the loop. Every method but `start_run` may be left as is."""

    async def start_run(self, run: Run) -> None:
        """Start a run; its end comes back later as an event posted to the loop."""
        raise NotImplementedError

    async def cancel_run(self, command: CancelStep) -> None:
        """Stop a run; no event is expected back for it."""

    async def announce(self, message: Event | Command, current: bool = True) -> None:
        """Tell people and machines what happened; `current` is False for a stale step event."""

    async def persist(self, loop: ExecutionLoop) -> None:
        """Save what a restart needs, once per turn, after every command of the turn was done
        (and on a `PERSIST_DUE` the shell posted)."""

    async def interpret(self, message: Any) -> list[Event]:
        """Turn a message of the shell's own (a changed Job, say) into engine events (or none)."""
        raise TypeError(f"no engine event for {message!r}")


class ExecutionLoop:
    def __init__(
        self,
        engine: Engine,
        effects: Effects,
        state: ExecutionState | None = None,
        results: MutableMapping[str, Any] | None = None,
        queue: asyncio.Queue[Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`queue`: where messages were posted before the loop was made (a new one if None)."""
        self.engine = engine
        self.effects = effects
        self.state = state if state is not None else ExecutionState()
        self.results: MutableMapping[str, Any] = results if results is not None else {}
        self.finished: FinishExecution | None = None
        self._queue: asyncio.Queue[Any] = queue if queue is not None else asyncio.Queue()
        self.clock = clock or Clock()
        self._timers: dict[str, Cancellable] = {}

    def post(self, message: Any) -> None:
        """Queue an engine event, or a shell message that `Effects.interpret` understands."""
        self._queue.put_nowait(message)

    async def run(self, first: Iterable[Event] = ()) -> None:
        """Feed `first`, then every message posted, until the execution has finished."""
        try:
            for timer_id, timer in self.state.timers.items():
                self._arm(timer_id, timer.due)
            await self.feed(first)
            while not self.state.finished:
                messages = [await self._queue.get()]
                while not self._queue.empty():
                    messages.append(self._queue.get_nowait())
                handled, due = False, False
                for message in messages:
                    if message is PERSIST_DUE:
                        due = True
                        continue
                    # Each message is read after the one before was handled, so that a second
                    # word of the same end (a pod seen twice, say) finds its run already over.
                    for event in await self._as_events(message):
                        await self._handle(event)
                        handled = True
                if handled or due:
                    await self._save()
        finally:
            self.stop_timers()

    async def feed(self, events: Iterable[Event]) -> None:
        """One turn: each event to the engine, each command carried out, then one save."""
        events = list(events)
        for event in events:
            await self._handle(event)
        if events:
            await self._save()

    async def _save(self) -> None:
        self._drop_spent_timers()
        await self.effects.persist(self)

    async def _handle(self, event: Event) -> None:
        """An event to the engine, and its commands carried out (a refused run is fed back)."""
        pending = deque([event])
        while pending:
            event = pending.popleft()
            current = not isinstance(event, StepSucceeded | StepFailed) or (
                self.state.running_step(event.step, event.index, event.attempt) is not None
            )
            await self.effects.announce(event, current)
            runs: list[Run] = []
            for command in self.engine.handle(self.state, self.results, event):
                await self.effects.announce(command)
                if isinstance(command, StartStep | StartChildExecution):
                    runs.append(command)
                else:
                    await self._carry_out(command)
            # Runs start together: a fan-out or a loop's first items cost one round trip, not N.
            failures = await asyncio.gather(*(self._start(run) for run in runs))
            pending.extend(failure for failure in failures if failure is not None)

    def stop_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    async def _as_events(self, message: Any) -> list[Event]:
        if isinstance(message, Event):
            return [message]
        return await self.effects.interpret(message)

    async def _start(self, run: Run) -> StepFailed | None:
        try:
            await self.effects.start_run(run)
        except RunRefused as refused:
            return StepFailed(
                run.step, run.index, run.attempt, at=self.clock.now(), error=str(refused)
            )
        return None

    async def _carry_out(self, command: Command) -> None:
        match command:
            case ScheduleRetry() | ScheduleTimer():
                self._arm(command.timer, command.due)
            case CancelStep():
                await self.effects.cancel_run(command)
            case FinishExecution():
                self.finished = command

    def _arm(self, timer_id: str, due: float) -> None:
        if timer_id in self._timers:
            return

        def fire() -> None:
            self._timers.pop(timer_id, None)
            self.post(TimerFired(timer_id, at=self.clock.now()))

        delay = max(0.0, due - self.clock.now())
        self._timers[timer_id] = self.clock.call_later(delay, fire)

    def _drop_spent_timers(self) -> None:
        # A step's timeout timer is spent when its attempt ends: the engine forgets it, so do we.
        for timer_id in [t for t in self._timers if t not in self.state.timers]:
            self._timers.pop(timer_id).cancel()
