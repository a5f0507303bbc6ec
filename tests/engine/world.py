"""A tiny simulated world for engine tests: it carries out commands and remembers what happened."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import yaml

from noetl.engine import (
    CancelRequested,
    CancelStep,
    Command,
    Engine,
    Event,
    ExecutionStarted,
    ExecutionState,
    FinishExecution,
    ScheduleRetry,
    ScheduleTimer,
    StartChildExecution,
    StartStep,
    StepFailed,
    StepState,
    StepSucceeded,
    TimerFired,
    step_record,
)
from noetl.playbook import Playbook, parse_playbook

Decide = Callable[[StartStep | StartChildExecution], tuple[bool, Any]]


def playbook(text: str) -> Playbook:
    return parse_playbook(yaml.safe_load(text), "test")


class World:
    def __init__(
        self,
        pb: Playbook | str,
        workload: dict[str, Any] | None = None,
        roundtrip: bool = False,
        **engine_options: Any,
    ):
        self.engine = Engine(
            playbook(pb) if isinstance(pb, str) else pb,
            workload,
            {"id": "x-1", "name": "x"},
            **engine_options,
        )
        self.state = ExecutionState()
        self.results: dict[str, Any] = {}
        self.roundtrip = (
            roundtrip  # re-read the state from JSON before every event, as after a crash
        )
        self.clock = 0.0
        self.running: dict[str, StartStep | StartChildExecution] = {}
        self.timers: dict[str, float] = {}
        self.started: list[StartStep | StartChildExecution] = []
        self.cancelled: list[CancelStep] = []
        self.retries: list[ScheduleRetry] = []
        self.finished: FinishExecution | None = None
        self.log: list[Command] = []

    def send(self, event: Event) -> list[Command]:
        if self.roundtrip:
            self.state = ExecutionState.from_dict(json.loads(json.dumps(self.state.to_dict())))
            self.results = json.loads(json.dumps(self.results))
        commands = self.engine.handle(self.state, self.results, event)
        for command in commands:
            self.log.append(command)
            match command:
                case StartStep() | StartChildExecution():
                    assert command.key not in self.running, f"{command.key} started twice"
                    self.running[command.key] = command
                    self.started.append(command)
                case ScheduleRetry():
                    self.retries.append(command)
                    self.timers[command.timer] = command.due
                case ScheduleTimer():
                    self.timers[command.timer] = command.due
                case CancelStep():
                    self.running.pop(command.key, None)
                    self.cancelled.append(command)
                case FinishExecution():
                    assert self.finished is None, "finished twice"
                    self.finished = command
        return commands

    def tick(self, seconds: float = 1.0) -> float:
        self.clock += seconds
        return self.clock

    def start(self) -> list[Command]:
        return self.send(ExecutionStarted(at=self.clock))

    def _run(self, key_or_step: str) -> StartStep | StartChildExecution:
        if key_or_step in self.running:
            return self.running.pop(key_or_step)
        matches = [key for key, command in self.running.items() if command.step == key_or_step]
        assert len(matches) == 1, f"{key_or_step!r} matches {matches} of {list(self.running)}"
        return self.running.pop(matches[0])

    def succeed(
        self, key_or_step: str, result: Any = None, log: str | None = None
    ) -> list[Command]:
        run = self._run(key_or_step)
        return self.send(
            StepSucceeded(run.step, run.index, run.attempt, at=self.tick(), result=result, log=log)
        )

    def fail(
        self, key_or_step: str, error: str = "boom", result: Any = None, log: str | None = None
    ) -> list[Command]:
        run = self._run(key_or_step)
        at = self.tick()
        return self.send(StepFailed(run.step, run.index, run.attempt, at, error, result, log))

    def fire(self, timer: str) -> list[Command]:
        due = self.timers.pop(timer)
        self.clock = max(self.clock, due)
        return self.send(TimerFired(timer, at=self.clock))

    def cancel(self) -> list[Command]:
        return self.send(CancelRequested(at=self.tick()))

    def run_to_end(
        self, decide: Decide | None = None, rng: random.Random | None = None, limit: int = 100_000
    ) -> FinishExecution:
        """Finish running steps (in random order with `rng`) and fire timers until the end."""
        decide = decide or (lambda command: (True, command.step))
        if not self.state.started_at:
            self.start()
        for _ in range(limit):
            if self.finished:
                return self.finished
            if self.running:
                keys = list(self.running)
                key = rng.choice(keys) if rng else keys[0]
                ok, value = decide(self.running[key])
                if ok:
                    self.succeed(key, value)
                else:
                    self.fail(key, str(value))
            elif self.timers:
                self.fire(min(self.timers, key=self.timers.__getitem__))
            else:
                raise AssertionError("nothing running, no timer, and not finished")
        raise AssertionError("did not finish")

    def step(self, name: str) -> StepState | None:
        """A step's record, whether it still runs or has finished."""
        return step_record(self.state, self.results, name)

    def started_steps(self) -> list[str]:
        return [command.step for command in self.started]
