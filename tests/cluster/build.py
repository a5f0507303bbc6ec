"""Build the test cluster's binaries from the Go module in tests/cluster/go, once per version.

`python -m tests.cluster.build` compiles kube-apiserver, kube-controller-manager, kube-scheduler,
etcd, kwok and helm with one `go build` (packages they share compile once), static
(CGO_ENABLED=0), with -trimpath and without symbol tables, into a cache outside the repository:
$NOETL_CLUSTER_CACHE or ~/.cache/noetl-cluster, in a folder named after the Kubernetes version
and a digest of go.mod, go.sum, the Go version and the flags. Binaries already there are not
built again. Go's own module and build caches are left where `go env` says, so a second build of
another version reuses them. The build also copies kwok's stock Stage definitions (data from the
kwok module, not code of this repository) next to the binaries, for simulated nodes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GO_MODULE = Path(__file__).resolve().parent / "go"

# Binary name -> Go package that builds it.
PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "etcd": "go.etcd.io/etcd/server/v3",
    "kwok": "sigs.k8s.io/kwok/cmd/kwok",
    "helm": "helm.sh/helm/v3/cmd/helm",
}

# kwok's stock stages, relative to its module: nodes turn Ready and keep their Lease; pods of
# Jobs run and complete; deleted pods go away.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
KWOK_STAGES_FILE = "kwok-stages.yaml"

Log = Callable[[str], None]


class BuildError(RuntimeError):
    """The binaries could not be built; the message says why."""


@dataclass
class BuildResult:
    bin_dir: Path
    built: list[str] = field(default_factory=list)
    seconds: float = 0.0


def module_versions() -> dict[str, str]:
    """Module path -> version, from the wrapper module's require and replace directives."""
    text = (GO_MODULE / "go.mod").read_text()
    versions = dict(re.findall(r"^\s*([\w./-]+) (v[\w.+-]+)(?: // indirect)?$", text, re.M))
    versions.update(re.findall(r"^\s*([\w./-]+) => [\w./-]+ (v[\w.+-]+)$", text, re.M))
    return versions


def kubernetes_version() -> str:
    return module_versions()["k8s.io/kubernetes"]


def ldflags() -> str:
    """Strip symbols (smaller, faster to link) and stamp the versions `--version` reports."""
    versions = module_versions()
    k8s = versions["k8s.io/kubernetes"]
    major, minor = k8s.lstrip("v").split(".")[:2]
    # helm reports the Kubernetes version its client libraries (k8s.io/client-go) speak.
    client_minor = versions["k8s.io/client-go"].split(".")[1]
    stamps = {
        "k8s.io/component-base/version.gitVersion": k8s,
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/component-base/version.buildDate": "1970-01-01T00:00:00Z",
        "helm.sh/helm/v3/internal/version.version": versions["helm.sh/helm/v3"],
        "helm.sh/helm/v3/internal/version.gitTreeState": "clean",
        "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor": "1",
        "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor": client_minor,
        "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor": "1",
        "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor": client_minor,
    }
    return " ".join(["-s", "-w", *(f"-X {name}={value}" for name, value in stamps.items())])


def cache_root() -> Path:
    """The cache folder, outside the repository, for binaries and images."""
    return Path(os.environ.get("NOETL_CLUSTER_CACHE", Path.home() / ".cache" / "noetl-cluster"))


def bin_dir() -> Path:
    """Where this version's binaries live (whether or not they are built yet)."""
    root = cache_root()
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((GO_MODULE / name).read_bytes())
    digest.update(ldflags().encode())
    digest.update(_go_version().encode())
    return root / f"{kubernetes_version()}-{digest.hexdigest()[:12]}" / "bin"


def missing() -> list[str]:
    """The binaries (and kwok's stages) not yet in the cache."""
    target = bin_dir()
    names = [name for name in PACKAGES if not (target / name).is_file()]
    if not (target / KWOK_STAGES_FILE).is_file():
        names.append(KWOK_STAGES_FILE)
    return names


def ensure_binaries(log: Log = print) -> BuildResult:
    """Build whatever is missing from the cache; raise BuildError with the reason on failure."""
    if shutil.which("go") is None:
        raise BuildError("the Go toolchain (`go`) is not on PATH")
    target = bin_dir()
    todo = missing()
    if not todo:
        log(f"cluster binaries: all present in {target}")
        return BuildResult(target)
    target.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"cluster binaries: building {', '.join(todo)} into {target}")
    binaries = [name for name in todo if name in PACKAGES]
    if binaries:
        _compile(binaries, target, log)
    if KWOK_STAGES_FILE in todo:
        _copy_kwok_stages(target / KWOK_STAGES_FILE)
    seconds = time.monotonic() - started
    log(f"cluster binaries: built {', '.join(todo)} in {seconds:.0f}s")
    return BuildResult(target, todo, seconds)


def _compile(names: list[str], target: Path, log: Log) -> None:
    packages = [PACKAGES[name] for name in names]
    log("cluster binaries: listing packages (downloads the modules not yet in Go's cache)")
    listed = time.monotonic()
    total = len(_go(["go", "list", "-deps", *packages]).split())
    log(f"cluster binaries: {total} packages listed in {time.monotonic() - listed:.0f}s")
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        command = ["go", "build", "-v", "-trimpath", "-ldflags", ldflags(), "-o", f"{scratch}/"]
        compiled = _run([*command, *packages], log, f"compiling (at most {total} packages)", total)
        log(f"cluster binaries: compiled {compiled} packages")
        for name, package in zip(names, packages, strict=True):
            # `go build -o dir/` names a binary after the last path element, skipping a /vN.
            parts = package.split("/")
            built = parts[-2] if re.fullmatch(r"v\d+", parts[-1]) else parts[-1]
            os.replace(Path(scratch) / built, target / name)


def _copy_kwok_stages(destination: Path) -> None:
    kwok_dir = Path(_go(["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"]).strip())
    documents = [(kwok_dir / stage).read_text().strip() for stage in KWOK_STAGES]
    destination.write_text("\n---\n".join(documents) + "\n")


def _environment() -> dict[str, str]:
    return {**os.environ, "CGO_ENABLED": "0"}


def _go(command: list[str]) -> str:
    result = subprocess.run(
        command, cwd=GO_MODULE, env=_environment(), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BuildError(f"`{' '.join(command)}` failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def _go_version() -> str:
    if shutil.which("go") is None:
        return "none"
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()


def _run(command: list[str], log: Log, what: str, total: int = 0) -> int:
    """Run a Go command, logging progress every 30 s; return how many lines it printed.

    `go build -v` prints each package as it compiles, which is the progress measure. Other lines
    (errors) are kept for the failure message.
    """
    log(f"cluster binaries: {what}")
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=GO_MODULE,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(30):
            share = f", {len(lines)}/{total} packages" if total else ""
            log(f"cluster binaries: {what}: {time.monotonic() - started:.0f}s{share}")

    ticker = threading.Thread(target=heartbeat, daemon=True)
    ticker.start()
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip())
    process.wait()
    done.set()
    ticker.join()
    if process.returncode != 0:
        tail = "\n".join(line for line in lines[-40:] if " " in line or ":" in line)
        raise BuildError(f"`{' '.join(command[:2])}` failed (exit {process.returncode}):\n{tail}")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-dir", action="store_true", help="print the binaries' folder only")
    args = parser.parse_args(argv)
    if args.print_dir:
        print(bin_dir())
        return 0
    try:
        result = ensure_binaries(lambda line: print(line, flush=True))
    except BuildError as error:
        print(f"cluster binaries: build failed: {error}", file=sys.stderr)
        return 1
    print(result.bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
