"""`container` steps on this machine: the image run through podman (or docker) as a pod would run.

The same defaults as a step's pod on a cluster: a non-root user (65532), a read-only root
filesystem with a scratch /tmp, every capability dropped, no privilege escalation, and the
step's `env`, `command` (the entrypoint), `args` and `workingDir`. The container's
/dev/termination-log is a file of ours, read when it ends. Flags this machine needs (a cgroup
manager, ulimits, `--network host`...) come from NOETL_CONTAINER_FLAGS; NOETL_CONTAINER_RUNTIME
picks the program (else podman, then docker, whichever is installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from noetl.plugins import container
from noetl.plugins.messages import Outcome, StepRequest

RUNTIMES = ("podman", "docker")


def find_runtime(env: Mapping[str, str]) -> str | None:
    chosen = env.get("NOETL_CONTAINER_RUNTIME")
    if chosen:
        return shutil.which(chosen)
    return next((path for name in RUNTIMES if (path := shutil.which(name))), None)


def container_argv(
    runtime: str,
    name: str,
    request: StepRequest,
    termination_log: Path,
    flags: str,
    secret_keys: list[str],
) -> list[str]:
    """The command line; secret values are not on it (`--env KEY` takes them from our env)."""
    args = request.args
    argv = [runtime, "run", "--rm", "--name", name, *shlex.split(flags)]
    argv += [
        f"--user={container.NON_ROOT_USER}:{container.NON_ROOT_USER}",
        "--read-only",
        "--tmpfs=/tmp",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        f"--volume={termination_log}:{container.TERMINATION_LOG}",
    ]
    for key, value in container.environment(args).items():
        argv.append(f"--env={key}={value}")
    argv += [f"--env={key}" for key in secret_keys]
    if isinstance(args.get("workingDir"), str):
        argv.append(f"--workdir={args['workingDir']}")
    if args.get("command") is not None:
        argv.append(f"--entrypoint={json.dumps(args['command'])}")
    return [*argv, str(args["image"]), *(args.get("args") or [])]


async def run_container(request: StepRequest, timeout: float | None) -> Outcome:
    """Run the step's image; its Secret's keys (`request.secrets`) become env variables."""
    problem = _bad_args(request)
    if problem:
        return Outcome(ok=False, error=problem)
    runtime = find_runtime(request.env)
    if runtime is None:
        return Outcome(
            ok=False,
            error="a container step needs podman or docker on this machine, and neither is "
            "installed (or set NOETL_CONTAINER_RUNTIME)",
        )
    name = f"noetl-{request.step.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="noetl-container-") as scratch:
        termination_log = Path(scratch) / "termination-log"
        termination_log.touch()
        termination_log.chmod(0o666)  # the container's user writes it
        flags = request.env.get("NOETL_CONTAINER_FLAGS", "")
        secret_keys = sorted(request.secrets)
        argv = container_argv(runtime, name, request, termination_log, flags, secret_keys)
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=dict(request.env),  # holds the Secret's values, which `--env KEY` passes on
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            await _remove(runtime, name, process)
            return Outcome(ok=False, error=f"timed out after {timeout:g}s")
        except asyncio.CancelledError:
            await _remove(runtime, name, process)
            raise
        message = termination_log.read_text(errors="replace")
    return container.outcome(
        process.returncode,
        message,
        stdout.decode("utf-8", errors="replace"),
        stderr.decode("utf-8", errors="replace"),
    )


def _bad_args(request: StepRequest) -> str | None:
    image = request.args.get("image")
    if not isinstance(image, str) or not image:
        return f"args.image must name an image, got {image!r}"
    for key in ("command", "args"):
        value = request.args.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            return f"args.{key} must be a list of strings, got {value!r}"
    return None


async def _remove(runtime: str, name: str, process: asyncio.subprocess.Process) -> None:
    # Killing the client does not stop the container: remove it by name, then reap the client.
    remover = await asyncio.create_subprocess_exec(
        runtime,
        "rm",
        "--force",
        "--time=0",
        name,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await remover.wait()
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()
