"""`noetl suspend` and `noetl resume` on a local run in the background, through its event log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.local.test_cli import noetl, write

Record = dict[str, Any]
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def _log(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for(log: Path, found: Callable[[Record], bool]) -> None:
    deadline = time.monotonic() + 120
    while not any(found(record) for record in _log(log)):
        assert time.monotonic() < deadline, f"not in the log: {_log(log)}"
        time.sleep(0.05)


def _background_run(tmp_path: Path, playbook: Path) -> tuple[subprocess.Popen[str], Path]:
    log = tmp_path / "run.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "noetl", "run", "--json", "--event-log", str(log), playbook],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, log


def _summary(process: subprocess.Popen[str]) -> Record:
    stdout, stderr = process.communicate(timeout=120)
    assert stdout, stderr
    return dict(json.loads(stdout))


def test_a_suspended_run_lets_the_running_step_end_and_starts_the_next_on_resume(tmp_path):
    playbook = write(
        tmp_path,
        """
        kind: Playbook
        name: paused
        workflow:
          - step: start
            next: [{step: a}]
          - step: a
            tool: shell
            args: {command: 'while [ ! -f go ]; do sleep 0.05; done; echo a'}
            next: [{step: b}]
          - step: b
            tool: shell
            args: {command: 'echo b'}
        """,
    )
    process, log = _background_run(tmp_path, playbook)
    _wait_for(log, lambda r: r["type"] == "StepStarted" and r["step"] == "a")
    assert noetl("suspend", str(log), cwd=tmp_path).returncode == 0
    _wait_for(log, lambda r: r["type"] == "SuspendRequested")
    (tmp_path / "go").touch()
    _wait_for(log, lambda r: r["type"] == "StepSucceeded" and r["step"] == "a")
    assert noetl("resume", str(log), cwd=tmp_path).returncode == 0
    summary = _summary(process)
    assert (summary["phase"], summary["result"]["stdout"]) == ("Succeeded", "b")
    order = [
        r["type"] + ":" + r.get("step", "")
        for r in _log(log)
        if r["type"] in ("StepSucceeded", "ResumeRequested", "StartStep")
    ]
    assert order == [
        "StartStep:a",
        "StepSucceeded:a",
        "ResumeRequested:",
        "StartStep:b",
        "StepSucceeded:b",
    ]


def test_an_approval_step_waits_for_resume_and_takes_its_values(tmp_path):
    playbook = write(
        tmp_path,
        """
        kind: Playbook
        name: gated
        workflow:
          - step: start
            next: [{step: gate}]
          - step: gate
            tool: approval
            args: {message: "ship it?"}
            next: [{step: ship}]
          - step: ship
            tool: shell
            args: {command: 'echo "approved={{ gate.approved }} by {{ gate.by }}"'}
        output: "{{ ship.stdout | trim }}"
        """,
    )
    process, log = _background_run(tmp_path, playbook)
    _wait_for(log, lambda r: r["type"] == "AwaitApproval" and r["message"] == "ship it?")
    resumed = noetl("resume", str(log), "--set", "approved=true", "--set", "by=ada", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = _summary(process)
    assert (summary["phase"], summary["result"]) == ("Succeeded", "approved=True by ada")
    given = [r for r in _log(log) if r["type"] == "ApprovalGiven"]
    assert [(r["step"], r["values"]) for r in given] == [("gate", {"approved": True, "by": "ada"})]
    assert not (tmp_path / "run.approval.json").exists()  # used once


def test_the_approval_example_releases_once_approved(tmp_path):
    process, log = _background_run(tmp_path, PLAYBOOKS / "approval.yaml")
    _wait_for(log, lambda r: r["type"] == "AwaitApproval" and r["step"] == "gate")
    noetl("resume", str(log), "--set", "approved=true", "--set", "by=ada", cwd=tmp_path)
    summary = _summary(process)
    assert (summary["phase"], summary["result"]["stdout"]) == ("Succeeded", "released 1.4.2 (ada)")


def test_the_approval_example_refuses_without_approved(tmp_path):
    process, log = _background_run(tmp_path, PLAYBOOKS / "approval.yaml")
    _wait_for(log, lambda r: r["type"] == "AwaitApproval" and r["step"] == "gate")
    noetl("resume", str(log), cwd=tmp_path)
    summary = _summary(process)
    assert (summary["phase"], summary["result"]["stdout"]) == ("Succeeded", "not released: refused")


def test_suspend_names_what_is_wrong_with_a_log_of_no_live_run(tmp_path):
    code_and_summary = noetl(
        "run",
        "--json",
        "--event-log",
        str(tmp_path / "done.jsonl"),
        str(PLAYBOOKS / "hello.yaml"),
        cwd=tmp_path,
    )
    assert code_and_summary.returncode == 0
    finished = noetl("suspend", str(tmp_path / "done.jsonl"), cwd=tmp_path)
    assert (finished.returncode, finished.stderr.strip()) == (
        1,
        f"{tmp_path / 'done.jsonl'}: the run has finished",
    )
    missing = noetl("resume", str(tmp_path / "nothing.jsonl"), cwd=tmp_path)
    assert missing.returncode == 1
    assert "cannot read the event log" in missing.stderr
