"""The node's container runtime: podman with runc, one `podman run` per container.

`run_command` builds the `podman run` that starts one container in the foreground: host network,
the image from local storage (never pulled), the process from `images.process_argv` as the
entrypoint, the environment passed by name (values travel in podman's own environment, never on
a command line), the volumes and the termination-message file bind-mounted, the securityContext's
options, and the logs written by the runtime in the CRI format to the file the node's log server
reads. The `podman run` process exits with the container's exit code (125-127 when podman or the
runtime could not start it), so the agent waits on a child process as it did for local commands.

Options this machine needs: the cgroupfs cgroup manager and runc (crun refuses a hybrid cgroup
layout), and resource limits no higher than the agent's own (runtimes default to limits that a
locked-down build machine cannot grant).

`Reaper` removes the agent's containers when the agent ends, even when it is killed: a process
outside the agent's process group waits for the end of a pipe only the agent holds, then removes
every container carrying the agent's label. `signal_container` and `remove` act on one container.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.cluster.pod_config import Mount

PODMAN = ["podman", "--cgroup-manager=cgroupfs", "--runtime=runc"]
AGENT_LABEL = "test-cluster.node-agent"  # value: the agent's id, for the reaper
REAPER = Path(__file__).resolve().with_name("reaper.py")


def available() -> str | None:
    """Why containers cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (Debian: apt-get install podman runc)"
    return None


# Processes per user in a container; runc could not set 50,000 on the build machine.
MAX_PROCESSES = 4096


def _limit(kind: int, cap: int | None = None) -> str:
    """The agent's own limit (a container cannot be given more), at most `cap`."""
    values = []
    for value in resource.getrlimit(kind):
        if value == resource.RLIM_INFINITY:
            value = cap if cap is not None else -1
        values.append(value if cap is None else min(value, cap))
    return f"{values[0]}:{values[1]}"


def run_command(
    *,
    name: str,
    agent_id: str,
    image: str,
    argv: Sequence[str],
    env_names: Sequence[str],
    working_dir: str | None,
    hostname: str,
    mounts: Sequence[Mount],
    security: Sequence[str],
    log_path: Path,
) -> list[str]:
    """`podman run` for one container, in the foreground."""
    command = [
        *PODMAN,
        "run",
        "--rm",
        f"--name={name}",
        f"--label={AGENT_LABEL}={agent_id}",
        "--pull=never",
        "--network=host",
        f"--hostname={hostname}",
        "--http-proxy=false",
        "--log-driver=k8s-file",
        f"--log-opt=path={log_path}",
        f"--ulimit=nofile={_limit(resource.RLIMIT_NOFILE)}",
        f"--ulimit=nproc={_limit(resource.RLIMIT_NPROC, MAX_PROCESSES)}",
        f"--entrypoint={json.dumps(list(argv))}",
        *[f"--env={variable}" for variable in env_names],
        *security,
    ]
    if working_dir:
        command.append(f"--workdir={working_dir}")
    for mount in mounts:
        options = f"type=bind,source={mount.source},destination={mount.target}"
        command.append(f"--mount={options}{',ro=true' if mount.read_only else ''}")
    command.append(image)
    return command


def signal_container(name: str, signal_name: str) -> bool:
    """Send a signal (`TERM`, `KILL`) to the container's process; False if it is not running."""
    result = subprocess.run(
        [*PODMAN, "kill", f"--signal={signal_name}", name], capture_output=True, check=False
    )
    return result.returncode == 0


def remove(name: str) -> None:
    """Remove the container, killing it first if it still runs."""
    subprocess.run([*PODMAN, "rm", "--force", "--time=0", name], capture_output=True, check=False)


class Reaper:
    """Removes every container labelled with `agent_id` once `close()` is called or the agent
    dies."""

    def __init__(self, agent_id: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(REAPER), json.dumps(PODMAN), _selector(agent_id)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # neither a Ctrl-C nor the agent's group signal reaches it
        )

    def close(self, timeout: float = 60.0) -> None:
        """Remove the containers now and wait until they are gone."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout)


def labelled(agent_id: str) -> list[str]:
    """Names of the containers (running or not) that carry the agent's label."""
    result = subprocess.run(
        [*PODMAN, "ps", "--all", f"--filter={_selector(agent_id)}", "--format={{.Names}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.split()


def _selector(agent_id: str) -> str:
    return f"label={AGENT_LABEL}={agent_id}"


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """podman's own environment: the machine's, with the container's variables on top (podman
    passes on only those named with `--env`)."""
    return {**os.environ, **env}
