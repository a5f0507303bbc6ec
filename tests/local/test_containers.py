"""`container` steps under `noetl run`: real images through podman (marker `containers`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.local.test_cli import write

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
IMAGE = "docker.io/library/debian:bookworm-slim"
# What podman needs inside this project's test machines (a container itself); a machine that
# needs other flags sets NOETL_CONTAINER_FLAGS.
TEST_FLAGS = (
    "--cgroup-manager cgroupfs --runtime runc --ulimit nofile=20000:20000 --ulimit nproc=1000:1000"
)


def _podman_with_image() -> str | None:
    """Why container tests cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed"
    found = subprocess.run(["podman", "image", "exists", IMAGE], capture_output=True)
    return None if found.returncode == 0 else f"the image {IMAGE} is not in podman's store"


def run(tmp_path: Path, playbook: Path, **env: str) -> tuple[int, dict[str, Any]]:
    environment = {
        **os.environ,
        "NOETL_CONTAINER_FLAGS": os.environ.get("NOETL_CONTAINER_FLAGS", TEST_FLAGS),
        **env,
    }
    completed = subprocess.run(
        [sys.executable, "-m", "noetl", "run", "--json", str(playbook)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=environment,
    )
    assert completed.stdout, completed.stderr
    return completed.returncode, json.loads(completed.stdout)


needs_podman = pytest.mark.skipif(
    _podman_with_image() is not None, reason=str(_podman_with_image())
)


@pytest.mark.containers
@needs_podman
def test_the_container_example_runs_debian_as_a_non_root_user(tmp_path):
    code, summary = run(tmp_path, PLAYBOOKS / "container.yaml")
    assert (code, summary["phase"]) == (0, "Succeeded"), summary["error"]
    assert summary["result"] == {"greeting": "Hello from debian, Ada", "user": 65532}


@pytest.mark.containers
@needs_podman
def test_stdout_is_the_result_without_a_termination_message_and_a_failure_names_its_code(
    tmp_path,
):
    playbook = write(
        tmp_path,
        f"""
        kind: Playbook
        name: boxes
        workflow:
          - step: start
            next: [{{step: talk}}]
          - step: talk
            tool: container
            args: {{image: "{IMAGE}", command: [echo], args: ["hello", "there"]}}
            next: [{{step: readonly}}]
          - step: readonly
            tool: container
            args:
              image: "{IMAGE}"
              command: [sh, -c, 'echo ok > /tmp/ok && echo {{{{ talk.stdout }}}} > /etc/x']
        """,
    )
    code, summary = run(tmp_path, playbook)
    assert (code, summary["phase"]) == (1, "Failed")
    assert summary["error"].startswith("step 'readonly' failed: container exited with code ")
    assert "Read-only file system" in summary["error"]
    log = (tmp_path / summary["eventLog"]).read_text().splitlines()
    talk = next(r for r in map(json.loads, log) if r.get("step") == "talk" and "result" in r)
    assert talk["result"] == {"stdout": "hello there"}


def test_without_podman_or_docker_a_container_step_fails_clearly(tmp_path):
    code, summary = run(
        tmp_path, PLAYBOOKS / "container.yaml", NOETL_CONTAINER_RUNTIME="no-such-runtime"
    )
    assert (code, summary["phase"]) == (1, "Failed")
    assert summary["error"] == (
        "step 'greet' failed: a container step needs podman or docker on this machine, and "
        "neither is installed (or set NOETL_CONTAINER_RUNTIME)"
    )
