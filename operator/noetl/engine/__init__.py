"""The engine: a pure state machine that decides, event by event, what an execution does next.

It imports nothing from the shells (local runner, operator) or the plugins.
"""

from noetl.engine.machine import (
    DEFAULT_FINALLY_GRACE,
    DEFAULT_MAX_CHILD_DEPTH,
    Engine,
    RenderContext,
    merge_workload,
)
from noetl.engine.messages import (
    ApprovalGiven,
    AwaitApproval,
    CancelRequested,
    CancelStep,
    Command,
    Event,
    ExecutionStarted,
    FinishExecution,
    ResumeRequested,
    ScheduleRetry,
    ScheduleTimer,
    StartChildExecution,
    StartStep,
    StepFailed,
    StepStarted,
    StepSucceeded,
    SuspendRequested,
    TimerFired,
    run_key,
)
from noetl.engine.state import (
    ExecutionState,
    LoopState,
    StepState,
    log_key,
    record_key,
    step_record,
)

__all__ = [
    "DEFAULT_FINALLY_GRACE",
    "DEFAULT_MAX_CHILD_DEPTH",
    "ApprovalGiven",
    "AwaitApproval",
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
    "ResumeRequested",
    "ScheduleRetry",
    "ScheduleTimer",
    "StartChildExecution",
    "StartStep",
    "StepFailed",
    "StepStarted",
    "StepState",
    "StepSucceeded",
    "SuspendRequested",
    "TimerFired",
    "log_key",
    "merge_workload",
    "record_key",
    "run_key",
    "step_record",
]
