"""`noetl run` (the local runner) leaves nothing behind: killed, hung up, or fanned out wide.

Each test runs the real command on a playbook whose steps start processes of their own, in the
background, in their session or out of it, and checks through /proc that none outlives the run.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.processes import descendants, still_running

# Generous deadlines: a loaded machine may take this long to start Python or end a process.
START_UP = 120
EXIT = 120

LEAVING = """
kind: Playbook
name: leaving
workflow:
  - step: start
    next: [{{step: shell_bg}}, {{step: python_bg}}]
  - step: shell_bg
    tool: shell
    args: {{command: 'sleep 300 & echo $! > {pids}/shell_bg; sleep 300'}}
  - step: python_bg
    tool: python
    code: |
      import os, subprocess, time
      own = subprocess.Popen(['sleep', '300'])
      escaped = subprocess.Popen(['setsid', 'sleep', '300'])
      open('{pids}/python_bg', 'w').write(f'{{own.pid}} {{escaped.pid}}')
      time.sleep(300)
"""


def start_leaving_run(tmp_path: Path) -> tuple[subprocess.Popen[str], set[int]]:
    """`noetl run` of LEAVING, once every step has started its processes; and those processes."""
    pids = tmp_path / "pids"
    pids.mkdir()
    playbook = tmp_path / "leaving.yaml"
    playbook.write_text(textwrap.dedent(LEAVING).format(pids=pids))
    runner = subprocess.Popen(
        [sys.executable, "-m", "noetl", "run", "--json", str(playbook)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + START_UP
    while len(list(pids.iterdir())) < 2 or not all(p.read_text() for p in pids.iterdir()):
        assert runner.poll() is None, runner.communicate()
        assert time.monotonic() < deadline, "the steps never started their processes"
        time.sleep(0.05)
    started = {int(pid) for path in pids.iterdir() for pid in path.read_text().split()}
    return runner, started | descendants(runner.pid)


def test_a_killed_runner_leaves_no_step_process_behind(tmp_path: Path) -> None:
    runner, processes = start_leaving_run(tmp_path)
    assert len(processes) >= 7  # server, 2 steps, sh's sleeps, python's two sleeps
    runner.kill()
    runner.communicate()
    assert still_running(processes, within=EXIT) == set()


@pytest.mark.parametrize("hang_up", [signal.SIGHUP, signal.SIGTERM])
def test_a_hung_up_runner_cancels_and_leaves_nothing(tmp_path: Path, hang_up: int) -> None:
    runner, processes = start_leaving_run(tmp_path)
    runner.send_signal(hang_up)
    stdout, stderr = runner.communicate(timeout=EXIT)
    assert runner.returncode == 130, stderr
    assert json.loads(stdout)["phase"] == "Cancelled"
    assert "Traceback" not in stderr and "Event loop is closed" not in stderr
    assert still_running(processes, within=EXIT) == set()


def test_a_wide_fan_out_stays_within_the_open_file_limit(tmp_path: Path) -> None:
    # 300 shell steps at once would want some 1,200 descriptors; the default cap keeps them
    # to a number the limit of 256 allows.
    playbook = tmp_path / "wide.yaml"
    playbook.write_text(
        textwrap.dedent(
            """
            kind: Playbook
            name: wide
            workflow:
              - step: start
                next: [{step: each}]
              - step: each
                tool: shell
                args: {command: 'echo {{ item }}'}
                loop: {in: '{{ range(300) | list }}', iterator: item, mode: parallel,
                       maxInFlight: 300}
                next: [{step: end}]
              - step: end
            """
        )
    )
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    result = subprocess.run(
        [sys.executable, "-m", "noetl", "run", "--json", str(playbook)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(json.loads(result.stdout)["result"]["results"]) == 300


def test_ctrl_c_while_starting_up_exits_130_without_a_traceback(tmp_path: Path) -> None:
    # The workload file is a pipe: reading it holds `noetl run` in its start-up until we write.
    workload = tmp_path / "workload.yaml"
    os.mkfifo(workload)
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("kind: Playbook\nname: p\nworkflow:\n  - step: start\n")
    runner = subprocess.Popen(
        [sys.executable, "-m", "noetl", "run", "--workload-file", str(workload), str(playbook)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + START_UP
    while True:  # a writer can open the pipe once the runner has opened it to read
        try:
            writer = os.open(workload, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "the runner never read its workload file"
            time.sleep(0.05)
    try:
        runner.send_signal(signal.SIGINT)
        _, stderr = runner.communicate(timeout=EXIT)
    finally:
        os.close(writer)
        if runner.poll() is None:
            runner.kill()  # it did not exit: no process left behind by a failed test
    assert runner.returncode == 130
    assert stderr == "cancelled\n"
