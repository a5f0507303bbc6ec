"""Suspending and resuming a local run from another terminal, by signal.

`noetl run` writes its process id in the header of its event log (`.noetl/runs/NAME.jsonl`) and
takes SIGUSR1 as "suspend" and SIGUSR2 as "resume". Values for the approval steps that wait
travel in a file beside the log (`NAME.approval.json`), written whole (a rename) before the
signal and taken (read, then removed) by the run, which records them in its event log as
`ApprovalGiven`: the log says who waited for what and which values came.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from noetl.local.eventlog import NotARunLog, read_records

SUSPEND_SIGNAL = signal.SIGUSR1
RESUME_SIGNAL = signal.SIGUSR2


class RunNotReachable(LookupError):
    """The event log names no live run (finished, or its process is gone)."""


def approval_file(log: Path) -> Path:
    return log.with_name(log.stem + ".approval.json")


def run_process(log: Path) -> int:
    """The id of the process running the execution whose event log this is."""
    try:
        header, records = read_records(log)
    except NotARunLog as error:
        raise RunNotReachable(str(error)) from None
    if records and records[-1].get("type") == "FinishExecution":
        raise RunNotReachable(f"{log}: the run has finished")
    pid = int(header["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise RunNotReachable(f"{log}: process {pid} is gone (the run was killed)") from None
    return pid


def suspend(log: Path) -> None:
    os.kill(run_process(log), SUSPEND_SIGNAL)


def resume(log: Path, values: dict[str, Any]) -> None:
    pid = run_process(log)
    target = approval_file(log)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(values))
    partial.replace(target)  # the run reads the whole file or none
    os.kill(pid, RESUME_SIGNAL)


def take_approval_values(log: Path) -> dict[str, Any]:
    """The values `resume` left for this run (then gone, so they are used once), else {}."""
    target = approval_file(log)
    try:
        values = json.loads(target.read_text())
    except FileNotFoundError:
        return {}
    target.unlink(missing_ok=True)
    return values if isinstance(values, dict) else {}
