"""Container logs in the CRI file format, as the container runtime writes them, read back the
way `kubectl logs` asks for them (tailLines, limitBytes, sinceSeconds, sinceTime, timestamps,
follow).

Each line of the file is `<RFC 3339 nano timestamp> <stdout|stderr> <F|P> <content>`: F ends a
line, P is a piece of a line that the process had not finished when its output ended.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    timestamp: str
    content: bytes  # with its newline when the line was complete

    def render(self, timestamps: bool) -> bytes:
        return (self.timestamp.encode() + b" " + self.content) if timestamps else self.content


def _parse(raw: bytes) -> Entry:
    timestamp, _stream, tag, content = raw.rstrip(b"\n").split(b" ", 3)
    return Entry(timestamp.decode(), content + (b"\n" if tag == b"F" else b""))


def entries(path: Path) -> list[Entry]:
    if not path.exists():
        return []
    with path.open("rb") as log:
        return [_parse(raw) for raw in log if raw.endswith(b"\n")]


def text(path: Path) -> bytes:
    """The whole log as the process wrote it."""
    return b"".join(entry.content for entry in entries(path))


@dataclass(frozen=True)
class LogQuery:
    """The query parameters of the kubelet's /containerLogs endpoint."""

    follow: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    timestamps: bool = False
    since: str | None = None  # RFC 3339, from sinceTime or now - sinceSeconds

    @classmethod
    def from_params(cls, params: dict[str, list[str]]) -> LogQuery:
        def one(name: str) -> str | None:
            return params.get(name, [None])[-1]

        since = one("sinceTime")
        if one("sinceSeconds"):
            moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
                seconds=int(one("sinceSeconds") or 0)
            )
            since = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        tail, limit = one("tailLines"), one("limitBytes")
        return cls(
            follow=one("follow") == "true",
            tail_lines=int(tail) if tail else None,
            limit_bytes=int(limit) if limit else None,
            timestamps=one("timestamps") == "true",
            since=since,
        )


def read(path: Path, query: LogQuery, running: Callable[[], bool]) -> Iterator[bytes]:
    """The chunks to send for `query`; with follow, until the container stops writing."""
    selected = entries(path)
    if query.since:
        since = _normalise(query.since)
        selected = [entry for entry in selected if _normalise(entry.timestamp) >= since]
    if query.tail_lines is not None:
        selected = selected[-query.tail_lines :] if query.tail_lines else []
    budget = query.limit_bytes
    seen = len(entries(path))
    for entry in selected:
        chunk = entry.render(query.timestamps)
        if budget is not None:
            chunk, budget = chunk[:budget], budget - len(chunk)
        yield chunk
        if budget is not None and budget <= 0:
            return
    while query.follow:
        alive = running()
        fresh = entries(path)[seen:]
        seen += len(fresh)
        for entry in fresh:
            yield entry.render(query.timestamps)
        if not alive and not fresh:
            return
        time.sleep(0.2)


def _normalise(timestamp: str) -> str:
    """RFC 3339 in UTC with microseconds, so that timestamps compare as strings."""
    # Python 3.11 parses at most microseconds; the API may send nanoseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", timestamp).replace("Z", "+00:00")
    moment = datetime.datetime.fromisoformat(trimmed)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
