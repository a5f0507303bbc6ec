"""NoETL's images for tests and benchmarks: ensured by plugin-images/build.py, run with podman.

`ensure_images()` makes sure every image is in root's podman storage (containers-storage, under
/var/lib/containers), built or found up to date, and returns {image: pinned tag}:
`localhost/noetl-plugin-<kind>:<digest>`, `localhost/noetl-operator:<digest>`, named after a
digest of the image's inputs, so that a test runs this checkout's code even while another
checkout on the machine builds its own. The same images also carry the tags the chart and the
operator use by default (`ghcr.io/noetl/noetl-plugin-<kind>:<version>`), which every checkout
shares. A warm call takes about a second; concurrent calls take turns on a file lock. Without
podman the tests that need it skip, unless NOETL_CONTAINERS_REQUIRED=1 (set by .ci/run) makes
that an error.

`podman_command()` is the start of a `podman run` that works on machines like CI's: runc as the
runtime (crun refuses hybrid cgroup layouts), cgroupfs where systemd does not manage cgroups, and
resource limits no higher than this process's own, since such a machine cannot raise them.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "plugin-images" / "build.py"
REQUIRED_VAR = "NOETL_CONTAINERS_REQUIRED"
# What a step pod gives its container, as podman options: an emptyDir-like /tmp on a read-only
# root (the pod's user is added per run).
STEP_POD = ["--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,mode=1777"]


def _load_build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noetl_images_build", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


build = _load_build_script()


def missing_podman() -> str | None:
    """Why the images cannot be built and run here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (.ci/setup installs it on Debian)"
    if os.geteuid() != 0:
        return "the images live in root's podman storage: run as root"
    return None


def ensure_images() -> dict[str, str]:
    """{image: pinned tag} of every image in podman's storage; skips the test without podman."""
    reason = missing_podman()
    if reason is not None:
        if os.environ.get(REQUIRED_VAR) == "1":
            pytest.fail(f"{REQUIRED_VAR}=1 but {reason}")
        pytest.skip(reason)
    try:
        tags: dict[str, str] = build.ensure_images("podman", pinned=True)
    except build.BuildError as exc:
        pytest.fail(f"the images could not be built: {exc}")
    return tags


def podman_command() -> list[str]:
    """`podman run --rm` with the runtime, cgroup manager and limits this machine accepts."""
    argv = ["podman"]
    if shutil.which("runc"):
        argv += ["--runtime", "runc"]
    if not Path("/run/systemd/system").is_dir():
        argv += ["--cgroup-manager", "cgroupfs"]
    argv += ["run", "--rm"]
    # Never more processes than the kernel has pids: this machine refuses an nproc limit above.
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    argv += ["--ulimit", f"nofile={_limits(resource.RLIMIT_NOFILE, 1 << 20)}"]
    argv += ["--ulimit", f"nproc={_limits(resource.RLIMIT_NPROC, pid_max)}"]
    return argv


def _limits(kind: int, ceiling: int) -> str:
    """`soft:hard` of this process's limit of a kind, neither above `ceiling`."""
    soft, hard = (
        ceiling if value == resource.RLIM_INFINITY else min(value, ceiling)
        for value in resource.getrlimit(kind)
    )
    return f"{soft}:{hard}"
