"""The event log of a local run: one JSON object per line, for every event and command.

The first line (type `Run`) says which process runs it, with which playbook and workload:
`noetl suspend` and `noetl resume` find the process there. The other lines carry a `type` (the
event or command class name), the wall-clock `time` and the fields of the message. Step results
are logged as the engine sees them; secrets never are, since they reach steps only as
environment variables.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import IO, Any

_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9_.-]+")


def run_log_path(directory: Path, execution_id: str) -> Path:
    """Where a run's log goes by default: in `directory`, whatever the playbook is called."""
    name = _UNSAFE_IN_FILE_NAMES.sub("-", execution_id).lstrip(".-") or "run"
    return directory / f"{name}.jsonl"


class NotARunLog(ValueError):
    """The file cannot be read, or is not the event log of a `noetl run`."""


def read_records(log: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run's header and the records after it (raises NotARunLog)."""
    try:
        lines = log.read_text().splitlines()
    except OSError as error:
        raise NotARunLog(f"{log}: cannot read the event log: {error.strerror}") from None
    records = [json.loads(line) for line in lines]
    if not records or records[0].get("type") != "Run":
        raise NotARunLog(f"{log}: no run header (is it a noetl run event log?)")
    return records[0], records[1:]


class EventLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Line-buffered: a run that is killed still leaves every line it reached.
        self._file: IO[str] = path.open("a", encoding="utf-8", buffering=1)

    def write(self, message: Any, **extra: Any) -> None:
        record = {"time": round(time.time(), 6), "type": type(message).__name__}
        record.update(vars(message))  # a shallow view: asdict would deep-copy every result
        record.update(extra)
        self._file.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")

    def write_run(self, **fields: Any) -> None:
        """The header: what `noetl suspend`/`resume` need to find and reach the run."""
        record = {"time": round(time.time(), 6), "type": "Run", **fields}
        self._file.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._file.close()
