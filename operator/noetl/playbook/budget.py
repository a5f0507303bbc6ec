"""Validating a playbook away from the event loop, within a time and memory budget.

The operator validates every Playbook it sees and the playbook of every Execution it starts. The
template limits (`noetl.template_limits`) bound what one template may cost, but a playbook is
user input of any size, and the operator's event loop drives every Execution at once: a
validation that ran in it for a minute would stop them all and fail the liveness probe. So the
operator validates in a worker process whose address space is capped (`RLIMIT_AS`) and waits for
it without blocking, at most `timeout` seconds. A worker that runs out of time is killed and
replaced; a playbook that runs out of budget is invalid, and says so.

`noetl validate` and `noetl run` validate in their own process: a user's own laptop, one playbook.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from noetl.playbook.errors import PlaybookError, PlaybookInvalid
from noetl.playbook.loader import Playbook, parse_playbook

TIMEOUT_SECONDS = 10.0
MEMORY_BYTES = 512 * 2**20


def _cap_memory(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _parse(document: Any, source: str) -> tuple[Playbook | None, list[PlaybookError]]:
    # Runs in the worker. An exception with constructor arguments does not survive pickling
    # back whole, so the errors come back as values.
    try:
        return parse_playbook(document, source), []
    except PlaybookInvalid as invalid:
        return None, invalid.errors
    except MemoryError:
        return None, [PlaybookError("spec", "validation needed more memory than its budget")]


def _warm_up() -> None:
    # Runs in a new worker: importing and building the models is start-up, not the budget's.
    parse_playbook({"workflow": [{"step": "start"}]})


class BudgetedValidator:
    """Parses playbooks in one worker process, one at a time, each within the budget."""

    def __init__(self, timeout: float = TIMEOUT_SECONDS, memory_bytes: int = MEMORY_BYTES) -> None:
        self.timeout = timeout
        self.memory_bytes = memory_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def _worker(self, loop: asyncio.AbstractEventLoop) -> ProcessPoolExecutor:
        if self._pool is None:
            pool = ProcessPoolExecutor(
                max_workers=1,
                # spawn: forking a process that runs threads (the Kubernetes client's) is unsafe.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_cap_memory,
                initargs=(self.memory_bytes,),
            )
            self._pool = pool
            await loop.run_in_executor(pool, _warm_up)
        return self._pool

    async def parse(self, document: Any, source: str = "") -> Playbook:
        """`parse_playbook` in the worker: the Playbook, or PlaybookInvalid (budget included)."""
        loop = asyncio.get_running_loop()
        # One at a time: a worker killed for its time kills no other playbook's validation.
        async with self._locks.setdefault(loop, asyncio.Lock()):
            playbook: Playbook | None = None
            try:
                worker = await self._worker(loop)
                playbook, errors = await asyncio.wait_for(
                    loop.run_in_executor(worker, _parse, document, source), self.timeout
                )
            except TimeoutError:
                self.close()
                errors = [
                    PlaybookError("spec", f"validation took longer than its {self.timeout:g} s")
                ]
            except BrokenProcessPool:  # the worker died, where a MemoryError is not caught
                self.close()
                errors = [
                    PlaybookError(
                        "spec", "validation stopped: its worker died (out of memory, most likely)"
                    )
                ]
        if playbook is None or errors:
            raise PlaybookInvalid(errors, source)
        return playbook

    def close(self) -> None:
        """Stop the worker (a new one starts on the next parse)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # A running task cannot be cancelled: the process itself is stopped.
        if hasattr(pool, "kill_workers"):  # Python 3.14
            pool.kill_workers()
        else:
            for process in list((pool._processes or {}).values()):
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)


_default = BudgetedValidator()


async def parse_within_budget(document: Any, source: str = "") -> Playbook:
    """Validate a playbook document in the shared worker, within the default budget."""
    return await _default.parse(document, source)
