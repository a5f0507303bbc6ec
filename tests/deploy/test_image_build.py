"""plugin-images/build.py itself: what it builds again, and several callers at once.

These tag real images with podman under a registry of their own (`localhost/noetl-build-test`),
untagged afterwards, so they leave the tags the other tests use alone.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.images import BUILD_SCRIPT, build, ensure_images

pytestmark = pytest.mark.containers

REGISTRY = "localhost/noetl-build-test"


@pytest.fixture
def scratch_registry() -> Iterator[str]:
    ensure_images()  # skips without podman, and leaves the images of this checkout built
    yield REGISTRY
    listed = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for tag in listed:
        if tag.startswith(f"{REGISTRY}/"):
            subprocess.run(["podman", "untag", tag, tag], capture_output=True, check=False)


def test_images_with_unchanged_inputs_are_tagged_not_built(scratch_registry: str) -> None:
    pinned = ensure_images()["shell"]
    first: list[str] = []
    tags = build.ensure_images("podman", scratch_registry, "1", ["shell"], log=first.append)
    assert tags == {"shell": f"{scratch_registry}/noetl-plugin-shell:1"}
    assert f"shell: {tags['shell']} tagged from the cache ({pinned})" in first, first
    second: list[str] = []
    again = build.ensure_images(
        "podman", scratch_registry, "1", ["shell"], pinned=True, log=second.append
    )
    assert again == {"shell": pinned}
    assert f"shell: {tags['shell']} is up to date" in second, second


def test_callers_at_once_take_turns_and_get_the_same_images(scratch_registry: str) -> None:
    argv = [sys.executable, str(BUILD_SCRIPT), "--builder", "podman", "--registry"]
    argv += [scratch_registry, "--version", "2", "--only", "python"]
    callers = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [caller.communicate(timeout=600) for caller in callers]
    assert [caller.returncode for caller in callers] == [0, 0, 0], [err for _, err in outputs]
    assert {out for out, _ in outputs} == {f"{scratch_registry}/noetl-plugin-python:2\n"}
    worked = [err for _, err in outputs if "is up to date" not in err.split("python: ", 1)[1]]
    assert len(worked) == 1, [err for _, err in outputs]


def test_an_unknown_image_is_refused_with_its_name() -> None:
    done = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--builder", "podman", "--only", "ruby"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2  # argparse's usage error
    assert "ruby" in done.stderr
