"""The local source over event logs: replay, logs without a playbook, lines still being written,
runs whose process is gone, and what cancel refuses. Real `noetl run` logs where a run is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from noetl.ui.sources import ActionRefused
from noetl.ui.sources.local import LocalRuns, writes

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def run(tmp_path: Path, playbook: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "noetl", "run", "--json", str(PLAYBOOKS / playbook)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=False,
    )
    return str(json.loads(done.stdout)["execution"])


async def test_a_finished_run_replays_to_the_engine_state(tmp_path: Path) -> None:
    name = run(tmp_path, "conditional.yaml")
    source = LocalRuns(tmp_path / ".noetl" / "runs", PLAYBOOKS)
    (summary,) = await source.executions()
    assert (summary.name, summary.playbook, summary.phase) == (name, "conditional", "Succeeded")
    view = await source.execution("local", name)
    assert view is not None and view.actions == ()  # nothing to retry in a run that succeeded
    # Branches not taken are told apart from steps that ran, and every step of the graph has one.
    states = {step.name: step.state for step in view.steps.values()}
    assert set(states) == set(view.graph.nodes)
    assert "Succeeded" in states.values()
    assert set(states.values()) - {"Succeeded"} <= {"Skipped", "Not run"}
    with pytest.raises(ActionRefused, match="not running"):
        await source.cancel("local", name)


async def test_a_log_without_its_playbook_shows_the_steps_that_ran(tmp_path: Path) -> None:
    log = tmp_path / "old.jsonl"
    lines = [
        {"type": "ExecutionStarted", "at": 1.0, "execution": "old-1"},
        {
            "type": "StartStep",
            "step": "a",
            "index": None,
            "attempt": 1,
            "tool": "shell",
            "args": {"command": "true"},
            "execution": "old-1",
        },
        {
            "type": "StepStarted",
            "step": "a",
            "index": None,
            "attempt": 1,
            "at": 1.5,
            "execution": "old-1",
        },
        {
            "type": "StepFailed",
            "step": "a",
            "index": None,
            "attempt": 1,
            "at": 2.0,
            "error": "boom",
            "result": {"stdout": "", "stderr": "bad"},
            "execution": "old-1",
        },
        {
            "type": "FinishExecution",
            "phase": "Failed",
            "error": "step 'a' failed",
            "time": 2.1,
            "execution": "old-1",
        },
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    source = LocalRuns(tmp_path)
    view = await source.execution("local", "old")
    assert view is not None and view.phase == "Failed"
    assert view.note and "does not hold its playbook" in view.note
    assert view.steps["a"].state == "Failed"
    detail = await source.step("local", "old", "a")
    assert detail is not None and detail.attempts[0].error == "boom"
    assert [log.text for log in detail.logs] == ["bad"]


async def test_a_line_being_written_waits_and_a_vanished_writer_is_interrupted(
    tmp_path: Path,
) -> None:
    log = tmp_path / "cut.jsonl"
    header = {"type": "Run", "pid": 1, "execution": "cut-1", "name": "cut"}
    started = {"type": "ExecutionStarted", "at": 1.0, "execution": "cut-1"}
    log.write_text(json.dumps(header) + "\n" + json.dumps(started) + "\n" + '{"type": "StartSt')
    source = LocalRuns(tmp_path)
    view = await source.execution("local", "cut")
    assert view is not None
    # pid 1 is not this log's writer: the run cannot go on, and nothing offers to cancel it; a
    # log without its playbook cannot be retried either.
    assert view.phase == "Interrupted" and view.actions == ()
    with log.open("a") as file:
        file.write('ep", "step": "a", "index": null, "attempt": 1, "execution": "cut-1"}\n')
    view = await source.execution("local", "cut")
    assert view is not None and "a" in view.steps


async def test_a_log_not_written_yet_is_pending_and_offers_no_cancel(tmp_path: Path) -> None:
    (tmp_path / "new.jsonl").write_text("")  # `noetl run` opened it, and wrote nothing yet
    source = LocalRuns(tmp_path)
    view = await source.execution("local", "new")
    assert view is not None
    assert (view.phase, view.actions) == ("Pending", ())
    old = time.time() - 3600
    os.utime(tmp_path / "new.jsonl", (old, old))  # nothing came for an hour: abandoned
    view = await source.execution("local", "new")
    assert view is not None and view.phase == "Interrupted"


def test_writes_checks_that_the_process_has_the_log_open(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text("")
    assert not writes(os.getpid(), path)
    with path.open("a"):
        assert writes(os.getpid(), path)
    assert not writes(None, path)


async def test_names_outside_the_runs_directory_are_not_found(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "secret.jsonl").write_text("{}\n")
    source = LocalRuns(tmp_path / "runs")
    assert await source.execution("local", "../secret") is None
