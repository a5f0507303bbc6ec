"""The local runner's step processes, for real: a fresh fork per step, crashes, kills, cleanup.

Covers the local runner's step server (noetl.local.workers and noetl.plugins.worker); the
plugin runtime inside each step is the one the images run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from noetl.local.workers import StepProcesses
from noetl.plugins.runtime import Outcome
from tests.plugins import step
from tests.processes import alive


async def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not alive(pid)


@pytest.fixture
async def processes() -> AsyncIterator[StepProcesses]:
    steps = StepProcesses(max_parallel=4)
    await steps.start()
    yield steps
    await steps.close()


PIDS = "import os\nresult = [os.getpid(), os.getppid()]"


async def test_every_step_runs_in_a_fresh_process_of_one_server(processes: StepProcesses) -> None:
    outcome = await processes.run(step("python", {"x": 2}, code="def main(x): return x * 21"))
    assert outcome == Outcome(ok=True, result=42)
    first, second = [(await processes.run(step("python", code=PIDS))).result for _ in range(2)]
    assert first[0] != second[0]  # a process per step...
    assert first[1] == second[1]  # ...forked by the same warm server


UMASK = os.umask(0o022)
os.umask(UMASK)

# What one step changes in its process, and what the next step reads back.
LEFT_BEHIND = [
    ("import math\nmath.pi = 3", "import math\nresult = math.pi", 3.141592653589793),
    (
        "import decimal\ndecimal.getcontext().prec = 3",
        "import decimal\nresult = decimal.getcontext().prec",
        28,
    ),
    ("import os\nos.umask(0o077)", "import os\nresult = os.umask(0o022)", UMASK),
    (
        "import json\njson.dumps = lambda *a, **k: 'patched'",
        "import json\nresult = json.dumps(1)",
        "1",
    ),
    (
        "import os\nos.environ['LEFT_BEHIND'] = 'x'",
        "import os\nresult = 'LEFT_BEHIND' in os.environ",
        False,
    ),
    ("import os\nos.chdir('/')", f"import os\nresult = os.getcwd() == {os.getcwd()!r}", True),
    (
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()",
        "import threading\nresult = threading.active_count()",
        1,
    ),
]


@pytest.mark.parametrize(("change", "read", "pristine"), LEFT_BEHIND)
async def test_a_step_sees_nothing_another_step_left(
    processes: StepProcesses, change: str, read: str, pristine: object
) -> None:
    assert (await processes.run(step("python", code=change))).ok
    assert (await processes.run(step("python", code=read))).result == pristine


async def test_a_thread_left_running_neither_holds_nor_fails_the_next_step(
    processes: StepProcesses,
) -> None:
    # A leftover thread that kills its process later, once another step would be running there.
    leave = "import os, threading\nthreading.Timer(0.3, os._exit, (1,)).start()\nresult = 'done'"
    assert (await processes.run(step("python", code=leave))).result == "done"
    wait = "import time\ntime.sleep(0.6)\nresult = 'mine'"
    assert (await processes.run(step("python", code=wait))).result == "mine"


async def test_any_plugin_runs_in_a_step_process(processes: StepProcesses) -> None:
    duck = await processes.run(step("duckdb", {"command": "SELECT 1 AS one"}))
    assert duck.result["rows"] == [{"one": 1}]
    shell = await processes.run(step("shell", {"command": "echo hi"}))
    assert shell.result == {"stdout": "hi", "stderr": "", "exitCode": 0}
    unknown = await processes.run(step("teleport"))
    assert (
        unknown.error
        == "unknown tool 'teleport'; the plugins are shell, python, http, postgres, duckdb"
    )


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of the time spans that overlap at one instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in edges:  # at a tie an end (-1) sorts first: touching spans do not overlap
        running += change
        peak = max(peak, running)
    return peak


def meeting(directory: Path, count: int) -> str:
    """Code for a step that checks in, then waits until `count` steps have checked in."""
    return (
        "import os, time, uuid\n"
        f"open(os.path.join({str(directory)!r}, uuid.uuid4().hex), 'w').close()\n"
        "deadline = time.monotonic() + 30\n"
        f"while len(os.listdir({str(directory)!r})) < {count}:\n"
        f"    assert time.monotonic() < deadline, 'the {count} steps never ran at once'\n"
        "    time.sleep(0.01)\n"
    )


async def test_as_many_steps_run_at_once_as_asked_beyond_the_cpu_count(tmp_path: Path) -> None:
    wanted = 3 * (os.cpu_count() or 1) + 2  # a pool sized by CPUs would never let them meet
    steps = StepProcesses(max_parallel=wanted)
    try:
        met = await asyncio.gather(
            *(steps.run(step("python", code=meeting(tmp_path, wanted))) for _ in range(wanted))
        )
    finally:
        await steps.close()
    assert [o.error for o in met] == [None] * wanted


async def test_max_parallel_caps_the_steps_at_once_and_starts_are_reported_in_turn(
    tmp_path: Path,
) -> None:
    # CLOCK_MONOTONIC is one clock for every process, so the spans compare across steps.
    span = (
        "import time\nstart = time.monotonic()\ntime.sleep(0.1)\nresult = [start, time.monotonic()]"
    )
    steps = StepProcesses(max_parallel=4)
    started: list[float] = []
    try:
        met = await asyncio.gather(
            *(steps.run(step("python", code=meeting(tmp_path, 4))) for _ in range(4))
        )
        spans = await asyncio.gather(
            *(
                steps.run(
                    step("python", code=span), on_started=lambda: started.append(time.monotonic())
                )
                for _ in range(12)
            )
        )
    finally:
        await steps.close()
    assert [o.error for o in met] == [None] * 4
    assert most_at_once([tuple(o.result) for o in spans]) <= 4
    # A step is reported started when it gets its turn, not when it is queued.
    assert sorted(started)[4] >= min(end for _, end in (o.result for o in spans))


async def test_a_crashed_step_fails_only_itself(processes: StepProcesses) -> None:
    crash = await processes.run(step("python", code="import os\nos._exit(1)"))
    assert crash == Outcome(ok=False, error="the step's process died (exit code 1)")
    killed = await processes.run(
        step("python", code="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    )
    assert killed == Outcome(ok=False, error="the step's process died (exit code -9)")
    assert (
        await processes.run(step("python", code="result = 'still here'"))
    ).result == "still here"


async def test_a_dead_server_fails_its_steps_and_is_replaced(processes: StepProcesses) -> None:
    server = (await processes.run(step("python", code=PIDS))).result[1]
    busy = asyncio.ensure_future(processes.run(step("python", code="import time\ntime.sleep(60)")))
    await asyncio.sleep(0.2)
    os.kill(server, 9)
    assert (await busy).error == "the step server process died (exit code -9)"
    assert await gone(server)
    again = (await processes.run(step("python", code=PIDS))).result
    assert again[1] != server


async def test_a_step_over_its_timeout_is_killed(processes: StepProcesses, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True: pass"
    outcome = await processes.run(step("python", code=code), timeout=0.3)  # it would loop forever
    assert outcome == Outcome(ok=False, error="timed out after 0.3s")
    assert await gone(int(pid_file.read_text()))
    assert (await processes.run(step("python", code="result = 1"))).ok


async def test_what_a_finished_step_left_running_is_killed(processes: StepProcesses) -> None:
    spawn = "import subprocess\nresult = subprocess.Popen(['sleep', '60']).pid"
    child = (await processes.run(step("python", code=spawn))).result
    assert await gone(child)


async def test_cancelling_a_step_kills_it_and_its_children(
    processes: StepProcesses, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    code = (
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    task = asyncio.ensure_future(processes.run(step("python", code=code)))
    while not pid_file.exists() or not pid_file.read_text():
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for pid in map(int, pid_file.read_text().split()):
        assert await gone(pid)
    assert (await processes.run(step("python", code="result = 2"))).result == 2


async def test_close_leaves_no_process_behind() -> None:
    steps = StepProcesses(max_parallel=2)
    # A process that leaves its step's session (as a daemon would) is killed all the same.
    escape = (
        "import os, subprocess\n"
        "result = [os.getppid(), subprocess.Popen(['setsid', 'sleep', '60']).pid]"
    )
    pids = [pid for _ in range(2) for pid in (await steps.run(step("python", code=escape))).result]
    busy = asyncio.ensure_future(steps.run(step("python", code="import time\ntime.sleep(60)")))
    await asyncio.sleep(0.2)
    await steps.close()
    assert (await busy).error is not None
    for pid in pids:
        assert await gone(pid, within=2)
    with pytest.raises(RuntimeError, match="closed"):
        await steps.run(step("python", code="result = 1"))
