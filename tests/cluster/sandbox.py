"""Start one container's process with its volumes at their mount paths (standalone script).

Run as `python -I -S sandbox.py SPEC_JSON`, with the container's environment. SPEC_JSON holds
`argv`, `cwd`, `mounts` ([source, target, read_only], in order), `termination` (the file for
the termination message) and `created` (a file that lists the mount points this script made on
the host, for the agent to remove when it stops). The script enters a new mount namespace,
bind-mounts each source on its target (creating a missing target folder or file), and execs
`argv`, so the process sees its files where the pod spec put them while the host keeps its view.

Every source (and the termination file) is opened before the first mount: a volume mounted on
/tmp would otherwise hide a source that lives under /tmp. If the termination file is hidden that
way, NOETL_TERMINATION_LOG points the process at the descriptor still open for it.

Without permission for a mount namespace (not root, or a locked-down container), the script falls
back to rewriting: every argument and environment value that starts with a mount path gets the
source folder instead. Exit code 127 with a message on stderr when `argv` cannot be executed.
"""

import ctypes
import json
import os
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
TERMINATION_VAR = "NOETL_TERMINATION_LOG"

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(
        _libc.mount(source and source.encode(), target.encode(), None, flags, None),
        f"mount {source} on {target}",
    )


def _covered(path: str, targets: list[str]) -> bool:
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets)


def _isolate(mounts: list[list], spec: dict, env: dict[str, str]) -> None:
    """Bind every mount in a private mount namespace (raises OSError if not permitted)."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare")
    _mount(None, "/", MS_REC | MS_PRIVATE)
    # Opened in the new namespace: a bind mount from another namespace's path is refused.
    sources = [os.open(source, os.O_PATH) for source, _, _ in mounts]
    created = open(spec["created"], "a")  # noqa: SIM115 - must stay open past the mounts
    termination = spec["termination"]
    if _covered(termination, [target for _, target, _ in mounts]):
        descriptor = os.open(termination, os.O_WRONLY | os.O_CREAT, 0o644)
        os.set_inheritable(descriptor, True)
        env[TERMINATION_VAR] = f"/proc/self/fd/{descriptor}"
    targets = [target for _, target, _ in mounts]
    # The test's Python environment lives on the host; a volume over one of its folders (an
    # emptyDir on /tmp, when the checkout is under /tmp) must not hide the code the pod runs.
    kept = [
        (path, os.open(path, os.O_PATH)) for path in spec.get("keep", []) if _covered(path, targets)
    ]
    for (_, target, read_only), fd in zip(mounts, sources, strict=True):
        # By descriptor, not by path: an earlier mount may hide the source's path.
        _make_target(target, stat.S_ISDIR(os.fstat(fd).st_mode), created)
        _mount(f"/proc/self/fd/{fd}", target, MS_BIND | MS_REC)
        if read_only:
            _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
        os.close(fd)
    created.close()
    for path, fd in kept:
        os.makedirs(path, exist_ok=True)  # inside the volume, not on the host: nothing to note
        _mount(f"/proc/self/fd/{fd}", path, MS_BIND | MS_REC)
        os.close(fd)


def _make_target(target: str, directory: bool, created) -> None:
    """Create a missing mount point, noting each new path so the agent can remove it later."""
    missing = []
    path = target if directory else os.path.dirname(target)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        os.mkdir(path)
        created.write(path + "\n")
    if not directory and not os.path.exists(target):
        open(target, "a").close()
        created.write(target + "\n")
    created.flush()


def _rewrite(value: str, mounts: list[list]) -> str:
    for source, target, _ in mounts:
        if value == target or value.startswith(target.rstrip("/") + "/"):
            return source + value[len(target.rstrip("/")) :]
    return value


def main() -> int:
    spec = json.loads(sys.argv[1])
    argv, mounts, env = spec["argv"], spec["mounts"], dict(os.environ)
    if mounts:
        try:
            _isolate(mounts, spec, env)
        except OSError as error:
            print(f"node agent: no mount namespace ({error}); rewriting paths", file=sys.stderr)
            argv = [_rewrite(arg, mounts) for arg in argv]
            env = {name: _rewrite(value, mounts) for name, value in env.items()}
    try:
        os.makedirs(spec["cwd"], exist_ok=True)  # a runtime creates a missing workingDir too
        os.chdir(spec["cwd"])
        os.execvpe(argv[0], argv, env)
    except OSError as error:
        print(f"node agent: cannot run {argv[0]!r}: {error}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    sys.exit(main())
