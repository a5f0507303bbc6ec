"""A warm worker process: runs step requests one after another, for the local runner's pool.

Started as `python -m noetl.plugins.worker` by noetl.local.workers. Messages are frames: a 4-byte
big-endian length, then that many bytes of UTF-8 JSON. The worker first sends `{"ready": true}`;
then for each `{"request": {...}, "env": {...}}` it reads, it runs the request with the plugin of
its tool, through runtime.execute as a container would, and sends back the Outcome. It exits when
its input closes, and (on Linux) is killed when the process that started it dies.

The pipe is the worker's original stdin and stdout; a step's own prints go to stderr, so they
cannot garble it. Each step runs with the process environment set to exactly the step's env (its
code and libraries see what they would see in a pod, and nothing a previous step set or changed),
and in the worker's own working directory.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import struct
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

from noetl import plugins
from noetl.plugins import runtime
from noetl.plugins.messages import Outcome, StepRequest

HEADER = struct.Struct(">I")
_PR_SET_PDEATHSIG = 1


def frame(message: Any) -> bytes:
    """One message, ready to write to the pipe."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


def read_frame(stream: BinaryIO) -> Any | None:
    """The next message from a blocking stream, or None at its end."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    return json.loads(body) if len(body) == size else None


def handle(message: Mapping[str, Any], home: str) -> Outcome:
    """Run one request message under its step's environment, back in `home` afterwards."""
    try:
        request = StepRequest.from_json(message.get("request"), env=dict(message.get("env") or {}))
    except ValueError as exc:
        return Outcome(ok=False, error=f"bad step request: {exc}")
    with _step_environment(request.env, home):
        return runtime.execute(plugins.run, request)


@contextmanager
def _step_environment(env: Mapping[str, str], home: str) -> Iterator[None]:
    _set_environ(env)
    try:
        yield
    finally:
        with suppress(OSError):  # a step may have removed it: then stay where we are
            os.chdir(home)


def _set_environ(env: Mapping[str, str]) -> None:
    # Only what differs: each change is a putenv, and a step's env is mostly the one before.
    current = dict(os.environ)
    if current == env:
        return
    for name in current.keys() - env.keys():
        del os.environ[name]
    for name, value in env.items():
        if current.get(name) != value:
            os.environ[name] = value


def serve(inbox: BinaryIO, outbox: BinaryIO) -> None:
    """Answer request frames from `inbox` with outcome frames on `outbox` until it closes."""
    home = os.getcwd()
    outbox.write(frame({"ready": True}))
    outbox.flush()
    while (message := read_frame(inbox)) is not None:
        reply = frame(handle(message, home).to_json())
        sys.stdout.flush()
        sys.stderr.flush()
        outbox.write(reply)
        outbox.flush()


def _die_with_parent() -> None:
    # Linux only: even a runner killed with SIGKILL must leave no worker behind.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent was gone before the request took effect
        os._exit(0)


def main() -> None:
    _die_with_parent()
    # Keep the pipe to ourselves: stdin becomes /dev/null and stdout goes where stderr goes.
    # Duplicated descriptors are not inherited, so a step's subprocesses cannot hold the pipe.
    inbox = os.fdopen(os.dup(0), "rb")
    outbox = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    serve(inbox, outbox)


if __name__ == "__main__":
    main()
