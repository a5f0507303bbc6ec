"""`finally` steps under `noetl run`: after Ctrl-C they run, bounded by `--finally-grace`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.local.test_cli import write

PLAYBOOK = """
kind: Playbook
name: interrupted
workflow:
  - step: start
    next: [{step: work}]
  - step: work
    tool: shell
    args: {command: 'sleep 60'}
finally:
  - step: report
    tool: shell
    args: {command: 'echo "{{ execution.phase }}: {{ execution.error }}"; %s'}
"""


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _interrupt_once_started(tmp_path: Path, extra: str, *args: str) -> tuple[int, dict[str, Any]]:
    playbook = write(tmp_path, PLAYBOOK % extra)
    log = tmp_path / "events.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "noetl", "run", "--json", "--event-log", str(log), *args, playbook],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not any(r["type"] == "StepStarted" and r["step"] == "work" for r in _log(log)):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert stdout, stderr
    return process.returncode, json.loads(stdout)


def test_ctrl_c_runs_the_finally_steps_and_keeps_the_cancel(tmp_path):
    code, summary = _interrupt_once_started(tmp_path, "true")
    assert (code, summary["phase"], summary["error"]) == (130, "Cancelled", "cancelled by the user")
    report = [r for r in _log(tmp_path / "events.jsonl") if r["type"] == "StepSucceeded"]
    assert [r["step"] for r in report] == ["report"]
    assert report[0]["result"]["stdout"].strip() == "Cancelled: cancelled by the user"


def test_finally_steps_are_stopped_when_the_grace_ends(tmp_path):
    code, summary = _interrupt_once_started(tmp_path, "sleep 60", "--finally-grace", "500ms")
    assert (code, summary["phase"], summary["error"]) == (130, "Cancelled", "cancelled by the user")
    log = _log(tmp_path / "events.jsonl")
    assert [r["step"] for r in log if r["type"] == "CancelStep"] == ["work", "report"]
    assert [r["timer"] for r in log if r["type"] == "TimerFired"] == ["finally-grace"]
