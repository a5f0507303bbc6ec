"""A local run read back from its event log: what `noetl retry` and `noetl resubmit` start from.

The log's header (type `Run`) holds the playbook as it ran and the workload; every event the
engine heard follows. Fed again to an engine for that playbook, the events rebuild the run's
final state and result store exactly (the engine is deterministic), so nothing about a run is
stored twice. Events of child runs (sub-playbooks) carry their own execution id and are left out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noetl.engine import (
    ApprovalGiven,
    CancelRequested,
    Engine,
    Event,
    ExecutionStarted,
    ExecutionState,
    ResumeRequested,
    StepFailed,
    StepStarted,
    StepSucceeded,
    SuspendRequested,
    TimerFired,
)
from noetl.local.eventlog import NotARunLog, read_records
from noetl.playbook import Playbook, PlaybookInvalid, parse_playbook

EVENT_TYPES: dict[str, type[Any]] = {
    kind.__name__: kind
    for kind in (
        ExecutionStarted,
        StepStarted,
        StepSucceeded,
        StepFailed,
        TimerFired,
        CancelRequested,
        SuspendRequested,
        ResumeRequested,
        ApprovalGiven,
    )
}


class NotReplayable(ValueError):
    """The file is not the event log of a run that can be read back."""


@dataclass
class RecordedRun:
    execution: str
    playbook: Playbook
    playbook_path: Path
    workload: dict[str, Any]
    state: ExecutionState
    results: dict[str, Any]


def _event(record: dict[str, Any]) -> Event:
    kind = EVENT_TYPES[record["type"]]
    fields = {f.name for f in dataclasses.fields(kind)}
    event: Event = kind(**{key: value for key, value in record.items() if key in fields})
    return event


def read_run(log: Path) -> RecordedRun:
    try:
        header, records = read_records(log)
    except NotARunLog as error:
        raise NotReplayable(str(error)) from None
    if "spec" not in header:
        raise NotReplayable(f"{log}: the run header holds no playbook (an older noetl wrote it)")
    document = {"kind": "Playbook", "metadata": {"name": header["name"]}, "spec": header["spec"]}
    try:
        playbook = parse_playbook(document, str(log))
    except PlaybookInvalid as invalid:
        raise NotReplayable(str(invalid)) from None
    execution = str(header["execution"])
    workload = dict(header.get("workload") or {})
    engine = Engine(playbook, workload, {"id": execution, "name": playbook.name})
    state, results = ExecutionState(), dict[str, Any]()
    for record in records:
        if record.get("execution") == execution and record["type"] in EVENT_TYPES:
            engine.handle(state, results, _event(record))
    return RecordedRun(execution, playbook, Path(header["playbook"]), workload, state, results)
