"""Latency of trivial python steps through the local worker pool, against a fresh interpreter.

    python benchmarks/bench_workers.py [--steps 200] [--size N]

Prints the time to start the pool, then milliseconds per step for `steps` trivial python steps
(`def main(n): return n + 1`) run one after another and all at once (the pool bounds them to
`size` in flight), with workers recycled as the runner has them (`--max-tasks`). For scale, it
also times a few steps each paying a fresh `python -m noetl.plugins.python`, as a pod (or a naive
runner) would. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

from noetl.local.workers import WorkerPool
from noetl.plugins.runtime import StepRequest

CODE = "def main(n):\n    return n + 1\n"


def request(i: int) -> StepRequest:
    return StepRequest(step=f"s{i}", tool="python", args={"n": i}, code=CODE, env=dict(os.environ))


async def through_pool(steps: int, size: int | None, max_tasks: int) -> None:
    pool = WorkerPool(size=size, max_tasks=max_tasks)
    started = time.perf_counter()
    await pool.start()
    start_ms = (time.perf_counter() - started) * 1000
    recycled = f"recycled every {max_tasks} steps"
    print(f"pool of {pool.size} workers ({recycled}) started in {start_ms:.0f} ms")
    try:
        started = time.perf_counter()
        for i in range(steps):
            outcome = await pool.run(request(i))
            assert outcome.ok, outcome.error
        sequential = time.perf_counter() - started
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(pool.run(request(i)) for i in range(steps)))
        concurrent = time.perf_counter() - started
        assert all(o.ok for o in outcomes)
    finally:
        await pool.close()
    print(f"{steps} steps sequential: {sequential * 1000 / steps:.2f} ms/step ({sequential:.3f} s)")
    print(f"{steps} steps concurrent: {concurrent * 1000 / steps:.2f} ms/step ({concurrent:.3f} s)")


def fresh_interpreters(steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NOETL_TERMINATION_LOG": os.path.join(tmp, "termination-log")}
        started = time.perf_counter()
        for i in range(steps):
            env["NOETL_INPUT_JSON"] = json.dumps(request(i).to_json())
            subprocess.run([sys.executable, "-m", "noetl.plugins.python"], env=env, check=True)
        elapsed = time.perf_counter() - started
    print(f"{steps} steps, fresh interpreter each: {elapsed * 1000 / steps:.1f} ms/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=None, help="pool size (default: CPU count)")
    parser.add_argument("--max-tasks", type=int, default=WorkerPool.MAX_TASKS)
    options = parser.parse_args()
    asyncio.run(through_pool(options.steps, options.size, options.max_tasks))
    fresh_interpreters(10)


if __name__ == "__main__":
    main()
