"""`noetl run`, `validate` and `plan` as users meet them.

Exit codes, messages, isolation of steps, Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def noetl(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noetl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def write(tmp_path: Path, text: str, name: str = "pb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def events(tmp_path: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / summary["eventLog"]).read_text().splitlines()]


def max_overlap(log: list[dict[str, Any]], step: str) -> int:
    running, most = 0, 0
    for record in log:
        if record.get("step") != step:
            continue
        if record["type"] == "StepStarted":
            running += 1
            most = max(most, running)
        elif record["type"] in ("StepSucceeded", "StepFailed"):
            running -= 1
    return most


def test_parallel_branches_overlap_and_the_join_waits(tmp_path):
    result = noetl(
        "run", "--json", str(PLAYBOOKS / "fan-out-join.yaml"), "--set", "pause=0.5", cwd=tmp_path
    )
    summary = json.loads(result.stdout)
    log = events(tmp_path, summary)
    kinds = [
        (r["type"], r.get("step")) for r in log if r["type"] in ("StepStarted", "StepSucceeded")
    ]
    first_done = next(i for i, (kind, _) in enumerate(kinds) if kind == "StepSucceeded")
    assert {step for kind, step in kinds[:first_done]} == {"one", "two", "three"}
    combine_start = kinds.index(("StepStarted", "combine"))
    assert {step for kind, step in kinds[:combine_start] if kind == "StepSucceeded"} == {
        "one",
        "two",
        "three",
    }


def test_a_parallel_loop_runs_max_in_flight_items_at_once(tmp_path):
    result = noetl("run", "--json", str(PLAYBOOKS / "parallel-loop.yaml"), cwd=tmp_path)
    assert max_overlap(events(tmp_path, json.loads(result.stdout)), "square") == 3


def test_a_failing_step_exits_non_zero_naming_the_step_and_error(tmp_path):
    path = write(
        tmp_path,
        """
        kind: Playbook
        name: f
        workflow:
          - step: start
            next: [{step: broken}]
          - step: broken
            tool: shell
            args: {command: 'echo nope >&2; exit 7'}
        """,
    )
    result = noetl("run", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "step 'broken' failed: command exited with code 7: nope" in result.stderr


def test_an_invalid_playbook_is_refused_with_paths_before_anything_runs(tmp_path):
    path = write(
        tmp_path,
        """
        kind: Playbook
        name: f
        workflow:
          - step: start
            next: [{step: ghost}]
          - step: x
            tool: bash
        """,
    )
    result = noetl("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "workflow[0].next[0].step: no step named 'ghost'" in result.stderr
    assert "workflow[1].tool: unknown tool 'bash'" in result.stderr
    assert not (tmp_path / ".noetl").exists()


def test_a_step_timeout_kills_the_command(tmp_path):
    marker = f"noetl-timeout-{uuid.uuid4().hex[:8]}"
    path = write(
        tmp_path,
        f"""
        kind: Playbook
        name: t
        workflow:
          - step: start
            next: [{{step: slow}}]
          - step: slow
            tool: shell
            timeout: 500ms
            args: {{command: 'sleep 30 # {marker}'}}
        """,
    )
    result = noetl("run", str(path), cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "timed out after 0.5s" in result.stderr
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1


def test_a_crashing_python_step_fails_alone(tmp_path):
    path = write(
        tmp_path,
        """
        kind: Playbook
        name: c
        workflow:
          - step: start
            next: [{step: crash}, {step: fine}]
          - step: crash
            tool: python
            code: 'import os; os._exit(3)'
          - step: fine
            tool: python
            code: 'result = 42'
        """,
    )
    result = noetl("run", "--json", str(path), cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert summary["phase"] == "Failed"
    assert "step 'crash' failed" in summary["error"]
    assert [
        r for r in events(tmp_path, summary) if r["type"] == "StepSucceeded" and r["step"] == "fine"
    ]


def test_ctrl_c_cancels_cleanly_and_kills_the_steps(tmp_path):
    marker = f"noetl-cancel-{uuid.uuid4().hex[:8]}"
    started = tmp_path / "python-step-started"  # the python step is in its worker
    path = write(
        tmp_path,
        f"""
        kind: Playbook
        name: c
        workflow:
          - step: start
            next: [{{step: a}}, {{step: b}}]
          - step: a
            tool: shell
            args: {{command: 'sleep 60 # {marker}'}}
          - step: b
            tool: python
            code: 'import pathlib, time; pathlib.Path("{started}").touch(); time.sleep(60)'
        """,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "noetl", "run", "--json", str(path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120  # generous: a loaded machine starts Python slowly
    while (
        subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode != 0
        or not started.exists()
    ):
        assert time.monotonic() < deadline, "the steps never started"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    summary = json.loads(stdout)
    assert summary["phase"] == "Cancelled"
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1
    workers = subprocess.run(
        ["pgrep", "-f", "noetl.plugins.worker", "-P", str(process.pid)], capture_output=True
    )
    assert workers.returncode == 1


def test_workload_file_and_set_merge(tmp_path):
    workload = write(tmp_path, "name: FromFile\n", "workload.yaml")
    result = noetl(
        "run",
        "--json",
        str(PLAYBOOKS / "hello.yaml"),
        "--workload-file",
        str(workload),
        cwd=tmp_path,
    )
    assert json.loads(result.stdout)["result"] == "Hello, FromFile!"
    result = noetl(
        "run",
        "--json",
        str(PLAYBOOKS / "hello.yaml"),
        "--workload-file",
        str(workload),
        "--set",
        "name=Set",
        cwd=tmp_path,
    )
    assert json.loads(result.stdout)["result"] == "Hello, Set!"


def test_the_event_log_holds_every_event_and_command(tmp_path):
    result = noetl("run", "--json", str(PLAYBOOKS / "retry.yaml"), cwd=tmp_path)
    kinds = [r["type"] for r in events(tmp_path, json.loads(result.stdout))]
    assert kinds[:2] == ["Run", "ExecutionStarted"]  # the header, then the engine's events
    assert kinds.count("StartStep") == 3
    assert kinds.count("ScheduleRetry") == 2
    assert kinds.count("TimerFired") == 2
    assert kinds[-1] == "FinishExecution"


def test_plain_progress_lines_when_not_a_terminal(tmp_path):
    result = noetl("run", str(PLAYBOOKS / "hello.yaml"), cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout) == "Hello, World!"
    assert "start   greet#1 (shell)" in result.stderr
    assert "ok      greet#1" in result.stderr


def test_validate_reports_every_file(tmp_path):
    bad = write(tmp_path, "kind: Playbook\nname: b\nworkflow:\n  - step: begin\n")
    result = noetl("validate", str(PLAYBOOKS / "hello.yaml"), str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "hello.yaml: valid (3 steps)" in result.stdout
    assert "workflow: no step named 'start'" in result.stderr


def test_plan_shows_the_graph_as_text_and_dot(tmp_path):
    text = noetl("plan", str(PLAYBOOKS / "fan-out-join.yaml"), cwd=tmp_path).stdout
    assert "combine: python  [join of one, three, two]" in text
    dot = noetl("plan", "--dot", str(PLAYBOOKS / "conditional.yaml"), cwd=tmp_path).stdout
    assert dot.startswith('digraph "conditional" {')
    assert '"check" -> "hot" [label="when {{ check.hot }}"];' in dot
    assert '"check" -> "cold" [label="else"];' in dot
    text = noetl("plan", str(PLAYBOOKS / "finally.yaml"), cwd=tmp_path).stdout
    assert "  total: shell\n  finally (after the workflow, whatever its outcome):\n  report" in text


def test_set_values_are_yaml(tmp_path):
    path = write(
        tmp_path,
        """
        kind: Playbook
        name: s
        workflow:
          - step: start
            next: [{step: p}]
          - step: p
            tool: python
            code: 'def main(v): return v'
            args: {v: '{{ workload.v }}'}
        """,
    )
    result = noetl("run", "--json", str(path), "--set", "v=[1, two, {x: 3}]", cwd=tmp_path)
    assert json.loads(result.stdout)["result"] == [1, "two", {"x": 3}]


def test_list_local_shows_each_run_from_its_event_log(tmp_path):
    ok = write(tmp_path, HELLO_LIKE.format(name="fine", command="echo hi"), "fine.yaml")
    bad = write(tmp_path, HELLO_LIKE.format(name="broken", command="exit 3"), "broken.yaml")
    assert noetl("run", "-q", str(ok), cwd=tmp_path).returncode == 0
    assert noetl("run", "-q", str(bad), cwd=tmp_path).returncode == 1
    (tmp_path / ".noetl" / "runs" / "notes.jsonl").write_text("not an event log\n")
    listed = noetl("list", "--local", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "PLAYBOOK", "PHASE", "STARTED", "DURATION"]
    runs = {row.split()[1]: row.split() for row in rows}
    assert set(runs) == {"fine", "broken"}
    assert runs["fine"][0].startswith("fine-") and runs["fine"][2] == "Succeeded"
    assert runs["broken"][2] == "Failed"
    assert runs["fine"][4].endswith("s")


HELLO_LIKE = """\
kind: Playbook
metadata: {{name: {name}}}
spec:
  workflow:
    - step: start
      next: [{{step: work}}]
    - step: work
      tool: shell
      args: {{command: "{command}"}}
"""


def test_cluster_commands_load_neither_kopf_nor_the_metrics_server(tmp_path):
    probe = (
        "import sys; from noetl.cli import app\n"
        "for command in ('list', 'get', 'logs', 'status', 'submit', 'cancel'):\n"
        "    try:\n"
        "        app([command, '--help'], standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "import noetl.kube.client\n"
        "print(sorted(m for m in ('kopf', 'prometheus_client') if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert completed.stdout.strip().splitlines()[-1] == "[]", completed.stderr


def test_kubectl_noetl_is_an_entry_point():
    import tomllib

    project = tomllib.loads((PLAYBOOKS.parent / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["kubectl-noetl"] == "noetl.cli:kubectl_main"
    from noetl.cli import kubectl_main

    assert callable(kubectl_main)
