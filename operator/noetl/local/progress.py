"""How a local run shows its progress: live on a terminal (rich), plain lines otherwise.

Both reporters write to stderr, so stdout carries only the final result.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from rich.console import Console, Group


class Reporter(Protocol):
    def started(self, key: str, tool: str) -> None: ...
    def succeeded(self, key: str) -> None: ...
    def failed(self, key: str, error: str) -> None: ...
    def retrying(self, key: str, delay: float, error: str) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class PlainReporter:
    """One line per step event, with the time since the run began."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._begin = time.monotonic()
        self._started: dict[str, float] = {}

    def _line(self, text: str) -> None:
        self._stream.write(f"[{time.monotonic() - self._begin:7.2f}s] {text}\n")

    def started(self, key: str, tool: str) -> None:
        self._started[key] = time.monotonic()
        self._line(f"start   {key} ({tool})")

    def _took(self, key: str) -> str:
        return f"{time.monotonic() - self._started.pop(key, time.monotonic()):.2f}s"

    def succeeded(self, key: str) -> None:
        self._line(f"ok      {key} in {self._took(key)}")

    def failed(self, key: str, error: str) -> None:
        self._line(f"FAILED  {key} in {self._took(key)}: {error}")

    def retrying(self, key: str, delay: float, error: str) -> None:
        self._line(f"retry   {key} in {delay:.1f}s after: {error}")

    def note(self, text: str) -> None:
        """A line about the run itself (suspended, resumed, waiting for an approval)."""
        self._line(f"note    {text}")

    def close(self) -> None:
        self._stream.flush()


class LiveReporter(PlainReporter):
    """The plain lines scroll above a live panel of the steps running now."""

    def __init__(self, console: Console | None = None) -> None:
        # rich is imported only on a terminal: plain runs (CI, pipes) start faster without it.
        from rich.console import Console
        from rich.live import Live

        self._console = console or Console(stderr=True)
        super().__init__(self._console.file)  # type: ignore[arg-type]
        self._live = Live(
            self._panel(), console=self._console, refresh_per_second=8, transient=True
        )
        self._live.start()

    def _line(self, text: str) -> None:
        from rich.text import Text

        style = "red" if "FAILED" in text else "yellow" if text.startswith("retry") else ""
        self._console.print(Text(f"[{time.monotonic() - self._begin:7.2f}s] {text}", style=style))
        self._live.update(self._panel())

    def _panel(self) -> Group:
        from rich.console import Group
        from rich.text import Text

        now = time.monotonic()
        running = sorted(self._started.items(), key=lambda item: item[1])
        lines = [
            Text(f"  running {key} {now - since:5.1f}s", style="cyan")
            for key, since in running[:10]
        ]
        if len(running) > 10:
            lines.append(Text(f"  ... and {len(running) - 10} more", style="cyan"))
        return Group(*lines)

    def close(self) -> None:
        self._live.stop()


def make_reporter(quiet: bool = False) -> Reporter | None:
    if quiet:
        return None
    return LiveReporter() if sys.stderr.isatty() else PlainReporter()
