"""A pool of warm worker processes for the local runner's python, http, postgres and duckdb steps.

Starting a Python interpreter costs a tenth of a second or more, so these steps run in
long-lived workers (`python -m noetl.plugins.worker`; its docstring describes the pipe) instead.
The pool has `size` slots, each holding at most one worker: at most `size` steps run at once and
the others wait for a free slot. Every worker leads a process session of its own, so a worker is
killed together with whatever its step started. A step that times out or whose caller is
cancelled has its worker killed; a worker that dies (a crash, `os._exit`, a signal) fails only its
own step. Such a worker, and one worn out after `max_tasks` steps, is replaced in the background,
and a step prefers a slot whose worker is already warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import IO, Any

from noetl.plugins.messages import Outcome, StepRequest
from noetl.plugins.worker import HEADER, frame


class WorkerDied(Exception):
    """The worker process ended while it was starting or running a step."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"worker process died (exit code {exit_code})")


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.tasks = 0

    @classmethod
    async def spawn(cls, argv: list[str], stderr: int | IO[Any] | None) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
        worker = cls(process)
        try:
            await worker._receive()  # {"ready": true}: the interpreter is up
        except BaseException:
            await worker.stop()
            raise
        return worker

    async def call(self, request: StepRequest) -> Outcome:
        self.tasks += 1
        assert self.process.stdin is not None
        self.process.stdin.write(frame({"request": request.to_json(), "env": dict(request.env)}))
        try:
            await self.process.stdin.drain()
        except ConnectionError:
            raise WorkerDied(await self.process.wait()) from None
        reply = await self._receive()
        return Outcome(ok=bool(reply["ok"]), result=reply.get("result"), error=reply.get("error"))

    async def _receive(self) -> Any:
        assert self.process.stdout is not None
        try:
            (size,) = HEADER.unpack(await self.process.stdout.readexactly(HEADER.size))
            return json.loads(await self.process.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            raise WorkerDied(await self.process.wait()) from None

    @property
    def alive(self) -> bool:
        """Whether the process runs, asked of the kernel: the event loop learns of deaths late."""
        if self.process.returncode is not None:
            return False
        try:
            # WNOWAIT only looks: reaping the process stays the event loop's job.
            waited = os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False  # reaped already, its exit not yet reported to the loop
        return waited is None

    def kill(self) -> None:
        """Kill the worker and everything its steps started, at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        self.kill()
        await self.process.wait()


class _Slot:
    """A place in the pool: at most one worker, started ahead of need."""

    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool
        self._worker: asyncio.Task[_Worker] | None = None

    @property
    def warm(self) -> bool:
        task = self._worker
        return task is not None and task.done() and not task.cancelled() and not task.exception()

    def prepare(self) -> None:
        if self._worker is None and not self._pool.closed:
            self._worker = asyncio.ensure_future(self._pool.spawn())

    async def worker(self) -> _Worker:
        self.prepare()
        task = self._worker
        if task is None:
            raise RuntimeError("the worker pool is closed")
        try:
            # Shielded: a caller cancelled meanwhile leaves the worker starting for the next one.
            return await asyncio.shield(task)
        except Exception:
            self._worker = None  # it failed to start; the next step tries afresh
            raise

    def replace(self, worker: _Worker) -> None:
        self._pool.bury(worker)
        self._worker = None
        self.prepare()

    async def close(self) -> None:
        task, self._worker = self._worker, None
        if task is None:
            return
        task.cancel()
        try:
            worker = await task
        except BaseException:
            return  # it never started, and cleaned up after itself
        await worker.stop()


class WorkerPool:
    """Warm, recycled worker processes; `run` one step at a time in each, `size` at once."""

    # A fresh interpreter costs some 0.1 s of CPU here, a trivial step 0.5 ms: recycling every
    # 100 steps would spend more on new workers than on the steps themselves.
    MAX_TASKS = 1000

    def __init__(
        self,
        size: int | None = None,
        max_tasks: int = MAX_TASKS,
        stderr: int | IO[Any] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.size = size or os.cpu_count() or 1
        self.max_tasks = max_tasks
        self.closed = False
        self._argv = [python, "-m", "noetl.plugins.worker"]
        self._stderr = stderr  # where the steps' prints and tracebacks go; None: ours
        self._slots = [_Slot(self) for _ in range(self.size)]
        self._free = list(self._slots)
        self._free_count = asyncio.Semaphore(self.size)
        self._dying: set[asyncio.Task[int]] = set()

    async def start(self) -> None:
        """Start every worker now and wait until all are ready (else each starts on first use)."""
        await asyncio.gather(*(slot.worker() for slot in self._slots))

    async def spawn(self) -> _Worker:
        return await _Worker.spawn(self._argv, self._stderr)

    def bury(self, worker: _Worker) -> None:
        """Kill a worker now and reap it in the background."""
        worker.kill()
        reaping = asyncio.ensure_future(worker.process.wait())
        self._dying.add(reaping)
        reaping.add_done_callback(self._dying.discard)

    async def run(self, request: StepRequest, timeout: float | None = None) -> Outcome:
        """Run one step in a worker; `timeout` (seconds) counts from when the step is handed on."""
        async with self._free_count:
            slot = self._take_slot()
            try:
                return await self._run_in(slot, request, timeout)
            finally:
                self._free.append(slot)

    def _take_slot(self) -> _Slot:
        # The warm worker used last is the quickest to answer (its process and caches are hot).
        for i in reversed(range(len(self._free))):
            if self._free[i].warm:
                return self._free.pop(i)
        return self._free.pop()

    async def _run_in(self, slot: _Slot, request: StepRequest, timeout: float | None) -> Outcome:
        try:
            worker = await self._live_worker(slot)
        except (OSError, WorkerDied) as exc:
            return Outcome(ok=False, error=f"worker process failed to start: {exc}")
        try:
            outcome = await asyncio.wait_for(worker.call(request), timeout)
        except TimeoutError:
            slot.replace(worker)
            return Outcome(ok=False, error=f"timed out after {timeout:g}s")
        except WorkerDied as died:
            slot.replace(worker)
            return Outcome(ok=False, error=str(died))
        except BaseException:
            # Cancelled (or worse): the step must not run on behind our back.
            slot.replace(worker)
            raise
        if worker.tasks >= self.max_tasks:
            slot.replace(worker)
        return outcome

    @staticmethod
    async def _live_worker(slot: _Slot) -> _Worker:
        worker = await slot.worker()
        if worker.alive:
            return worker
        slot.replace(worker)  # it died while idle, losing nothing: take a fresh one
        return await slot.worker()

    async def close(self) -> None:
        """Kill every worker, running or idle, and wait until all are gone."""
        self.closed = True
        await asyncio.gather(*(slot.close() for slot in self._slots))
        await asyncio.gather(*self._dying)
