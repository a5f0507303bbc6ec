"""The step server: a warm parent that forks a fresh process for every step and never runs one.

Started as `python -m noetl.plugins.worker` by noetl.local.workers. It imports the runtime and the
plugins once (a plugin's heavy library on the first step of its kind), then for each step forks
a child that runs it and exits: a step sees no state another step left (patched modules, the
decimal context, the umask, threads, env) and pays only for a fork, not an interpreter start.
The server stays single-threaded, with no event loop, and never runs user code, so each fork
copies a quiet process. It keeps one child forked ahead of need (the spare), waiting for its
request on a pipe, so a step does not wait for its own fork.

Messages are frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON, on the
server's original stdin (in) and stdout (out):

    out  {"ready": true}                                     once, when the server is up
    in   {"run": ID, "request": {...}, "env": {...}, "secrets": {...}}
    in   {"kill": ID}                                        kill that step's processes now
    out  {"id": ID, "exit": CODE, "outcome": {...} | null}  the step's outcome, once written
                                                             (exit null: it is still ending);
                                                             outcome null: it died without one

Each step leads a session of its own and dies with the server (PR_SET_PDEATHSIG). When a step's
process ends, whatever it left running in its session is killed. The server is a child
subreaper: processes a step let go of become its children, and when its input closes (the runner
exited, was killed, or closed it) it kills every step and every such process before it exits.
A step's prints go to the server's stderr, never into the pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import importlib
import json
import os
import selectors
import signal
import struct
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from noetl import plugins
from noetl.plugins import python, runtime, shell  # noqa: F401  (imported once, for every fork)
from noetl.plugins.messages import Outcome, StepRequest

HEADER = struct.Struct(">I")
# Bound now: a step may patch the json module in its process, and its outcome must still travel.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_decode = json.JSONDecoder().decode
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def frame(message: Any) -> bytes:
    """One message, ready to write to the pipe."""
    body = _encode(message).encode()
    return HEADER.pack(len(body)) + body


class FrameBuffer:
    """Bytes as they arrive, cut into the messages they hold."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, chunk: bytes) -> Iterator[Any]:
        self._data += chunk
        while len(self._data) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._data)
            if len(self._data) < HEADER.size + size:
                return
            body = bytes(self._data[HEADER.size : HEADER.size + size])
            del self._data[: HEADER.size + size]
            yield _decode(body.decode())


@functools.cache
def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> bool:
    """Linux's prctl(2); False where there is none."""
    try:
        return bool(_libc().prctl(option, value) == 0)
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int) -> None:
    """Be killed when `parent` ends, and end now if it already has."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it ended before the request took effect
        os._exit(1)


def handle(message: Mapping[str, Any]) -> Outcome:
    """Run one request message with the plugin of its tool, as a container would."""
    try:
        request = StepRequest.from_json(
            message.get("request"),
            env=dict(message.get("env") or {}),
            secrets=dict(message.get("secrets") or {}),
        )
    except ValueError as exc:
        return Outcome(ok=False, error=f"bad step request: {exc}")
    os.environ.clear()
    os.environ.update(request.env)  # what the step's code and libraries see, as in a pod
    return runtime.execute(plugins.run, request)


@dataclass
class _Spare:
    """A child forked ahead of need, waiting for a request frame on its pipe."""

    pid: int
    requests: int  # the write end: the request frame, then closed
    results: int  # the read end of the pipe the child writes its outcome frame to


@dataclass
class _Step:
    ident: Any
    pid: int
    results: int  # the read end of the pipe the step writes its outcome frame to
    received: bytearray = field(default_factory=bytearray)
    reading: bool = True
    reported: bool = False


class Server:
    """The fork loop: requests in, one child per step, ends reported back."""

    def __init__(self, inbox: int, outbox: BinaryIO) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._requests = FrameBuffer()
        self._steps: dict[int, _Step] = {}  # by pid
        self._pids: dict[Any, int] = {}  # by id
        # A plugin whose library loads slowly is imported here at its kind's first step.
        self._imported = {"python", "shell"}
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._spare: _Spare | None = None

    def serve(self) -> None:
        """Answer requests until the input closes, then leave no process behind."""
        signal.set_wakeup_fd(self._wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the selector
        self._selector.register(self._inbox, selectors.EVENT_READ, self._read_requests)
        self._selector.register(self._wake_read, selectors.EVENT_READ, self._reap)
        _libc()
        gc.freeze()
        self._spare = self._fork_spare()
        self._send({"ready": True})
        try:
            while True:
                for key, _ in self._selector.select():
                    key.data()
        except (EOFError, BrokenPipeError):
            pass
        finally:
            self._kill_everything()

    def _send(self, message: Any) -> None:
        self._outbox.write(frame(message))
        self._outbox.flush()

    def _read_requests(self) -> None:
        chunk = os.read(self._inbox, 1 << 16)
        if not chunk:
            raise EOFError
        for message in self._requests.feed(chunk):
            if "kill" in message:
                pid = self._pids.get(message["kill"])
                if pid is not None:
                    _kill_group(pid)
            else:
                self._start(message)

    def _start(self, message: Mapping[str, Any]) -> None:
        tool = (message.get("request") or {}).get("tool")
        if tool in plugins.KINDS and tool not in self._imported:
            self._imported.add(tool)
            with contextlib.suppress(Exception):  # a missing library fails the step, not us
                importlib.import_module(f"noetl.plugins.{tool}")
            gc.freeze()  # a child's collector then leaves the server's objects (and pages) be
            self._drop_spare()  # forked before the import: it would import again per step
        child = self._hand_over(frame(message))
        os.set_blocking(child.results, False)
        step = _Step(message.get("run"), child.pid, child.results)
        self._steps[child.pid] = step
        self._pids[step.ident] = child.pid
        self._selector.register(child.results, selectors.EVENT_READ, lambda: self._receive(step))
        self._spare = self._fork_spare()  # ready for the next step while this one runs

    def _hand_over(self, request: bytes) -> _Spare:
        """Give a request to the spare (forking one if there is none); the spare is then spent."""
        while True:
            child, self._spare = self._spare or self._fork_spare(), None
            try:
                view = memoryview(request)
                while view:
                    view = view[os.write(child.requests, view) :]
                return child
            except BrokenPipeError:  # it died while it waited: its exit is reaped as any other
                os.close(child.results)
            finally:
                os.close(child.requests)

    def _fork_spare(self) -> _Spare:
        requests_read, requests_write = os.pipe()
        results_read, results_write = os.pipe()
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(requests_write)
            os.close(results_read)
            self._run_child(requests_read, results_write, server)
        os.close(requests_read)
        os.close(results_write)
        return _Spare(pid, requests_write, results_read)

    def _drop_spare(self) -> None:
        if self._spare is not None:
            os.close(self._spare.requests)  # it reads the end of its input and exits
            os.close(self._spare.results)
            self._spare = None

    def _run_child(self, requests: int, results: int, server: int) -> None:
        code = 70
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self._selector.close()
            for fd in (self._inbox, self._wake_read, self._wake_write, self._outbox.fileno()):
                os.close(fd)
            for other in self._steps.values():
                os.close(other.results)
            os.setsid()
            die_with_parent(server)
            with os.fdopen(requests, "rb") as inbox:
                request = inbox.read()
            for message in FrameBuffer().feed(request):  # none: a spare no longer needed
                reply = frame(handle(message).to_json())
                with os.fdopen(results, "wb") as out:
                    out.write(reply)
            code = 0
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)  # leftover threads, atexit and buffers of the step's code: not ours

    def _receive(self, step: _Step) -> None:
        if self._steps.get(step.pid) is not step:
            return  # it ended earlier in this round of events: its pipe is closed
        with contextlib.suppress(BlockingIOError):
            chunk = os.read(step.results, 1 << 16)
            if chunk:
                step.received += chunk
                if not step.reported and _whole_frame(step.received):
                    # Said at once: the process's exit (and its reaping) need not be waited for.
                    self._report(step, None)
            else:
                self._selector.unregister(step.results)
                step.reading = False

    def _reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 512):
                pass
        while True:
            try:
                # WNOWAIT: the pid stays ours until its session is killed, so it names nothing else.
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if ended is None:
                return
            step = self._steps.get(ended.si_pid)
            if step is not None:
                _kill_group(step.pid)  # what the step left running in its session
            elif self._spare is not None and self._spare.pid == ended.si_pid:
                self._drop_spare()  # it died while it waited (killed from outside)
            _, status = os.waitpid(ended.si_pid, 0)
            if step is not None:
                self._finish(step, os.waitstatus_to_exitcode(status))

    def _finish(self, step: _Step, exit_code: int) -> None:
        self._receive_rest(step)
        del self._steps[step.pid], self._pids[step.ident]
        if step.reading:
            self._selector.unregister(step.results)
        os.close(step.results)
        if not step.reported:
            self._report(step, exit_code)

    def _report(self, step: _Step, exit_code: int | None) -> None:
        step.reported = True
        try:
            outcome = next(FrameBuffer().feed(bytes(step.received)), None)
        except ValueError:  # the step garbled its own reply: as good as none
            outcome = None
        self._send({"id": step.ident, "exit": exit_code, "outcome": outcome})

    def _receive_rest(self, step: _Step) -> None:
        # The step has ended: what it wrote is all in the pipe (a process it forked may hold
        # the pipe open, so read what is there rather than up to the end).
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(step.results, 1 << 16):
                step.received += chunk

    def _kill_everything(self) -> None:
        for pid in self._steps:
            _kill_group(pid)
        # Killing a process hands its children to us (a subreaper): repeat until none is left.
        while children := _children():
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-1, 0)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def _whole_frame(data: bytearray) -> bool:
    return len(data) >= HEADER.size and len(data) >= HEADER.size + HEADER.unpack_from(data)[0]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _children() -> list[int]:
    """This process's children (ended but not reaped ones included), from /proc (if any)."""
    me, found = os.getpid(), list[int]()
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return found  # no /proc: only the steps' own sessions were killed
    for entry in entries:
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # The name in (...) may hold spaces: the parent pid is the second field after.
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                    found.append(int(entry.name))
    return found


def main() -> None:
    prctl(_PR_SET_CHILD_SUBREAPER, 1)
    # Keep the pipe to ourselves: stdin becomes /dev/null and stdout goes where stderr goes.
    # Duplicated descriptors are not inherited, so a step's subprocesses cannot hold the pipe.
    inbox = os.dup(0)
    outbox = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    Server(inbox, outbox).serve()


if __name__ == "__main__":
    main()
