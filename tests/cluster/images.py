"""What a container runs on the node agent, since there is no image to pull: a local command.

`default_command` maps NoETL's own images to modules of the Python that runs the tests:
`.../noetl-plugin-<kind>:<tag>` runs `python -m noetl.plugins.<kind> ARGS`, `.../noetl-operator`
runs `python -m noetl ARGS`; any other image runs the container's `command + args` as given
(`busybox` with `sh -c ...` works, `sh` is on the machine). `image_commands` builds a mapping of
one's own, for tests that need other images.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Container spec (a dict, as the API serves it) -> argv of the local process.
CommandFor = Callable[[Mapping[str, Any]], list[str]]

PLUGIN_PREFIX = "noetl-plugin-"


class NoCommand(ValueError):
    """The container names no command and its image has no local mapping."""


def image_name(image: str) -> str:
    """`registry:5000/org/noetl-plugin-http:1.0@sha256:...` -> `noetl-plugin-http`."""
    without_digest = image.split("@", 1)[0]
    last = without_digest.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def default_command(container: Mapping[str, Any]) -> list[str]:
    name = image_name(container.get("image", ""))
    args = list(container.get("args") or [])
    if name.startswith(PLUGIN_PREFIX):
        kind = name.removeprefix(PLUGIN_PREFIX).replace("-", "_")
        return [sys.executable, "-m", f"noetl.plugins.{kind}", *args]
    if name == "noetl-operator":
        return [sys.executable, "-m", "noetl", *args]
    argv = [*(container.get("command") or []), *args]
    if not argv:
        raise NoCommand(f"image {container.get('image')!r} has no local entrypoint: give a command")
    return argv


def image_commands(
    prefixes: Mapping[str, Sequence[str]], fallback: CommandFor = default_command
) -> CommandFor:
    """A mapping where image name (no registry, no tag) -> argv prefix; `args` are appended."""

    def command_for(container: Mapping[str, Any]) -> list[str]:
        prefix = prefixes.get(image_name(container.get("image", "")))
        if prefix is None:
            return fallback(container)
        return [*prefix, *(container.get("args") or [])]

    return command_for
