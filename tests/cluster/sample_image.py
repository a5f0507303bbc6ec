"""A small general-purpose image for the harness's own tests: Debian with a shell and Python.

`ensure_sample_image()` makes `localhost/test-cluster/debian:<key>` present in local image
storage: Debian bookworm `minbase` (sh, coreutils) with python3 and python3-kubernetes (for an
in-cluster client), made by mmdebstrap from Debian's mirror and imported with `podman import`.
The key is a digest of the inputs (suite, packages, image config); the root filesystem tarball
is kept in the cluster cache (see build.py), so a machine builds it once, in about three minutes,
and re-imports it in seconds when local storage was emptied. No USER: the image runs as root
unless a pod says otherwise, like most public images.

    python -m tests.cluster.sample_image        # build or reuse, print the tag
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.cluster.build import cache_root
from tests.cluster.runtime import PODMAN

SUITE = "bookworm"
PACKAGES = ("python3", "python3-kubernetes")
CHANGES = (
    'CMD ["/bin/sh"]',
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
)
REPOSITORY = "localhost/test-cluster/debian"


class ImageError(RuntimeError):
    """The sample image could not be made."""


def key() -> str:
    inputs = json.dumps([SUITE, "minbase", PACKAGES, CHANGES])
    return hashlib.sha256(inputs.encode()).hexdigest()[:12]


def tag() -> str:
    return f"{REPOSITORY}:{key()}"


def ensure_sample_image(log: Callable[[str], None] = print) -> str:
    """The tag of the sample image, imported (and built first if not cached)."""
    name = tag()
    present = subprocess.run([*PODMAN, "image", "exists", name], check=False)
    if present.returncode == 0:
        return name
    tarball = cache_root() / "images" / f"debian-{key()}.tar"
    if not tarball.exists():
        _build_rootfs(tarball, log)
    log(f"sample image: importing {tarball.name}")
    changes = [f"--change={change}" for change in CHANGES]
    _run([*PODMAN, "import", "--quiet", *changes, str(tarball), name])
    return name


def _build_rootfs(tarball: Path, log: Callable[[str], None]) -> None:
    if shutil.which("mmdebstrap") is None:
        raise ImageError("mmdebstrap is not installed (Debian: apt-get install mmdebstrap)")
    log(f"sample image: building Debian {SUITE} with {', '.join(PACKAGES)} (about 3 minutes)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    _run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=minbase",
            "--mode=root",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(partial),
        ]
    )
    partial.rename(tarball)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageError(f"{argv[0]} {argv[1]} failed: {result.stderr.strip()[-2000:]}")


if __name__ == "__main__":
    try:
        print(ensure_sample_image(lambda line: print(line, file=sys.stderr)))
    except ImageError as error:
        sys.exit(str(error))
