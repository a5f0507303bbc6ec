"""Errors about a playbook, each naming the path of the bad field and why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PlaybookError:
    """One problem: `path` is where it is (e.g. `spec.workflow[3].next[0].then[0].step`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PlaybookInvalid(ValueError):
    """A playbook that cannot run; carries every problem found, not just the first."""

    def __init__(self, errors: Iterable[PlaybookError], source: str = "") -> None:
        self.errors = list(errors)
        self.source = source
        heading = f"{source}: invalid playbook" if source else "invalid playbook"
        super().__init__(heading + "".join(f"\n  {error}" for error in self.errors))


def join_path(*parts: str | int) -> str:
    """Build a field path: names join with dots, list indexes go in brackets."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part:
            path += f".{part}" if path else part
    return path
