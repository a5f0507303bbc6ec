"""`noetl logs` on a local run: the end of each step run's output, from its event log, with the
step's Secret masked (the same tail a cluster keeps with its results)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from noetl.ui.sources.local import LocalRuns
from tests.local.test_cli import noetl, write

SECRET = "local-secret-value-7"
PLAYBOOK = """
kind: Playbook
name: talker
workflow:
  - step: start
    next: [{step: talk}, {step: py}]
  - step: talk
    tool: shell
    args:
      command: 'for i in $(seq 1 60); do echo "line $i"; done; echo "pw $DB_PW" >&2; exit 3'
      secretRef: db
    onError: continue
    next: [{step: end}]
  - step: py
    tool: python
    code: |
      import os
      print("python says", os.environ["DB_PW"])
      raise ValueError("no")
    args: {secretRef: db}
    retry: {maxAttempts: 2, initialDelay: 0s}
    onError: continue
    next: [{step: end}]
  - step: end
"""


def test_noetl_logs_shows_each_runs_tail_masked(tmp_path: Path) -> None:
    (tmp_path / "db.env").write_text(f"DB_PW={SECRET}\n")
    path = write(tmp_path, PLAYBOOK)
    run = noetl("run", str(path), "--json", "--secret", f"db={tmp_path / 'db.env'}", cwd=tmp_path)
    event_log = tmp_path / json.loads(run.stdout)["eventLog"]
    assert SECRET not in event_log.read_text()

    talk = noetl("logs", str(event_log), "--step", "talk", cwd=tmp_path)
    assert talk.returncode == 0, talk.stderr
    expected = "\n".join([*(f"line {i}" for i in range(12, 61)), "pw ***"])
    assert talk.stdout == f"==> talk#1 <==\n{expected}\n"

    py = noetl("logs", str(event_log), "--step", "py", cwd=tmp_path)
    runs = py.stdout.split("==> ")[1:]
    assert [r.split(" <==")[0] for r in runs] == ["py#1", "py#2"]  # every attempt's
    for attempt in runs:
        assert attempt.split("\n")[1] == "python says ***"
        assert attempt.rstrip().endswith("ValueError: no")  # the traceback, masked too

    everything = noetl("logs", str(event_log), cwd=tmp_path)
    assert everything.stdout.count("==> ") == 3
    assert SECRET not in everything.stdout + everything.stderr

    # The web view shows a python step's prints (a shell step's output is in its result).
    source = LocalRuns(event_log.parent)
    detail = asyncio.run(source.step("local", event_log.stem, "py"))
    assert detail is not None
    assert [log.title for log in detail.logs] == ["attempt 1: log", "attempt 2: log"]
    assert all(log.text.startswith("python says ***\n") for log in detail.logs)


def test_noetl_logs_of_a_missing_or_foreign_file_fails_saying_so(tmp_path: Path) -> None:
    missing = noetl("logs", str(tmp_path / "none.jsonl"), cwd=tmp_path)
    assert missing.returncode == 1
    assert "cannot read the event log: No such file or directory" in missing.stderr
    (tmp_path / "other.jsonl").write_text('{"some": "json"}\n')
    foreign = noetl("logs", str(tmp_path / "other.jsonl"), cwd=tmp_path)
    assert foreign.returncode == 1
    assert "not the event log of a noetl run" in foreign.stderr
