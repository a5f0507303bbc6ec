"""Images on the node: what local image storage holds, and what a container runs from its image.

The node pulls nothing (no registry is reachable from the tests): an image is either in the
machine's containers-storage (put there by `podman import`, `podman load` or `buildah`) or it is
not. `LocalImages.config` reads an image's entrypoint, cmd, user and working directory;
`pull_failure` gives the waiting state a kubelet reports for an absent image under the
container's `imagePullPolicy`; `process_argv` applies Kubernetes' rules for `command` and `args`
over the image's entrypoint and cmd.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.cluster.pod_config import expand


@dataclass(frozen=True)
class ImageConfig:
    image_id: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    working_dir: str


class LocalImages:
    """Reads image configurations from local storage with `podman image inspect`."""

    def __init__(self, podman: Sequence[str]) -> None:
        self.podman = list(podman)

    def config(self, image: str) -> ImageConfig | None:
        """The image's configuration, or None when local storage does not hold it."""
        result = subprocess.run(
            [*self.podman, "image", "inspect", "--format=json", image],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            return None
        (found,) = json.loads(result.stdout)
        config = found.get("Config") or {}
        return ImageConfig(
            image_id=f"sha256:{found['Id']}",
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            user=config.get("User") or "",
            working_dir=config.get("WorkingDir") or "",
        )


def pull_failure(container: Mapping[str, Any], attempts: int) -> dict[str, str]:
    """The waiting state for an image that is not present, after `attempts` failed pulls."""
    image = container.get("image", "")
    if container.get("imagePullPolicy") == "Never":
        return {
            "reason": "ErrImageNeverPull",
            "message": f'Container image "{image}" is not present with pull policy of Never',
        }
    if attempts % 2 == 0:  # a kubelet alternates between the error and the back-off
        return {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}
    return {
        "reason": "ErrImagePull",
        "message": (
            f'failed to pull image "{image}": not in local image storage and this node '
            "pulls nothing (no registry is reachable)"
        ),
    }


class NoCommand(ValueError):
    """Neither the container nor its image says what to run."""


def process_argv(
    container: Mapping[str, Any], image: ImageConfig, env: Mapping[str, str]
) -> list[str]:
    """What the container runs: `command` replaces the entrypoint (and drops the image's cmd),
    `args` replace the cmd; `$(VAR)` references in `command` and `args` are expanded."""
    command = [expand(part, env) for part in container.get("command") or []]
    args = [expand(part, env) for part in container.get("args") or []]
    entrypoint = command or list(image.entrypoint)
    rest = args or ([] if command else list(image.cmd))
    argv = entrypoint + rest
    if not argv:
        raise NoCommand(f"no command specified for container {container.get('name')!r}")
    return argv
