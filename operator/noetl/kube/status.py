"""The Execution's status: what users read with kubectl, kept small whatever the playbook does.

Besides the engine's own record (`status.engine`, the JSON the operator resumes from), the
status shows the phase, timings, the steps running now, a per-step summary bounded to
`SUMMARY_LIMIT` entries (the unfinished and the most recent), counts by phase, the result when it
is small (else a reference to the ConfigMap holding it), and a `Succeeded` condition.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any, get_args

from noetl.engine import ExecutionState, StepState
from noetl.engine.state import StepPhase

SUMMARY_LIMIT = 100
INLINE_RESULT_BYTES = 2048


def timestamp(seconds: float | None) -> str | None:
    """Seconds since the epoch as a Kubernetes (RFC 3339, UTC) time."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_seconds(text: str) -> float:
    """The inverse of `timestamp`, for the times the API server writes."""
    return datetime.fromisoformat(text).timestamp()


def duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or hours else "") + f"{secs}s"


def _summary(step: StepState) -> dict[str, Any]:
    entry: dict[str, Any] = {"phase": step.phase}
    if step.attempt:
        entry["attempts"] = step.attempt
    if step.started_at is not None:
        entry["startedAt"] = timestamp(step.started_at)
    if step.finished_at is not None:
        entry["finishedAt"] = timestamp(step.finished_at)
    if step.loop is not None:
        entry["items"] = f"{step.loop.done}/{step.loop.total}"
    if step.message:
        entry["message"] = step.message
    return entry


def step_summaries(state: ExecutionState) -> dict[str, dict[str, Any]]:
    unfinished = [name for name, step in state.steps.items() if step.finished_at is None]
    finished = sorted(
        (name for name, step in state.steps.items() if step.finished_at is not None),
        key=lambda n: state.steps[n].finished_at or 0,
    )
    room = max(0, SUMMARY_LIMIT - len(unfinished))
    chosen = unfinished[:SUMMARY_LIMIT] + (finished[-room:] if room else [])
    return {name: _summary(state.steps[name]) for name in chosen}


def _condition(state: ExecutionState) -> dict[str, Any]:
    if state.phase == "Succeeded":
        status, reason, message = "True", "Succeeded", "all steps finished"
    elif state.phase in ("Failed", "Cancelled"):
        status, reason, message = "False", state.phase, state.error or state.phase.lower()
    else:
        status, reason, message = (
            "Unknown",
            state.phase,
            f"running: {', '.join(list(state.active)[:5]) or 'nothing yet'}",
        )
    changed = state.finished_at or state.started_at
    return {
        "type": "Succeeded",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": timestamp(changed or time.time()),
    }


def execution_status(
    state: ExecutionState,
    generation: int | None,
    result: Any = None,
    result_ref: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The whole status (every field set, so that a merge patch replaces stale values)."""
    active = list(state.active)
    counts = Counter(step.phase for step in state.steps.values())
    status: dict[str, Any] = {
        "phase": state.phase,
        "observedGeneration": generation,
        "startedAt": timestamp(state.started_at),
        "finishedAt": timestamp(state.finished_at),
        "duration": duration(state.finished_at - state.started_at)
        if state.finished_at and state.started_at
        else None,
        "currentStep": active[0] if active else None,
        "currentSteps": active[:10] or None,
        # Every phase is named, zero as null, so that a merge patch drops counts that fell to 0.
        "stepCounts": {phase: counts.get(phase) or None for phase in get_args(StepPhase)},
        "steps": step_summaries(state),
        "error": state.error,
        "result": None,
        "resultRef": result_ref,
        "conditions": [_condition(state)],
        "engine": json.dumps(state.to_dict(), separators=(",", ":")),
    }
    if result_ref is None and result is not None:
        status["result"] = result
    return status


def fits_inline(result: Any) -> bool:
    """Whether the result can sit in the status as it is. The API server re-encodes the status,
    and a float with nothing after the point (19.0) comes back an integer (19): a result holding
    one is kept in a ConfigMap, as text, like a large one."""
    return len(json.dumps(result, default=str)) <= INLINE_RESULT_BYTES and not _whole_float(result)


def _whole_float(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_whole_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_whole_float(item) for item in value)
    return False
