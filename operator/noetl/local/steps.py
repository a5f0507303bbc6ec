"""Running one step on this machine: shell commands spawned directly, other tools in warm workers.

A shell step costs one `sh -c` and nothing more; a container step one `podman run` (or docker);
python, http, postgres and duckdb steps go to the worker pool, which is started only when a
playbook first needs it. Every step runs in a process
of its own (its own session, for shell), so a step that crashes or hangs cannot take the runner
down, and a cancelled or timed-out step is killed with all its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING

from noetl.engine import StartStep
from noetl.plugins import shell
from noetl.plugins.runtime import Outcome, PluginError, StepRequest

if TYPE_CHECKING:
    from noetl.local.workers import WorkerPool


class StepExecutor:
    """Turns a StartStep command into an Outcome; shared by an execution and its children."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        pool_size: int | None = None,
    ) -> None:
        self._env = dict(os.environ if env is None else env)
        self._secrets = secrets or {}
        self._pool_size = pool_size
        self._pool: WorkerPool | None = None
        self._pool_lock = asyncio.Lock()

    def request(self, command: StartStep, execution: Mapping[str, str]) -> StepRequest:
        return StepRequest(
            step=command.step,
            tool=command.tool,
            args=command.args,
            code=command.code,
            attempt=command.attempt,
            index=command.index,
            execution=dict(execution),
            env=self._step_env(command.args.get("secretRef")),
        )

    def _step_env(self, secret_name: object) -> dict[str, str]:
        # Locally a `secretRef` names a --secret given to the CLI; its keys become env vars,
        # as envFrom makes them in a pod. Without one, the step sees the runner's environment.
        if isinstance(secret_name, str) and secret_name in self._secrets:
            return {**self._env, **self._secrets[secret_name]}
        return self._env

    async def run(self, command: StartStep, execution: Mapping[str, str]) -> Outcome:
        request = self.request(command, execution)
        if command.tool == "shell":
            return await run_shell(request, command.timeout)
        if command.tool == "container":
            from noetl.local.containers import run_container  # only container steps pay for it

            secret = self._secrets.get(str(command.args.get("secretRef")), {})
            return await run_container(request, command.timeout, secret)
        pool = await self._worker_pool()
        return await pool.run(request, command.timeout)

    async def _worker_pool(self) -> WorkerPool:
        async with self._pool_lock:
            if self._pool is None:
                from noetl.local.workers import (
                    WorkerPool,  # only playbooks with such steps pay for it
                )

                pool = WorkerPool(size=self._pool_size) if self._pool_size else WorkerPool()
                try:
                    await pool.start()
                except BaseException:  # e.g. Ctrl-C while the workers start: none may outlive us
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def run_shell(request: StepRequest, timeout: float | None) -> Outcome:
    """Run a shell step's command as a child process of its own session."""
    try:
        process = await asyncio.create_subprocess_exec(
            *shell.command_argv(request.args),
            env=shell.command_env(request),
            cwd=request.args.get("cwd"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except PluginError as error:
        return Outcome(ok=False, error=str(error))
    except OSError as error:  # e.g. args.cwd does not exist
        return Outcome(
            ok=False, error=f"cannot start the command: {error.strerror}: {error.filename}"
        )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        await _kill_session(process)
        return Outcome(ok=False, error=f"timed out after {timeout:g}s")
    except asyncio.CancelledError:
        await _kill_session(process)
        raise
    assert process.returncode is not None
    return shell.shell_outcome(process.returncode, stdout, stderr)


async def _kill_session(process: asyncio.subprocess.Process) -> None:
    # The command may have started children of its own: end the whole session.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
