"""The recorded state of one execution: small, JSON-serialisable, enough to carry on after a crash.

It holds what is in flight: the steps running, retrying or waiting, the timers, the loops'
counters. Results are not kept here, and neither are the records of finished steps: both live in
the result store the shell passes to the engine (a dict locally, ConfigMaps in Kubernetes), a
finished step's record under `record_key(step)`. So the state's size follows what runs now, never
what has run: a 5,000-step chain or a 10,000-item loop keeps a few hundred bytes here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ExecutionPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Cancelled"]
"""The engine's phases; people also see `Suspended` (`ExecutionState.shown_phase`)."""
StepPhase = Literal["Waiting", "Running", "Retrying", "Succeeded", "Failed", "Skipped", "Cancelled"]
FinishedStepPhase = Literal["Succeeded", "Failed", "Skipped", "Cancelled"]
FinishedPhase = Literal["Succeeded", "Failed", "Cancelled"]  # of an execution
FINISHED_STEP_PHASES = ("Succeeded", "Failed", "Skipped", "Cancelled")
FINISHED_PHASES = ("Succeeded", "Failed", "Cancelled")  # of an execution
MESSAGE_LIMIT = 300
ERROR_LIMIT = 2000  # a step's error; child executions nest theirs, so each level cuts again


def short(message: str) -> str:
    """A message cut to the length a status summary keeps."""
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


def clip(error: str) -> str:
    """An error cut to ERROR_LIMIT characters, ending with an ellipsis when cut."""
    return error if len(error) <= ERROR_LIMIT else error[: ERROR_LIMIT - 1] + "…"


def record_key(step: str) -> str:
    """Where a finished step's record (a `StepState.to_dict()`) is kept in the result store."""
    return f"{step}#record"


def log_key(step: str) -> str:
    """Where the end of a finished step's log is kept: that of the run whose end ended it."""
    return f"{step}#log"


def _compact(items: list[tuple[str, Any]]) -> dict[str, Any]:
    # Empty and unset fields are left out: the persisted form stays as small as it can.
    return {key: value for key, value in items if value not in (None, [], {})}


@dataclass
class LoopState:
    total: int
    next_index: int = 0
    done: int = 0
    in_flight: dict[int, int] = field(default_factory=dict)  # item index -> attempt
    failures: int = 0  # items that failed for good (their errors are in the result store)
    failed_index: int | None = None  # the item whose failure went past loop.maxFailures


TimerKind = Literal["execution", "retry", "timeout", "grace"]


@dataclass
class Timer:
    """A due time the shell keeps; `step`, `index` and `attempt` name the run it is about."""

    due: float
    kind: TimerKind = "retry"
    step: str | None = None
    index: int | None = None
    attempt: int = 0


@dataclass
class StepState:
    phase: StepPhase
    attempt: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    message: str | None = None
    loop: LoopState | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self, dict_factory=_compact)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StepState:
        loop = raw.get("loop")
        if loop is not None:
            # JSON object keys are strings; item indexes are ints.
            in_flight = {int(i): attempt for i, attempt in loop.get("in_flight", {}).items()}
            loop = LoopState(**{**loop, "in_flight": in_flight})
        return cls(**{**raw, "loop": loop})


@dataclass
class ExecutionState:
    phase: ExecutionPhase = "Pending"
    started_at: float | None = None
    finished_at: float | None = None
    steps: dict[str, StepState] = field(default_factory=dict)  # unfinished steps only
    active: dict[str, None] = field(default_factory=dict)  # steps running or waiting to retry
    waiting: dict[str, None] = field(default_factory=dict)  # joins with arrivals, not yet started
    timers: dict[str, Timer] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # steps whose failure fails the execution
    last_result_step: str | None = None
    error: str | None = None
    # Set when the workflow has ended and its `finally` steps run: how it ended (with `error`).
    ending: FinishedPhase | None = None
    suspended: str | None = None  # why, while suspended: no new run starts
    held: list[tuple[str, int | None, int]] = field(default_factory=list)  # runs not started yet
    approvals: dict[str, None] = field(default_factory=dict)  # approval steps waiting

    @property
    def shown_phase(self) -> str:
        """The phase people see: `Suspended` while a running execution starts nothing new."""
        return "Suspended" if self.phase == "Running" and self.suspended else self.phase

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    def running_step(self, name: str, index: int | None, attempt: int) -> StepState | None:
        """The step's record if (index, attempt) is the run in flight now, else None (stale)."""
        step = self.steps.get(name)
        if step is None or step.phase != "Running":
            return None
        if index is None:
            return step if step.loop is None and step.attempt == attempt else None
        return step if step.loop is not None and step.loop.in_flight.get(index) == attempt else None

    def runs_in_flight(self) -> list[tuple[str, int | None, int]]:
        """(step, index, attempt) of every run started and not yet finished."""
        runs: list[tuple[str, int | None, int]] = []
        for name in self.active:
            step = self.steps[name]
            if step.loop is not None:
                runs += [
                    (name, index, attempt)
                    for index, attempt in step.loop.in_flight.items()
                    if (name, index, attempt) not in self.held
                ]
            elif step.phase == "Running":
                runs.append((name, None, step.attempt))
        return runs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self, dict_factory=_compact)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionState:
        return cls(
            **{
                **data,
                "steps": {
                    name: StepState.from_dict(raw) for name, raw in data.get("steps", {}).items()
                },
                "timers": {key: Timer(**timer) for key, timer in data.get("timers", {}).items()},
                "held": [tuple(run) for run in data.get("held", [])],
            }
        )


def step_record(state: ExecutionState, results: Mapping[str, Any], name: str) -> StepState | None:
    """A step's record wherever it is: in the state while unfinished, else in the result store."""
    step = state.steps.get(name)
    if step is not None:
        return step
    raw = results.get(record_key(name))
    return StepState.from_dict(raw) if raw is not None else None
