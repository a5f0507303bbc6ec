"""The Execution's status: what users read with kubectl, kept small whatever the playbook does.

Besides the engine's in-flight state (`status.engine`, the JSON the operator resumes from, which
holds no finished step: their records live with the results), the status shows the phase,
timings, the steps running now, a per-step summary bounded to `SUMMARY_LIMIT` entries (the
unfinished and the most recent), counts by phase, the result when it is small (else a reference
to the ConfigMap holding it), and a `Succeeded` condition. It is written as a merge patch of
what changed since the last write, so a patch is as small as the change.
"""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, get_args

from noetl.engine import ExecutionState, StepState, record_key
from noetl.engine.state import StepPhase
from noetl.kube.conditions import ConditionStatus, condition
from noetl.kube.times import timestamp
from noetl.tables import duration

SUMMARY_LIMIT = 100
INLINE_RESULT_BYTES = 2048
RECORD_SUFFIX = record_key("")


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


class FinishedSteps:
    """What the status shows of finished steps: counts by phase and the latest few summaries.

    The records themselves live with the results (the engine moves a step's record there when it
    finishes); this keeps only what a status needs, in memory, updated as records arrive, so
    building a status costs the same on the 5th step as on the 5,000th.
    """

    def __init__(self) -> None:
        self._phases: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.recent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    @classmethod
    def from_results(cls, results: Mapping[str, Any], in_flight: Iterable[str]) -> FinishedSteps:
        """Rebuilt after a restart from the records in the result store (oldest first)."""
        skip = set(in_flight)  # saved before a crash that came before the status said so
        records = [
            (name, raw)
            for key, raw in results.items()
            if (name := _record_step(key)) is not None and name not in skip
        ]
        book = cls()
        for name, raw in sorted(records, key=lambda item: item[1].get("finished_at") or 0):
            book.add(name, raw)
        return book

    def add(self, name: str, raw: Mapping[str, Any]) -> None:
        record = StepState.from_dict(dict(raw))
        previous = self._phases.get(name)
        if previous is not None:
            self.counts[previous] -= 1
        self._phases[name] = record.phase
        self.counts[record.phase] += 1
        self.recent.pop(name, None)
        self.recent[name] = _summary(record)
        while len(self.recent) > SUMMARY_LIMIT:
            self.recent.popitem(last=False)

    def add_from(self, results: Mapping[str, Any], keys: Iterable[str]) -> None:
        """Take in the records among `keys` (the result keys written in a turn)."""
        for key in keys:
            name = _record_step(key)
            if name is not None and key in results:
                self.add(name, results[key])


def _record_step(key: str) -> str | None:
    return key.removesuffix(RECORD_SUFFIX) if key.endswith(RECORD_SUFFIX) else None


def step_summaries(state: ExecutionState, finished: FinishedSteps) -> dict[str, dict[str, Any]]:
    """The unfinished steps first, then the most recently finished, `SUMMARY_LIMIT` in all."""
    chosen = {name: _summary(step) for name, step in list(state.steps.items())[:SUMMARY_LIMIT]}
    room = SUMMARY_LIMIT - len(chosen)
    for name in reversed(finished.recent):
        if room <= 0:
            break
        if name not in chosen:
            chosen[name] = finished.recent[name]
            room -= 1
    return chosen


def _condition(state: ExecutionState, generation: int | None) -> dict[str, Any]:
    """`Succeeded`: Unknown from the start (its transition time), True or False from the end."""
    status: ConditionStatus
    if state.phase == "Succeeded":
        status, reason, message = "True", "Succeeded", "all steps finished"
    elif state.phase in ("Failed", "Cancelled"):
        status, reason, message = "False", state.phase, state.error or state.phase.lower()
    elif state.shown_phase == "Suspended":
        message = f"suspended ({state.suspended}): no new step starts until resumed"
        status, reason = "Unknown", "Suspended"
    else:
        status, reason, message = (
            "Unknown",
            state.phase,
            f"running: {', '.join(list(state.active)[:5]) or 'nothing yet'}",
        )
    changed = state.finished_at or state.started_at
    return condition("Succeeded", status, reason, message, generation, changed or time.time())


def execution_status(
    state: ExecutionState,
    generation: int | None,
    finished: FinishedSteps | None = None,
    result: Any = None,
    result_ref: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The whole status (every field set, so that a merge patch replaces stale values)."""
    finished = finished or FinishedSteps()
    active = list(state.active)
    counts = finished.counts + Counter(step.phase for step in state.steps.values())
    status: dict[str, Any] = {
        "phase": state.shown_phase,
        "awaitingApproval": list(state.approvals) or None,
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
        "steps": step_summaries(state, finished),
        "error": state.error,
        "result": None,
        "resultRef": result_ref,
        "conditions": [_condition(state, generation)],
        "engine": json.dumps(state.to_dict(), separators=(",", ":")),
    }
    if result_ref is None and result is not None:
        status["result"] = result
    return status


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: only what changed."""
    patch: dict[str, Any] = {}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = merge_patch(before, value)
            if inner:
                patch[key] = inner
        elif key not in old or before != value:
            patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


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
