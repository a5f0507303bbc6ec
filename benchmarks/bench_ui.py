"""How long `noetl ui` takes to serve the page of a 2,000-step execution (goal: under 1 s).

    python benchmarks/bench_ui.py [--steps 2000] [--runs 5]

Runs, with `noetl run`, a playbook of 40 parallel branches of shell steps between a fan-out and
a join (2,000 steps in all, plus start, the join and end; the run takes a while), then serves its
event log with the UI in this process and prints the time of the whole page request (replaying
the log, laying out the graph, drawing the SVG, rendering the HTML), the layout alone, and the
page's size. The first request replays the whole
log; later ones read only what was added, as when a page is reloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from noetl.ui.layout import layout
from noetl.ui.server import UI
from noetl.ui.sources.local import LocalRuns

BRANCHES = 40


def playbook(steps: int) -> str:
    depth = steps // BRANCHES
    lines = ["kind: Playbook", "name: wide", "workflow:", "  - step: start", "    next:"]
    lines += [f"      - step: b{branch}-0" for branch in range(BRANCHES)]
    for branch in range(BRANCHES):
        for level in range(depth):
            after = f"b{branch}-{level + 1}" if level + 1 < depth else "join"
            lines += [
                f"  - step: b{branch}-{level}",
                "    tool: shell",
                f"    args: {{command: 'echo {branch}-{level}'}}",
                f"    next: [{{step: {after}}}]",
            ]
    lines += ["  - step: join", "    next: [{step: end}]", "  - step: end"]
    return "\n".join(lines) + "\n"


async def measure(runs_dir: Path, name: str, repeat: int) -> tuple[list[float], int]:
    ui = UI([LocalRuns(runs_dir)])
    async with TestClient(TestServer(ui.app())) as client:
        times, size = [], 0
        for _ in range(repeat):
            start = time.perf_counter()
            response = await client.get(f"/executions/local/{name}")
            body = await response.read()
            times.append(time.perf_counter() - start)
            size = len(body)
            assert response.status == 200, body[:300]
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "wide.yaml").write_text(playbook(options.steps))
        log = folder / "runs" / "wide.jsonl"
        subprocess.run(
            [sys.executable, "-m", "noetl", "run", "-q", "wide.yaml", "--event-log", str(log)],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times, size = asyncio.run(measure(log.parent, "wide", options.runs))
        view = LocalRuns(log.parent)._run("wide")
        assert view is not None
        graph = view.view().graph
        started = time.perf_counter()
        layout(graph)
        layout_time = time.perf_counter() - started
    print(f"execution page of {len(graph.nodes)} steps, {len(graph.edges)} edges:")
    print(f"  first request (replays the whole event log): {times[0] * 1000:.0f} ms")
    later = statistics.median(times[1:]) * 1000
    print(f"  later requests, median of {len(times) - 1}: {later:.0f} ms")
    print(f"  layout alone: {layout_time * 1000:.0f} ms")
    print(f"  page size: {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
