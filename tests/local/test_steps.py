"""The step executor of `noetl run` (local runner): servers started late, secrets, start reports."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from noetl.engine import StartStep
from noetl.local.steps import StepExecutor
from tests.processes import ENDED, process_stat

EXECUTION = {"id": "exec-1", "name": "tests"}
SECRETS = {"api": {"DB_PW": "pw-hunter22", "X": "xylophone-77", "API_TOKEN": "tok-0123456789"}}


def server_children() -> list[int]:
    """This process's children that are step servers and still run."""
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


def python_step(code: str, **args: object) -> StartStep:
    return StartStep("s", None, 1, tool="python", args=dict(args), code=code)


def shell_step(command: str, **args: object) -> StartStep:
    return StartStep("s", None, 1, tool="shell", args={"command": command, **args})


async def test_the_server_starts_on_the_first_step_only() -> None:
    executor = StepExecutor(max_parallel=2)
    try:
        assert server_children() == []
        assert (await executor.run(shell_step("echo hi"), EXECUTION)).result["stdout"] == "hi"
        assert len(server_children()) == 1
        assert (await executor.run(python_step("result = 7"), EXECUTION)).result == 7
        assert len(server_children()) == 1  # python and shell steps share one
    finally:
        await executor.close()
    assert server_children() == []


async def test_a_step_cancelled_while_the_server_starts_leaves_no_process_behind() -> None:
    executor = StepExecutor(max_parallel=2)
    running = asyncio.ensure_future(executor.run(python_step("result = 1"), EXECUTION))
    for _ in range(3):  # far less than the time a server takes to start
        await asyncio.sleep(0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await executor.close()
    assert server_children() == []


async def test_a_step_is_reported_started_only_once_it_has_its_turn() -> None:
    executor = StepExecutor(max_parallel=1)
    started: list[str] = []
    try:
        first = asyncio.ensure_future(
            executor.run(shell_step("sleep 0.3"), EXECUTION, lambda: started.append("first"))
        )
        while not started:
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(
            executor.run(shell_step("true"), EXECUTION, lambda: started.append("second"))
        )
        await asyncio.sleep(0.1)
        assert started == ["first"]  # the second waits for the only slot: not started
        await asyncio.gather(first, second)
        assert started == ["first", "second"]
    finally:
        await executor.close()


async def test_a_secret_ref_without_its_secret_fails_naming_the_step_and_the_flag() -> None:
    executor = StepExecutor(secrets=SECRETS)
    outcome = await executor.run(shell_step("true", secretRef="db"), EXECUTION)
    assert outcome.error == (
        "step 's' needs the Secret 'db' (args.secretRef): give it with `noetl run --secret db=FILE`"
    )


async def test_secret_values_are_env_vars_and_masked_in_shell_outcomes() -> None:
    executor = StepExecutor(secrets=SECRETS)
    show = 'echo "$DB_PW $X $API_TOKEN"; echo "$DB_PW $X $API_TOKEN" >&2'
    try:
        ok = await executor.run(shell_step(show, secretRef="api"), EXECUTION)
        failed = await executor.run(shell_step(show + "; exit 3", secretRef="api"), EXECUTION)
    finally:
        await executor.close()
    assert ok.result == {"stdout": "*** *** ***", "stderr": "*** *** ***", "exitCode": 0}
    assert failed.error == "command exited with code 3: *** *** ***"
    assert failed.result["stdout"] == failed.result["stderr"] == "*** *** ***"


async def test_a_python_step_with_a_secret_ref_sees_its_values_as_env_vars() -> None:
    executor = StepExecutor(secrets=SECRETS)
    code = (
        "import os\n"
        "def main(n):\n"
        "    assert os.environ['X'] == 'xylophone-77'\n"
        "    raise ValueError(f\"{n}: {os.environ['API_TOKEN']} {os.environ['DB_PW']}\")\n"
    )
    try:
        outcome = await executor.run(python_step(code, n=1, secretRef="api"), EXECUTION)
    finally:
        await executor.close()
    assert outcome.error == "ValueError: 1: *** *** (line 4)"
