"""Latency of trivial steps in the local runner's step processes (a fork each from a warm server).

    python benchmarks/bench_workers.py [--steps 200] [--items 1000] [--max-in-flight 16]

Prints the time to start the step server, then milliseconds per step for `steps` trivial python
steps (`def main(n): return n + 1`) run one after another, and for trivial shell steps (`true`);
then the wall time of a whole `noetl run` of a playbook whose parallel loop runs `items` such
python steps (`maxInFlight` of them at once), interpreter start included. For scale, it also
times a few steps each paying a fresh `python -m noetl.plugins.python`, as a pod (or a naive
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
from pathlib import Path

from noetl.local.workers import StepProcesses
from noetl.plugins.runtime import StepRequest

CODE = "def main(n):\n    return n + 1\n"


def python_step(i: int) -> StepRequest:
    return StepRequest(step=f"s{i}", tool="python", args={"n": i}, code=CODE, env=dict(os.environ))


def shell_step(i: int) -> StepRequest:
    return StepRequest(step=f"s{i}", tool="shell", args={"command": "true"}, env=dict(os.environ))


async def one_after_another(steps: int) -> None:
    processes = StepProcesses()
    started = time.perf_counter()
    await processes.start()
    print(f"step server started in {(time.perf_counter() - started) * 1000:.0f} ms")
    try:
        for name, make in (("python", python_step), ("shell", shell_step)):
            started = time.perf_counter()
            for i in range(steps):
                outcome = await processes.run(make(i))
                assert outcome.ok, outcome.error
            elapsed = time.perf_counter() - started
            print(f"{steps} {name} steps one after another: {elapsed * 1000 / steps:.2f} ms/step")
    finally:
        await processes.close()


def loop_playbook(items: int, max_in_flight: int) -> str:
    return "\n".join(
        [
            "kind: Playbook",
            "name: bench-loop",
            "workflow:",
            "  - step: start",
            "    next: [{step: items}]",
            "  - step: items",
            "    tool: python",
            "    code: 'def main(i): return i + 1'",
            "    args: {i: '{{ item }}'}",
            f"    loop: {{in: '{{{{ range({items}) | list }}}}', iterator: item,"
            f" mode: parallel, maxInFlight: {max_in_flight}}}",
            "    next: [{step: end}]",
            "  - step: end",
            "",
        ]
    )


def whole_run(items: int, max_in_flight: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        playbook = Path(tmp) / "loop.yaml"
        playbook.write_text(loop_playbook(items, max_in_flight))
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "noetl", "run", "-q", str(playbook)],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        elapsed = time.perf_counter() - started
    print(
        f"`noetl run` of a loop of {items} python steps ({max_in_flight} in flight):"
        f" {elapsed:.2f} s"
    )


def fresh_interpreters(steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NOETL_TERMINATION_LOG": os.path.join(tmp, "termination-log")}
        started = time.perf_counter()
        for i in range(steps):
            env["NOETL_INPUT_JSON"] = json.dumps(python_step(i).to_json())
            subprocess.run([sys.executable, "-m", "noetl.plugins.python"], env=env, check=True)
        elapsed = time.perf_counter() - started
    print(f"{steps} steps, fresh interpreter each: {elapsed * 1000 / steps:.1f} ms/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--max-in-flight", type=int, default=16)
    options = parser.parse_args()
    asyncio.run(one_after_another(options.steps))
    whole_run(options.items, options.max_in_flight)
    fresh_interpreters(10)


if __name__ == "__main__":
    main()
