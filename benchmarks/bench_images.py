"""Sizes of NoETL's images, and how fast a trivial step runs in each plugin's container.

    python benchmarks/bench_images.py [--runs 7]

Ensures the images with podman (plugin-images/build.py, cached), prints each image's size, then
for each plugin the median over `runs` of a trivial step three ways:
  - host: `python -m noetl.plugins.<kind>` as a process on this machine (the local runner's way);
  - in container: from the container's start to its exit with the result written, as podman
    records them (State.StartedAt to State.FinishedAt): what a pod's container costs;
  - podman run: the whole `podman run` command, creating and removing the container included.
The first run of each is a warm-up; then host and container runs alternate, so that the noise of
a busy machine falls on both. Each container runs as a step pod's does: uid 65532, read-only
root, scratch /tmp. The postgres step queries a throwaway server (tests/fixtures/postgres.py),
the http step a local one.
Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.http import json_server
from tests.fixtures.postgres import running_server
from tests.images import STEP_POD, build, podman_command


def requests(http_port: int) -> dict[str, dict[str, Any]]:
    return {
        "shell": {"args": {"command": "echo hello"}},
        "python": {"code": "def main():\n    return 1"},
        "http": {"args": {"url": f"http://127.0.0.1:{http_port}/", "method": "GET"}},
        "postgres": {"args": {"command": "select 1 as one"}},
        "duckdb": {"args": {"command": "select 42 as answer"}},
    }


def on_host(kind: str, request: str, env: dict[str, str], scratch: Path) -> float:
    termination = scratch / "host-termination-log"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", f"noetl.plugins.{kind}"],
        env={
            **os.environ,
            **env,
            "NOETL_INPUT_JSON": request,
            "NOETL_TERMINATION_LOG": str(termination),
        },
        capture_output=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    assert json.loads(termination.read_text())["ok"], termination.read_text()
    return elapsed


def in_container(
    image: str, request: str, env: dict[str, str], scratch: Path
) -> tuple[float, float]:
    """(container start to exit, whole `podman run`) of one step."""
    termination = scratch / "termination-log"
    termination.write_text("")
    termination.chmod(0o666)
    name = f"noetl-bench-{os.getpid()}-{time.monotonic_ns()}"
    argv = [*podman_command(), "--name", name, *STEP_POD, "--user", "65532", "--network", "host"]
    argv.remove("--rm")  # the container's times are read after it ends
    argv += ["--volume", f"{termination}:/dev/termination-log"]
    for key, value in {**env, "NOETL_INPUT_JSON": request}.items():
        argv += ["--env", f"{key}={value}"]
    started = time.perf_counter()
    subprocess.run([*argv, image], capture_output=True, check=True)
    whole = time.perf_counter() - started
    try:
        times = subprocess.run(
            ["podman", "inspect", "--format", "{{.State.StartedAt}}|{{.State.FinishedAt}}", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    finally:
        subprocess.run(["podman", "rm", "--force", name], capture_output=True, check=False)
    assert json.loads(termination.read_text())["ok"], termination.read_text()
    begin, end = (_podman_time(text) for text in times.split("|"))
    return (end - begin).total_seconds(), whole


def _podman_time(text: str) -> datetime:
    """podman's `2026-11-29 20:01:02.123456789 +0000 UTC`, to the microsecond."""
    day, clock, offset = text.split()[:3]
    whole, _, fraction = clock.partition(".")
    return datetime.fromisoformat(f"{day}T{whole}.{(fraction or '0')[:6]:0<6}{offset}")


def image_size(tag: str) -> int:
    return int(
        subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Size}}", tag],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    tags = build.ensure_images("podman", pinned=True)
    print(f"{'image':<50} {'size':>8}")
    for tag in tags.values():
        print(f"{tag:<50} {image_size(tag) / 1e6:>5.0f} MB")
    print(f"\ntrivial step, median of {runs} (ms)")
    print(f"{'plugin':<10} {'host':>8} {'in container':>14} {'podman run':>12}")
    with json_server() as port, running_server() as postgres, tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for kind, fields in requests(port).items():
            request = json.dumps({"step": "bench", "tool": kind, **fields})
            env = postgres.env() if kind == "postgres" else {}
            on_host(kind, request, env, scratch)  # warm-up: files into the page cache
            in_container(tags[kind], request, env, scratch)
            host, container = [], []
            for _ in range(runs):  # in alternation, so that the machine's noise hits both
                host.append(on_host(kind, request, env, scratch))
                container.append(in_container(tags[kind], request, env, scratch))
            inside = statistics.median(run[0] for run in container)
            whole = statistics.median(run[1] for run in container)
            print(
                f"{kind:<10} {statistics.median(host) * 1000:>8.0f} {inside * 1000:>14.0f}"
                f" {whole * 1000:>12.0f}"
            )


if __name__ == "__main__":
    main()
