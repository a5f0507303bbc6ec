"""The engine: a pure state machine that decides, event by event, what an execution does next.

It imports nothing from the shells (local runner, operator) or the plugins.
"""

from noetl.engine.machine import DEFAULT_MAX_CHILD_DEPTH, Engine, RenderContext, merge_workload
from noetl.engine.messages import (
    CancelRequested,
    CancelStep,
    Command,
    Event,
    ExecutionStarted,
    FinishExecution,
    ScheduleRetry,
    ScheduleTimer,
    StartChildExecution,
    StartStep,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerFired,
    run_key,
)
from noetl.engine.state import ExecutionState, LoopState, StepState, record_key, step_record

__all__ = [
    "DEFAULT_MAX_CHILD_DEPTH",
    "CancelRequested",
    "CancelStep",
    "Command",
    "Engine",
    "Event",
    "ExecutionStarted",
    "ExecutionState",
    "FinishExecution",
    "LoopState",
    "RenderContext",
    "ScheduleRetry",
    "ScheduleTimer",
    "StartChildExecution",
    "StartStep",
    "StepFailed",
    "StepStarted",
    "StepState",
    "StepSucceeded",
    "TimerFired",
    "merge_workload",
    "record_key",
    "run_key",
    "step_record",
]
