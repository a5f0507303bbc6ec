"""Builds NoETL's images (plugin-images/*.Dockerfile) with docker, podman or buildah, cached.

Every image is built FROM noetl-base: Debian bookworm-slim with Debian's python3 (3.11) and the
user 65532. No Python package is fetched inside a build. This script downloads the wheels on the
host, once per architecture (a wheelhouse for CPython 3.11 on manylinux), installs each image's
share of them into a directory tree, and the Dockerfiles copy those trees and the noetl sources
from a build context it prepares. So a build reaches nothing but Debian's archive, and every
image holds the same versions.

Nothing is built twice: each image is labelled with a digest of its inputs (its Dockerfile, its
base, its packages, the noetl sources) and tagged twice, with its version tag
(`ghcr.io/noetl/noetl-plugin-shell:0.1.0`) and with a pinned tag named after that digest
(`localhost/noetl-plugin-shell:<16 hex digits>`). An image whose pinned tag exists is not built
again, at most tagged, so a warm run costs two `inspect`s per image. Version tags are shared by
every checkout on a machine; the pinned ones always name the same content, so tests use them.
When Debian's image is missing and cannot be pulled (no registry reachable), it is made with
mmdebstrap and imported under its official name, so the Dockerfiles build unchanged. Runs are
serialised by a file lock: any number of processes may ask for the images at once.

`ensure_images()` is the entry point for tests; `python plugin-images/build.py --help` for people
and for `make images`. It prints what it does to stderr and the image names to stdout.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = ROOT / "plugin-images"
SOURCES = ROOT / "operator" / "noetl"
PYPROJECT = ROOT / "pyproject.toml"

DEBIAN_IMAGE = "docker.io/library/debian:bookworm-slim"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# What the official slim images leave out: documentation, manuals, translations.
DEBIAN_SLIM_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
)
PYTHON_VERSION = "3.11"  # Debian bookworm's python3: the wheels are chosen for it
OLDEST_GLIBC, NEWEST_GLIBC = 17, 36  # manylinux_2_17 .. bookworm's glibc 2.36
INPUTS_LABEL = "io.noetl.image.inputs"
DEFAULT_REGISTRY = "ghcr.io/noetl"
BUILDERS = ("docker", "podman", "buildah")
ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class Image:
    """One Dockerfile of plugin-images/ and the distributions it installs besides noetl."""

    name: str
    # Names as in pyproject's dependencies; None: all of them. The base holds no Python package.
    packages: tuple[str, ...] | None = ()

    @property
    def repository(self) -> str:
        if self.name in ("base", "operator"):
            return f"noetl-{self.name}"
        return f"noetl-plugin-{self.name}"

    @property
    def dockerfile(self) -> Path:
        return DOCKERFILES / f"{self.name}.Dockerfile"

    def tag(self, registry: str, version: str) -> str:
        return f"{registry}/{self.repository}:{version}"


BASE = Image("base")
IMAGES = (
    BASE,
    Image("shell"),
    Image("python"),
    Image("http", ("httpx",)),
    Image("postgres", ("psycopg",)),
    Image("duckdb", ("duckdb",)),
    Image("operator", None),
)
PINNED_REGISTRY = "localhost"


def pinned_tag(image: Image, inputs: str) -> str:
    """The image's tag named after its inputs: the same tag is always the same content.

    Version tags are shared by every checkout on a machine; tests that must run their own
    sources use these instead.
    """
    return f"{PINNED_REGISTRY}/{image.repository}:{inputs[:16]}"


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """Where wheels, package trees and the build context live: outside the repository."""
    explicit = os.environ.get("NOETL_IMAGES_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "noetl-images"


def project_version() -> str:
    with PYPROJECT.open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def project_requirements() -> dict[str, str]:
    """pyproject's dependencies by distribution name: `{"httpx": "httpx>=0.27", ...}`."""
    with PYPROJECT.open("rb") as file:
        requirements = tomllib.load(file)["project"]["dependencies"]
    by_name = {}
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        if name is None:
            raise BuildError(f"pyproject.toml: project.dependencies: unreadable {requirement!r}")
        by_name[name.group().lower()] = requirement
    return by_name


def native_architecture() -> str:
    machine = platform.machine().lower()
    if machine not in ARCHITECTURES:
        raise BuildError(f"no wheels are chosen for this machine's architecture, {machine}")
    return ARCHITECTURES[machine]


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def sources_digest() -> str:
    """A digest of the noetl package's files, bytecode left out."""
    hasher = hashlib.sha256()
    for path in sorted(_source_files()):
        hasher.update(str(path.relative_to(SOURCES)).encode() + b"\0")
        hasher.update(path.read_bytes() + b"\0")
    return hasher.hexdigest()


def _source_files() -> Iterator[Path]:
    for path in SOURCES.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            yield path


def run(argv: Sequence[str], log_file: Path | None = None) -> str:
    """Run a command; its output goes to `log_file` (or is returned); a failure says why."""
    if log_file is None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return done.stdout
        output, where = done.stdout + done.stderr, ""
    else:
        with log_file.open("w") as file:
            code = subprocess.run(argv, stdout=file, stderr=subprocess.STDOUT, check=False)
        if code.returncode == 0:
            return ""
        output, where = log_file.read_text(errors="replace"), f" (full output: {log_file})"
    tail = "\n".join(output.strip().splitlines()[-25:])
    raise BuildError(f"{' '.join(argv[:3])} ... failed{where}:\n{tail}")


class BuildError(RuntimeError):
    """A step of the build failed; the message carries the tail of its output."""


# --- the builders ---


@dataclass(frozen=True)
class Builder:
    """The commands of one image builder. podman and buildah share root's containers-storage."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in BUILDERS:
            raise BuildError(f"unknown builder {self.name!r}: one of {', '.join(BUILDERS)}")

    def available(self) -> bool:
        return shutil.which(self.name) is not None

    def label(self, tag: str) -> str | None:
        """The inputs label of a local image, "" if it has none, None if there is no such image."""
        found = self._inspect(tag)
        if found is None:
            return None
        config = found["OCIv1"]["config"] if self.name == "buildah" else found["Config"]
        return str((config.get("Labels") or {}).get(INPUTS_LABEL, ""))

    def image_id(self, tag: str) -> str | None:
        found = self._inspect(tag)
        if found is None:
            return None
        return str(found["FromImageID"] if self.name == "buildah" else found["Id"])

    def _inspect(self, tag: str) -> dict[str, Any] | None:
        """What the builder says of a local image (its own JSON), None if there is none."""
        if self.name == "buildah":
            argv = ["buildah", "inspect", "--type", "image", tag]
        else:
            argv = [self.name, "image", "inspect", tag]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return None
        found = json.loads(done.stdout)
        return dict(found[0] if isinstance(found, list) else found)

    def pull(self, tag: str, log_file: Path) -> bool:
        try:
            run([self.name, "pull", tag], log_file)
        except BuildError:
            return False
        return True

    def import_rootfs(self, tarball: Path, tag: str, log_file: Path) -> None:
        """A root filesystem tarball as an image named `tag`, with bash as its command."""
        if self.name != "buildah":
            run([self.name, "import", "--change", 'CMD ["bash"]', str(tarball), tag], log_file)
            return
        container = run(["buildah", "from", "scratch"]).strip()
        try:
            run(["buildah", "add", container, str(tarball), "/"], log_file)
            run(["buildah", "config", "--cmd", "bash", container], log_file)
            run(["buildah", "commit", container, tag], log_file)
        finally:
            run(["buildah", "rm", container])

    def tag(self, source: str, target: str) -> None:
        run([self.name, "tag", source, target])

    def build_command(
        self,
        dockerfile: Path,
        tags: Sequence[str],
        context: Path,
        args: dict[str, str],
        labels: dict[str, str],
    ) -> list[str]:
        argv = {
            "docker": ["docker", "build"],
            "podman": ["podman", "build", "--layers"],
            "buildah": ["buildah", "build", "--layers"],
        }[self.name]
        argv += ["--file", str(dockerfile)]
        for tag in tags:
            argv += ["--tag", tag]
        for key, value in args.items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in labels.items():
            argv += ["--label", f"{key}={value}"]
        return [*argv, str(context)]


# --- what the images copy: the wheelhouse, each image's packages, the sources ---


def platform_options(architecture: str) -> list[str]:
    """pip options that choose wheels for Debian bookworm's CPython 3.11 on `architecture`."""
    machine = {"amd64": "x86_64", "arm64": "aarch64"}[architecture]
    options = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    options += ["--abi", f"cp{PYTHON_VERSION.replace('.', '')}", "--abi", "abi3", "--abi", "none"]
    for glibc in range(OLDEST_GLIBC, NEWEST_GLIBC + 1):
        options += ["--platform", f"manylinux_2_{glibc}_{machine}"]
    return [*options, "--platform", f"manylinux2014_{machine}"]


def wheelhouse(cache: Path, architecture: str, log: Log) -> tuple[Path, str]:
    """Wheels of every dependency for `architecture`, downloaded on the host once per inputs."""
    requirements = sorted(project_requirements().values())
    key = digest("wheelhouse", architecture, PYTHON_VERSION, *requirements)[:16]
    path = cache / "wheels" / f"{architecture}-{key}"
    if path.is_dir():
        return path, key
    log(f"downloading the wheels for {architecture} into {path}")
    started = time.monotonic()
    staging = _fresh(cache / "wheels" / f".{architecture}-{key}.partial")
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"]
    run([*pip, "--dest", str(staging), *platform_options(architecture), *requirements])
    staging.rename(path)
    log(f"wheels for {architecture}: {len(list(path.iterdir()))} in {_since(started)}")
    return path, key


def _fresh(path: Path) -> Path:
    """An empty directory at `path`, whatever was there."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def package_tree(
    context: Path, wheels: Path, wheels_key: str, architecture: str, image: Image, log: Log
) -> str:
    """Install an image's packages from the wheelhouse into context/<arch>/<image>; its key."""
    available = project_requirements()
    names = sorted(available) if image.packages is None else image.packages
    requirements = [available[name] for name in names]
    key = digest("tree", wheels_key, *requirements)[:16]
    tree = context / architecture / image.name
    marker = context / architecture / f".{image.name}.key"
    if tree.is_dir() and marker.is_file() and marker.read_text() == key:
        return key
    started = time.monotonic()
    _fresh(tree)
    pip = [sys.executable, "-m", "pip", "install", "--isolated", "--disable-pip-version-check"]
    pip += ["--quiet", "--no-index", "--find-links", str(wheels), "--no-compile"]
    run([*pip, "--target", str(tree), *platform_options(architecture), *requirements])
    shutil.rmtree(tree / "bin", ignore_errors=True)  # console scripts naming the host's Python
    marker.write_text(key)
    log(f"{image.name}: its packages for {architecture} installed in {_since(started)}")
    return key


def copy_sources(context: Path) -> str:
    """context/noetl: the package's sources as they are now; their digest."""
    key = sources_digest()
    marker = context / ".noetl.key"
    if marker.is_file() and marker.read_text() == key:
        return key
    shutil.rmtree(context / "noetl", ignore_errors=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SOURCES, context / "noetl", ignore=skip)
    marker.write_text(key)
    return key


def ensure_debian(builder: Builder, cache: Path, log: Log) -> str:
    """The ID of Debian's image in local storage: there already, pulled, or made here."""
    found = builder.image_id(DEBIAN_IMAGE)
    if found:
        return found
    logs = _logs(cache)
    if not builder.pull(DEBIAN_IMAGE, logs / "debian-pull.log"):
        if shutil.which("mmdebstrap") is None:
            raise BuildError(
                f"{DEBIAN_IMAGE} is not in {builder.name}'s storage, cannot be pulled "
                f"({logs / 'debian-pull.log'}), and mmdebstrap, which could make it, is missing"
            )
        log(f"{DEBIAN_IMAGE} cannot be pulled: making it with mmdebstrap")
        started = time.monotonic()
        tarball = cache / "debian-rootfs.tar"
        argv = ["mmdebstrap", "--variant=minbase", "--quiet"]
        merged_usr = Path("/usr/share/mmdebstrap/hooks/merged-usr")
        if merged_usr.is_dir():  # without it, bookworm's usrmerge drags Perl in
            argv.append(f"--hook-dir={merged_usr}")
        argv += [f"--dpkgopt={option}" for option in DEBIAN_SLIM_EXCLUDES]
        run([*argv, DEBIAN_SUITE, str(tarball), *DEBIAN_MIRRORS], logs / "debian-mmdebstrap.log")
        try:
            builder.import_rootfs(tarball, DEBIAN_IMAGE, logs / "debian-import.log")
        finally:
            tarball.unlink(missing_ok=True)
        log(f"{DEBIAN_IMAGE}: made and imported in {_since(started)}")
    found = builder.image_id(DEBIAN_IMAGE)
    if not found:
        raise BuildError(f"{DEBIAN_IMAGE} is still not in {builder.name}'s storage")
    return found


# --- building ---


def ensure_images(
    builder: str = "podman",
    registry: str = DEFAULT_REGISTRY,
    version: str | None = None,
    only: Sequence[str] = (),
    log: Log = _stderr,
    pinned: bool = False,
) -> dict[str, str]:
    """Build what is missing or out of date; {image name: tag} of every image (or of `only`).

    Every image gets its version tag (`registry/repository:version`) and its pinned tag; the
    pinned tags are returned when `pinned` is true. Safe to call from several processes at once:
    they take turns, and the later ones find everything built.
    """
    chosen = Builder(builder)
    if not chosen.available():
        raise BuildError(f"{builder} is not installed")
    unknown = set(only) - {image.name for image in IMAGES}
    if unknown:
        raise BuildError(f"no such image: {', '.join(sorted(unknown))}")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / "lock", log):
        started = time.monotonic()
        built = _ensure(chosen, registry, version or project_version(), only, cache, log)
        log(f"all images ready in {_since(started)}")
        return {name: pinned_one if pinned else tag for name, (tag, pinned_one) in built.items()}


def _ensure(
    builder: Builder, registry: str, version: str, only: Sequence[str], cache: Path, log: Log
) -> dict[str, tuple[str, str]]:
    """{image name: (version tag, pinned tag)} of the images wanted, built where needed."""
    architecture = native_architecture()
    context = cache / "context"
    context.mkdir(exist_ok=True)
    base_inputs = digest(BASE.dockerfile.read_text(), ensure_debian(builder, cache, log))
    built = {BASE.name: _build(builder, BASE, registry, version, base_inputs, context, {}, log)}
    sources = copy_sources(context)
    for image in IMAGES[1:]:
        if only and image.name not in only:
            continue
        tree = ""
        if image.packages != ():
            wheels, wheels_key = wheelhouse(cache, architecture, log)
            tree = package_tree(context, wheels, wheels_key, architecture, image, log)
        inputs = digest(image.dockerfile.read_text(), base_inputs, tree, sources)
        # FROM the pinned base: exactly the base these inputs name.
        build_args = {"BASE_IMAGE": built[BASE.name][1], "TARGETARCH": architecture}
        built[image.name] = _build(
            builder, image, registry, version, inputs, context, build_args, log
        )
    if only and BASE.name not in only:
        del built[BASE.name]
    return built


def _build(
    builder: Builder,
    image: Image,
    registry: str,
    version: str,
    inputs: str,
    context: Path,
    build_args: dict[str, str],
    log: Log,
) -> tuple[str, str]:
    """The image under its version and pinned tags: found, tagged from the cache, or built."""
    tag, pinned = image.tag(registry, version), pinned_tag(image, inputs)
    cached = builder.image_id(pinned) is not None
    current = builder.label(tag) == inputs
    if cached and current:
        log(f"{image.name}: {tag} is up to date")
    elif cached or current:
        builder.tag(*((pinned, tag) if cached else (tag, pinned)))
        log(f"{image.name}: {tag} tagged from the cache ({pinned})")
    else:
        log(f"{image.name}: building {tag} with {builder.name}")
        started = time.monotonic()
        argv = builder.build_command(
            image.dockerfile, [tag, pinned], context, build_args, {INPUTS_LABEL: inputs}
        )
        run(argv, _logs(cache_dir()) / f"{image.name}.log")
        log(f"{image.name}: built {tag} and {pinned} in {_since(started)}")
    return tag, pinned


def publish(registry: str, version: str, platforms: Sequence[str], log: Log = _stderr) -> None:
    """Build every image for `platforms` with docker buildx and push it, with SBOM and provenance.

    The base is pushed first: the other images name it in FROM, and a multi-platform build reads
    it from the registry.
    """
    cache = cache_dir()
    context = cache / "context"
    context.mkdir(parents=True, exist_ok=True)
    copy_sources(context)
    architectures = [ARCHITECTURES[name.removeprefix("linux/")] for name in platforms]
    for architecture in architectures:
        wheels, wheels_key = wheelhouse(cache, architecture, log)
        for image in IMAGES:
            if image.packages != ():
                package_tree(context, wheels, wheels_key, architecture, image, log)
    base_tag = BASE.tag(registry, version)
    for image in IMAGES:
        tag = image.tag(registry, version)
        log(f"{image.name}: building {tag} for {', '.join(platforms)} and pushing it")
        started = time.monotonic()
        argv = ["docker", "buildx", "build", "--platform", ",".join(platforms), "--push"]
        argv += ["--sbom=true", "--provenance=mode=max", "--file", str(image.dockerfile)]
        argv += ["--tag", tag, "--build-arg", f"BASE_IMAGE={base_tag}", str(context)]
        run(argv, _logs(cache) / f"{image.name}-publish.log")
        log(f"{image.name}: pushed in {_since(started)}")


@contextmanager
def _locked(path: Path, log: Log) -> Iterator[None]:
    with path.open("a") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("waiting for another build of the images to finish")
            fcntl.flock(file, fcntl.LOCK_EX)
        yield


def _logs(cache: Path) -> Path:
    path = cache / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="plugin-images/build.py",
        description="Build NoETL's images (cached by a digest of their inputs); print their tags.",
    )
    parser.add_argument("--builder", choices=BUILDERS, default="docker")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY)
    parser.add_argument("--version", help="the tag (default: the version in pyproject.toml)")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        choices=[image.name for image in IMAGES],
        metavar="IMAGE",
        help="these images only (and the base): " + ", ".join(image.name for image in IMAGES),
    )
    parser.add_argument("--json", action="store_true", help="print {image: tag} as JSON")
    parser.add_argument(
        "--pinned",
        action="store_true",
        help="print the pinned tags (localhost/<repository>:<digest of the inputs>)",
    )
    parser.add_argument(
        "--push",
        metavar="PLATFORMS",
        help="build with docker buildx for these platforms (e.g. linux/amd64,linux/arm64) and push",
    )
    options = parser.parse_args(argv)
    version = options.version or project_version()
    try:
        if options.push:
            publish(options.registry, version, options.push.split(","))
            return 0
        tags = ensure_images(
            options.builder, options.registry, version, options.only, pinned=options.pinned
        )
    except BuildError as exc:
        _stderr(str(exc))
        return 1
    print(json.dumps(tags, indent=2) if options.json else "\n".join(tags.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
