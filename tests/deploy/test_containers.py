"""The built images, run for real with podman the way a step pod runs them.

Each container runs as uid 65532 on a read-only root filesystem with a scratch /tmp (what the
operator's Jobs give it), gets its request in NOETL_INPUT_JSON, and reports through the file
bound at /dev/termination-log, Kubernetes' default termination message path. The images come
from plugin-images/build.py (tests/images.py), cached by a digest of their inputs.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.http import json_server
from tests.fixtures.postgres import PostgresServer
from tests.images import STEP_POD, ensure_images, podman_command

pytestmark = pytest.mark.containers


@dataclass(frozen=True)
class Finished:
    exit_code: int
    stdout: str
    stderr: str
    envelope: dict[str, Any]


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return ensure_images()


def run_step(
    image: str,
    request: dict[str, Any],
    tmp_path: Path,
    *,
    network: str = "none",
    env: dict[str, str] | None = None,
    user: str | None = "65532",
) -> Finished:
    termination = tmp_path / "termination-log"
    termination.write_text("")
    termination.chmod(0o666)  # the container's user writes it, as a kubelet's file allows
    argv = [*podman_command(), *STEP_POD, "--network", network]
    argv += ["--volume", f"{termination}:/dev/termination-log"]
    if user is not None:
        argv += ["--user", user]
    for name, value in {"NOETL_INPUT_JSON": json.dumps(request), **(env or {})}.items():
        argv += ["--env", f"{name}={value}"]
    done = subprocess.run([*argv, image], capture_output=True, text=True, timeout=120, check=False)
    message = termination.read_text()
    assert message, f"no termination message; exit {done.returncode}: {done.stderr}"
    return Finished(done.returncode, done.stdout, done.stderr, json.loads(message))


def shell(command: str) -> dict[str, Any]:
    return {"step": "probe", "tool": "shell", "args": {"command": command}}


def test_shell_step(images: dict[str, str], tmp_path: Path) -> None:
    finished = run_step(images["shell"], shell("echo hello from $HOME"), tmp_path)
    assert finished.exit_code == 0, finished.stderr
    assert finished.envelope["ok"] is True
    assert finished.envelope["result"]["stdout"] == "hello from /tmp"
    assert "hello from /tmp" in finished.stdout  # the pod log has the step's output too


def test_a_step_stops_on_sigterm_as_its_containers_first_process(images: dict[str, str]) -> None:
    """A deleted or cancelled step's pod gets SIGTERM; PID 1 must act on it, not wait for KILL."""
    run = [argument for argument in podman_command() if argument != "--rm"]
    podman = run[: run.index("run")]
    name = f"noetl-sigterm-{uuid.uuid4().hex[:12]}"  # unique across concurrent runs
    request = json.dumps(shell("echo started; sleep 600"))
    detached = [*run, *STEP_POD, "--detach", "--name", name]
    subprocess.run(
        [*detached, "--env", f"NOETL_INPUT_JSON={request}", images["shell"]],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        for _ in range(600):  # the shell is running once it has printed
            logs = subprocess.run([*podman, "logs", name], capture_output=True, text=True)
            if "started" in logs.stdout:
                break
        # A stop that had to fall back to SIGKILL would end with 137 (128 + 9).
        subprocess.run([*podman, "stop", "--time", "120", name], check=True, timeout=180)
        state = subprocess.run(
            [*podman, "inspect", "--format", "{{.State.ExitCode}}", name],
            capture_output=True,
            text=True,
            check=True,
        )
        assert state.stdout.strip() == "143"
    finally:
        subprocess.run([*podman, "rm", "--force", name], capture_output=True, check=False)


def test_failed_shell_step_reports_its_failure(images: dict[str, str], tmp_path: Path) -> None:
    finished = run_step(images["shell"], shell("echo broken >&2; exit 3"), tmp_path)
    assert finished.exit_code == 1
    assert finished.envelope["ok"] is False
    assert "3" in finished.envelope["error"]


def test_python_step(images: dict[str, str], tmp_path: Path) -> None:
    request = {
        "step": "probe",
        "tool": "python",
        "args": {"who": "image"},
        "code": "def main(who):\n    return f'hello {who}'",
    }
    finished = run_step(images["python"], request, tmp_path)
    assert finished.envelope == {"ok": True, "result": "hello image"}, finished.stderr
    assert finished.exit_code == 0


def test_duckdb_step(images: dict[str, str], tmp_path: Path) -> None:
    request = {"step": "probe", "tool": "duckdb", "args": {"command": "select 40 + 2 as answer"}}
    finished = run_step(images["duckdb"], request, tmp_path)
    assert finished.envelope["ok"] is True, finished.envelope
    assert finished.envelope["result"]["rows"] == [{"answer": 42}]


def test_duckdb_spills_to_tmp(images: dict[str, str], tmp_path: Path) -> None:
    """A query larger than its memory limit writes temporary files: they must land in /tmp."""
    command = (
        "set memory_limit='40MB'; set threads=1; "
        "select count(distinct i) as n from range(6000000) t(i)"
    )
    request = {"step": "probe", "tool": "duckdb", "args": {"command": command}}
    finished = run_step(images["duckdb"], request, tmp_path)
    assert finished.envelope["ok"] is True, finished.envelope
    assert finished.envelope["result"]["rows"] == [{"n": 6000000}]


@pytest.fixture
def http_port() -> Iterator[int]:
    with json_server() as port:
        yield port


def test_http_step(images: dict[str, str], tmp_path: Path, http_port: int) -> None:
    url = f"http://127.0.0.1:{http_port}/"
    request = {"step": "probe", "tool": "http", "args": {"url": url, "method": "GET"}}
    finished = run_step(images["http"], request, tmp_path, network="host")
    assert finished.envelope["ok"] is True, finished.envelope
    assert finished.envelope["result"]["status"] == 200
    assert finished.envelope["result"]["body"] == {"hello": "plugin"}


@pytest.mark.postgres
def test_postgres_step(
    images: dict[str, str], tmp_path: Path, postgres_server: PostgresServer
) -> None:
    request = {"step": "probe", "tool": "postgres", "args": {"command": "select 1 + 1 as two"}}
    finished = run_step(
        images["postgres"], request, tmp_path, network="host", env=postgres_server.env()
    )
    assert finished.envelope["ok"] is True, finished.envelope
    assert finished.envelope["result"]["rows"] == [{"two": 2}]
    assert postgres_server.password not in finished.stdout + finished.stderr


def test_root_filesystem_is_read_only_and_tmp_is_writable(
    images: dict[str, str], tmp_path: Path
) -> None:
    probe = (
        "touch /usr/local/lib/probe 2>/dev/null && echo root-writable || echo root-read-only; "
        "touch /tmp/probe && echo tmp-writable; touch probe && echo workdir-writable"
    )
    finished = run_step(images["shell"], shell(probe), tmp_path)
    lines = finished.envelope["result"]["stdout"].splitlines()
    assert lines == ["root-read-only", "tmp-writable", "workdir-writable"], finished.envelope


PYTHON_ENVIRONMENT = """
import os, sys, noetl.plugins.runtime as runtime
def main():
    return {
        "uid": os.getuid(),
        "home": os.environ["HOME"],
        "tmpdir": os.environ["TMPDIR"],
        "cwd": os.getcwd(),
        "writesBytecode": not sys.dont_write_bytecode,
        "compiled": os.path.exists(runtime.__cached__),
    }
"""


@pytest.mark.parametrize("image", ["shell", "python", "http", "postgres", "duckdb", "operator"])
def test_default_user_is_the_unprivileged_one(images: dict[str, str], image: str) -> None:
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Config.User}}", images[image]],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "65532"


def test_python_runs_precompiled_as_the_image_user(images: dict[str, str], tmp_path: Path) -> None:
    request = {"step": "probe", "tool": "python", "code": PYTHON_ENVIRONMENT}
    finished = run_step(images["python"], request, tmp_path, user=None)
    assert finished.envelope["result"] == {
        "uid": 65532,
        "home": "/tmp",
        "tmpdir": "/tmp",
        "cwd": "/tmp",
        "writesBytecode": False,
        "compiled": True,
    }, finished.envelope


def test_operator_image_runs_the_operator_command(images: dict[str, str]) -> None:
    argv = [*podman_command(), *STEP_POD, "--network", "none", images["operator"], "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    for option in ("--namespace", "--metrics-port", "--health-port", "--peering"):
        assert option in done.stdout
