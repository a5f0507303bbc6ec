"""The step executor of `noetl run`: shell steps spawned directly, others in a pool started late."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from noetl.engine import StartStep
from noetl.local.steps import StepExecutor
from tests.processes import ENDED, process_stat

EXECUTION = {"id": "exec-1", "name": "tests"}


def worker_children() -> list[int]:
    """This process's children that are worker processes and still run."""
    children = []
    for entry in Path("/proc").iterdir():
        stat = process_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is None or stat[0] in ENDED or stat[1] != os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it just ended
        if b"noetl.plugins.worker" in cmdline:
            children.append(int(entry.name))
    return children


def python_step(code: str) -> StartStep:
    return StartStep("s", None, 1, tool="python", args={}, code=code)


async def test_the_pool_starts_on_the_first_worker_step_only() -> None:
    executor = StepExecutor(pool_size=2)
    try:
        shell = await executor.run(
            StartStep("s", None, 1, tool="shell", args={"command": "echo hi"}), EXECUTION
        )
        assert shell.result["stdout"] == "hi"
        assert worker_children() == []
        assert (await executor.run(python_step("result = 7"), EXECUTION)).result == 7
        assert len(worker_children()) == 2
    finally:
        await executor.close()
    assert worker_children() == []


async def test_a_step_cancelled_while_the_pool_starts_leaves_no_worker_behind() -> None:
    executor = StepExecutor(pool_size=2)
    running = asyncio.ensure_future(executor.run(python_step("result = 1"), EXECUTION))
    for _ in range(3):  # far less than the ~0.1 s a worker takes to start
        await asyncio.sleep(0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await executor.close()
    assert worker_children() == []
