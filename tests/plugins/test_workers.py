"""The local worker pool with real worker processes: speed, isolation, crashes and cleanup."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from noetl.local.workers import WorkerPool
from noetl.plugins.runtime import Outcome
from tests.plugins import step
from tests.processes import alive


async def gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not alive(pid)


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    workers = WorkerPool(size=2)
    await workers.start()
    yield workers
    await workers.close()


PID = "import os\nresult = os.getpid()"


async def test_a_python_step_runs_in_a_warm_worker(pool: WorkerPool) -> None:
    outcome = await pool.run(step("python", {"x": 2}, code="def main(x): return x * 21"))
    assert outcome == Outcome(ok=True, result=42)
    first, second = [(await pool.run(step("python", code=PID))).result for _ in range(2)]
    assert first == second  # one process served both: no interpreter is started per step


async def test_any_plugin_runs_in_a_worker(pool: WorkerPool) -> None:
    assert (await pool.run(step("duckdb", {"command": "SELECT 1 AS one"}))).result["rows"] == [
        {"one": 1}
    ]
    unknown = await pool.run(step("teleport"))
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


async def test_steps_run_concurrently_up_to_the_pool_size(tmp_path: Path) -> None:
    # Each step checks in, then waits for all four to have checked in: only four at once pass.
    meet = (
        "import os, time, uuid\n"
        f"open(os.path.join({str(tmp_path)!r}, uuid.uuid4().hex), 'w').close()\n"
        "deadline = time.monotonic() + 30\n"
        f"while len(os.listdir({str(tmp_path)!r})) < 4:\n"
        "    assert time.monotonic() < deadline, 'the four steps never ran at once'\n"
        "    time.sleep(0.01)\n"
    )
    # CLOCK_MONOTONIC is one clock for every process, so the spans compare across workers.
    span = (
        "import time\nstart = time.monotonic()\ntime.sleep(0.1)\nresult = [start, time.monotonic()]"
    )
    workers = WorkerPool(size=4)
    try:
        met = await asyncio.gather(*(workers.run(step("python", code=meet)) for _ in range(4)))
        spans = await asyncio.gather(*(workers.run(step("python", code=span)) for _ in range(12)))
    finally:
        await workers.close()
    assert [o.error for o in met] == [None] * 4
    assert all(o.ok for o in spans)
    assert most_at_once([tuple(o.result) for o in spans]) <= 4


async def test_a_crashed_worker_fails_only_its_step(pool: WorkerPool) -> None:
    crash = await pool.run(step("python", code="import os\nos._exit(1)"))
    assert crash == Outcome(ok=False, error="worker process died (exit code 1)")
    killed = await pool.run(
        step("python", code="import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    )
    assert killed == Outcome(ok=False, error="worker process died (exit code -9)")
    assert (await pool.run(step("python", code="result = 'still here'"))).result == "still here"


async def test_a_worker_killed_while_idle_is_replaced_unnoticed(pool: WorkerPool) -> None:
    pids = {(await pool.run(step("python", code=PID))).result for _ in range(2)}
    for pid in pids:
        os.kill(pid, 9)
        assert await gone(pid)
    assert all([(await pool.run(step("python", code=PID))).ok for _ in range(4)])


async def test_a_step_over_its_timeout_has_its_worker_killed(
    pool: WorkerPool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nwhile True: pass"
    outcome = await pool.run(step("python", code=code), timeout=0.3)  # it would loop forever
    assert outcome == Outcome(ok=False, error="timed out after 0.3s")
    assert await gone(int(pid_file.read_text()))
    assert (await pool.run(step("python", code="result = 1"))).ok


async def test_cancelling_a_step_kills_its_worker_and_its_children(
    pool: WorkerPool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    code = (
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    task = asyncio.ensure_future(pool.run(step("python", code=code)))
    while not pid_file.exists() or not pid_file.read_text():
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for pid in map(int, pid_file.read_text().split()):
        assert await gone(pid)
    assert (await pool.run(step("python", code="result = 2"))).result == 2


async def test_workers_are_recycled_after_max_tasks() -> None:
    workers = WorkerPool(size=1, max_tasks=3)
    await workers.start()
    try:
        pids = [(await workers.run(step("python", code=PID))).result for _ in range(7)]
    finally:
        await workers.close()
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5] != pids[6]
    assert not any(alive(pid) for pid in pids)


async def test_a_steps_env_does_not_leak_into_the_next(pool: WorkerPool) -> None:
    read = (
        "import os\nresult = [os.environ.get('NOETL_TEST_SECRET'), os.environ.get('LEFT_BEHIND')]"
    )
    first = await pool.run(
        step(
            "python",
            code=read + "\nos.environ['LEFT_BEHIND'] = 'x'",
            env={"NOETL_TEST_SECRET": "s3"},
        )
    )
    assert first.result == ["s3", None]
    for _ in range(2):  # whichever worker it lands in
        assert (await pool.run(step("python", code=read, env={}))).result == [None, None]


async def test_the_working_directory_is_restored(pool: WorkerPool, tmp_path: Path) -> None:
    before = (await pool.run(step("python", code="import os\nresult = os.getcwd()"))).result
    await pool.run(step("python", code=f"import os\nos.chdir({str(tmp_path)!r})"))
    for _ in range(2):
        assert (
            await pool.run(step("python", code="import os\nresult = os.getcwd()"))
        ).result == before


async def test_close_leaves_no_process_behind(tmp_path: Path) -> None:
    workers = WorkerPool(size=2)
    await workers.start()
    spawn = "import os, subprocess\nresult = [os.getpid(), subprocess.Popen(['sleep', '60']).pid]"
    pids = [pid for _ in range(2) for pid in (await workers.run(step("python", code=spawn))).result]
    busy = asyncio.ensure_future(workers.run(step("python", code="import time\ntime.sleep(60)")))
    await asyncio.sleep(0.2)
    await workers.close()
    assert (await busy).error is not None
    for pid in pids:
        assert await gone(pid, within=2)
    with pytest.raises(RuntimeError, match="closed"):
        await workers.run(step("python", code="result = 1"))
