"""The local runner's step processes: one warm server that forks a fresh process for each step.

Starting a Python interpreter costs a tenth of a second or more, and reusing one for several
steps lets a step see what another left behind. So the runner starts a step server
(`python -m noetl.plugins.worker`; its docstring describes the pipe and the process tree), which
imports the plugins once and forks a new child for every step. A fork costs more the more the
server has loaded, so http, postgres and duckdb steps each have a server of their own (started
at the first such step) and python and shell steps one without those libraries. A step that
times out or whose caller is cancelled is killed with everything in its session; a step whose
process dies fails only itself. A server that dies fails the steps it was running and is started
afresh for the next one.

How many steps run at once is the playbook's business (maxInFlight, parallel branches); the
`max_parallel` cap only keeps a huge fan-out within the machine's means. By default it is the
soft limit of open files divided by FILES_PER_STEP, so `ulimit -n 1024` allows 128 at once.
A step waiting for its turn has not started: `on_started` is called once it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import resource
import sys
from collections.abc import Callable
from typing import IO, Any

from noetl.plugins.messages import Outcome, StepRequest
from noetl.plugins.worker import FrameBuffer, frame

FILES_PER_STEP = 8
_OWN_SERVER = ("http", "postgres", "duckdb")  # tools whose libraries make every fork slower


def default_max_parallel() -> int:
    """The cap on steps at once for this process's open-file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 16
    return max(1, soft // FILES_PER_STEP)


class ServerDied(Exception):
    """The step server ended while it was starting or running steps."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__(f"the step server process died (exit code {exit_code})")


class _Server:
    """One step server process, the pipe to it, and the steps waiting for their end."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def spawn(cls, argv: list[str], stderr: int | IO[Any] | None) -> _Server:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,  # the terminal's Ctrl-C is the runner's to handle
        )
        server = cls(process)
        try:
            await asyncio.shield(server._ready)
        except BaseException:
            await server.stop()
            raise
        return server

    @property
    def alive(self) -> bool:
        return not self._reader.done()

    def start(self, request: StepRequest) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        """Hand a step over; the future gets its end: `{"exit": code, "outcome": ... | None}`."""
        ident = next(self._ids)
        ended: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if not self.alive:
            ended.set_exception(ServerDied(self.process.returncode))
            return ident, ended
        self._waiting[ident] = ended
        message = {
            "run": ident,
            "request": request.to_json(),
            "env": dict(request.env),
            "secrets": dict(request.secrets),
        }
        self._write(frame(message))
        return ident, ended

    def kill(self, ident: int) -> None:
        """Kill a step and what it started; its end is reported as for any other."""
        self._write(frame({"kill": ident}))

    def _write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        if self.alive and not self.process.stdin.is_closing():
            # The server reads its pipe at once: no need to wait for the buffer to drain.
            self.process.stdin.write(data)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        buffer = FrameBuffer()
        try:
            while chunk := await self.process.stdout.read(1 << 16):
                for message in buffer.feed(chunk):
                    if message.get("ready"):
                        self._ready.set_result(None)
                        continue
                    ended = self._waiting.pop(message["id"], None)
                    if ended is not None and not ended.done():
                        ended.set_result(message)
        except (ConnectionError, ValueError):
            pass
        finally:
            died = ServerDied(await self.process.wait())
            futures: list[asyncio.Future[Any]] = [self._ready, *self._waiting.values()]
            for future in futures:
                if not future.done():
                    future.set_exception(died)
                    future.exception()  # marked as seen: a caller may have stopped waiting
            self._waiting.clear()

    async def stop(self) -> None:
        """Close the server's input: it kills every step it runs and exits."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self._reader


class StepProcesses:
    """Runs steps each in a fresh process forked by one warm server; `max_parallel` at once."""

    def __init__(
        self,
        max_parallel: int | None = None,
        stderr: int | IO[Any] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.max_parallel = max_parallel or default_max_parallel()
        self.closed = False
        self._argv = [python, "-m", "noetl.plugins.worker"]
        self._stderr = stderr  # where the steps' prints and tracebacks go; None: ours
        self._slots = asyncio.Semaphore(self.max_parallel)
        self._servers: dict[str, asyncio.Task[_Server]] = {}

    async def start(self, tool: str = "python") -> None:
        """Start the server for a tool now and wait until it is ready (else: on first use)."""
        await self._live_server(tool)

    async def _live_server(self, tool: str) -> _Server:
        if self.closed:
            raise RuntimeError("the step processes are closed")
        kind = tool if tool in _OWN_SERVER else "python"
        task = self._servers.get(kind)
        if task is not None and task.done() and (task.exception() or not task.result().alive):
            task = None  # it died, or never started: start afresh
        if task is None:
            task = self._servers[kind] = asyncio.ensure_future(
                _Server.spawn(self._argv, self._stderr)
            )
        # Shielded: a caller cancelled meanwhile leaves the server starting for the next one.
        return await asyncio.shield(task)

    async def run(
        self,
        request: StepRequest,
        timeout: float | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> Outcome:
        """Run one step in a process of its own and wait for its outcome.

        `on_started` is called when the step gets its turn and its process is being started;
        `timeout` (seconds) counts from then.
        """
        async with self._slots:
            try:
                server = await self._live_server(request.tool)
            except (OSError, ServerDied) as exc:
                return Outcome(ok=False, error=f"cannot start the step process: {exc}")
            if on_started is not None:
                on_started()
            ident, ended = server.start(request)
            try:
                end = await asyncio.wait_for(asyncio.shield(ended), timeout)
            except TimeoutError:
                await self._kill(server, ident, ended)
                return Outcome(ok=False, error=f"timed out after {timeout:g}s")
            except ServerDied as died:
                return Outcome(ok=False, error=str(died))
            except BaseException:
                # Cancelled (or worse): the step must not run on behind our back.
                await self._kill(server, ident, ended)
                raise
        if end["outcome"] is None:
            return Outcome(ok=False, error=f"the step's process died (exit code {end['exit']})")
        reply = end["outcome"]
        return Outcome(
            ok=bool(reply["ok"]),
            result=reply.get("result"),
            error=reply.get("error"),
            log=reply.get("log"),
        )

    @staticmethod
    async def _kill(server: _Server, ident: int, ended: asyncio.Future[Any]) -> None:
        server.kill(ident)
        with contextlib.suppress(ServerDied):
            await asyncio.shield(ended)  # gone for sure, not only asked to go

    async def close(self) -> None:
        """Kill every step, and the servers, and wait until all are gone."""
        self.closed = True
        tasks, self._servers = list(self._servers.values()), {}
        await asyncio.gather(*(_stop(task) for task in tasks))


async def _stop(task: asyncio.Task[_Server]) -> None:
    try:
        server = await task
    except BaseException:
        return  # it never started, and cleaned up after itself
    await server.stop()
