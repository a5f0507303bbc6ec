"""A local run read back from its event log: what `noetl retry` and `noetl resubmit` start from.

The log's header (type `Run`) holds the playbook as it ran and the workload; every event the
engine heard follows. Fed again to an engine for that playbook, the events rebuild the run's
final state and result store exactly (the engine is deterministic), so nothing about a run is
stored twice. Events of child runs (sub-playbooks) carry their own execution id and are left out.
A retry's log is replayed from what it kept of the run it retried (`retryOf`, whose log is looked
for beside it), as the retry itself started.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noetl.engine import EVENT_TYPES, Engine, ExecutionState, event_of
from noetl.engine.retry import kept_results
from noetl.local.eventlog import NotARunLog, read_records
from noetl.playbook import Playbook, PlaybookInvalid, parse_playbook


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
    # A retry's run started from what it kept of the run it retried: so does its replay.
    earlier = log.with_name(f"{header['retryOf']}.jsonl") if header.get("retryOf") else None
    if earlier is not None and earlier.is_file() and earlier != log:
        results = kept_results(engine.graph, read_run(earlier).results)
    for record in records:
        if record.get("execution") == execution and record["type"] in EVENT_TYPES:
            engine.handle(state, results, event_of(record))
    return RecordedRun(execution, playbook, Path(header["playbook"]), workload, state, results)
