"""The end of what a step printed, kept with its outcome so that it outlives the step's pod.

While a plugin runs, `OutputTail` stands in for `sys.stdout` and `sys.stderr`: every write goes
on at once to where it went before (the pod's log, or the local step server's stderr) and the
last WINDOW_CHARS characters are kept. A plugin whose output does not pass through them (a
shell command's, captured for its result) adds it with `record`. What bypasses Python's streams
(a subprocess a python step starts, writes to `sys.stdout.buffer`) still reaches the log, but
not the tail: catching it would take a thread or a process of the runtime's own beside the
step's code, which the step could see (and a fork warns about).

`bounded` cuts a text to the last TAIL_LINES lines and at most TAIL_BYTES bytes: the one bound
of a kept tail, locally and on a cluster. It is small on purpose: on a cluster the tail travels
in the container's termination message beside the result (envelope.py), and is cut further
there when the result leaves it less room. The runtime masks the tail with the step's secrets
before it bounds it (runtime.execute); the window is far longer than the tail, so a secret cut
in two at the window's start falls in the part that is dropped.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any, TextIO

TAIL_LINES = 50
TAIL_BYTES = 2048
WINDOW_CHARS = 64 * 1024  # kept while the step runs: room to mask before the tail is cut

_active: OutputTail | None = None


def bounded(text: str) -> str:
    """The last TAIL_LINES lines of `text`, and of those at most the last TAIL_BYTES bytes."""
    lines = text.rstrip("\n").split("\n")[-TAIL_LINES:]
    kept = "\n".join(lines).encode()[-TAIL_BYTES:]
    # A cut in the middle of a character leaves its continuation bytes: drop them.
    return kept.decode("utf-8", errors="ignore")


def record(text: str) -> None:
    """Add output the step produced without printing it to the tail being kept, if any."""
    if _active is not None and text:
        _active.keep(text if text.endswith("\n") else text + "\n")


class OutputTail:
    """Keep what is written to sys.stdout and sys.stderr during a `with`; `text()` after."""

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._size = 0
        self._streams: tuple[TextIO, TextIO] | None = None

    def __enter__(self) -> OutputTail:
        global _active
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self)
        sys.stderr = _Tee(sys.stderr, self)
        _active = self
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        global _active
        _active = None
        assert self._streams is not None
        sys.stdout, sys.stderr = self._streams

    def keep(self, text: str) -> None:
        self._chunks.append(text)
        self._size += len(text)
        if self._size > 2 * WINDOW_CHARS:  # cut now and then, not on every write
            self._chunks = [self.text()]
            self._size = len(self._chunks[0])

    def text(self) -> str:
        """What was kept (the whole window: the caller masks it, then bounds it)."""
        return "".join(self._chunks)[-WINDOW_CHARS:]


class _Tee:
    """A text stream that writes through to another and has the tail keep a copy."""

    def __init__(self, stream: TextIO, tail: OutputTail) -> None:
        self._stream = stream
        self._tail = tail

    def write(self, text: str) -> int:
        written = self._stream.write(text)  # what it refuses (bytes, say) is not kept either
        self._tail.keep(text)
        return written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        # Everything else (flush, fileno, buffer, encoding, isatty...) is the stream's own.
        return getattr(self._stream, name)
