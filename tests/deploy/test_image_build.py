"""plugin-images/build.py itself: what it builds again, and several callers at once.

These build real images with podman, under a registry of their own (`localhost/noetl-build-test`)
that is removed afterwards, so they leave the images the other tests use alone.
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
    ensure_images()  # skips without podman, and leaves the shared cache warm
    yield REGISTRY
    listed = subprocess.run(
        [
            "podman",
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            f"reference={REGISTRY}/*",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if listed:
        subprocess.run(["podman", "rmi", "--force", *listed], capture_output=True, check=False)


def test_an_image_whose_inputs_are_unchanged_is_not_built_again(scratch_registry: str) -> None:
    first: list[str] = []
    tags = build.ensure_images("podman", scratch_registry, "1", ["shell"], log=first.append)
    assert tags == {"shell": f"{scratch_registry}/noetl-plugin-shell:1"}
    assert any(line.startswith("shell: built ") for line in first), first
    second: list[str] = []
    build.ensure_images("podman", scratch_registry, "1", ["shell"], log=second.append)
    assert f"shell: {tags['shell']} is up to date" in second, second
    assert not any(" built " in line for line in second), second


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
    built = [err for _, err in outputs if "python: built " in err]
    assert len(built) == 1, [err for _, err in outputs]


def test_an_unknown_image_is_refused_with_its_name() -> None:
    done = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--builder", "podman", "--only", "ruby"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2  # argparse's usage error
    assert "ruby" in done.stderr
