"""What the engine hears (events) and what it asks its shell to do (commands).

Both are plain frozen dataclasses. Every event carries `at`, the time in seconds since the epoch
as the shell saw it: the engine has no clock of its own. A step run is identified by
(step, index, attempt): `index` is the loop item (None outside loops), `attempt` counts from 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal


def run_key(step: str, index: int | None, attempt: int) -> str:
    """A stable name for one attempt of one step (or loop item), e.g. `fetch[3]#2`."""
    item = f"[{index}]" if index is not None else ""
    return f"{step}{item}#{attempt}"


@dataclass(frozen=True)
class _StepRun:
    step: str
    index: int | None
    attempt: int

    @property
    def key(self) -> str:
        return run_key(self.step, self.index, self.attempt)


# Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionStarted:
    at: float


@dataclass(frozen=True)
class StepStarted(_StepRun):
    at: float


@dataclass(frozen=True)
class StepSucceeded(_StepRun):
    """`log`: the end of what the run printed; the run that ends its step has it kept."""

    at: float
    result: Any = None
    log: str | None = None


@dataclass(frozen=True)
class StepFailed(_StepRun):
    at: float
    error: str
    result: Any = None
    log: str | None = None


@dataclass(frozen=True)
class TimerFired:
    timer: str
    at: float


@dataclass(frozen=True)
class CancelRequested:
    at: float
    reason: str = "cancel requested"


@dataclass(frozen=True)
class SuspendRequested:
    """Start no new step until `ResumeRequested` (the steps running go on to their end)."""

    at: float
    reason: str = "suspend requested"


@dataclass(frozen=True)
class ResumeRequested:
    at: float


@dataclass(frozen=True)
class ApprovalGiven:
    """Someone approved the waiting approval step `step`; `values` become its result."""

    step: str
    at: float
    values: dict[str, Any] = field(default_factory=dict)


Event = (
    ExecutionStarted
    | StepStarted
    | StepSucceeded
    | StepFailed
    | TimerFired
    | CancelRequested
    | SuspendRequested
    | ResumeRequested
    | ApprovalGiven
)
EVENT_TYPES: dict[str, type[Event]] = {kind.__name__: kind for kind in Event.__args__}
"""Each event class by its name: how a record of it (an event log's `type`) is read back."""


def event_of(record: Mapping[str, Any]) -> Event:
    """The event a record stands for: its `type` names the class, its other keys hold the fields
    (as an event log writes them); keys the event does not have are left out."""
    kind = EVENT_TYPES[record["type"]]
    names = {item.name for item in fields(kind)}
    return kind(**{key: value for key, value in record.items() if key in names})


# Commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartStep(_StepRun):
    """Run a tool with rendered args; `timeout` (seconds) bounds this attempt."""

    tool: str
    args: dict[str, Any]
    code: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class StartChildExecution(_StepRun):
    """Run the playbook named `playbook` with `workload`; its result is this step's result."""

    playbook: str
    workload: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True)
class ScheduleRetry(_StepRun):
    """Send `TimerFired(timer)` at `due`; the engine then starts `attempt` (the next one)."""

    timer: str
    due: float
    error: str


@dataclass(frozen=True)
class ScheduleTimer:
    """Send `TimerFired(timer)` at `due`."""

    timer: str
    due: float


@dataclass(frozen=True)
class CancelStep(_StepRun):
    """Stop a running attempt; no event is expected back for it."""


@dataclass(frozen=True)
class AwaitApproval:
    """An approval step waits for `ApprovalGiven` (or its `timeout`, in seconds): tell people."""

    step: str
    message: str
    timeout: float | None = None


@dataclass(frozen=True)
class FinishExecution:
    phase: Literal["Succeeded", "Failed", "Cancelled"]
    result: Any = None
    error: str | None = None


Command = (
    StartStep
    | StartChildExecution
    | ScheduleRetry
    | ScheduleTimer
    | CancelStep
    | AwaitApproval
    | FinishExecution
)
