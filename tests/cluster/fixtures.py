"""pytest fixtures for tests against the real control plane (a pytest plugin module).

When the collected tests use `kube_cluster`, the binaries are built (or found in the cache) right
after collection, outside any test's timeout, with progress on the terminal. `kube_cluster` is
session-scoped: one cluster (control plane and node agent) serves every test and is torn down at
the end. `kube_namespace` gives each test a fresh namespace, deleted afterwards. Without Go, or
if the build fails, the cluster tests are skipped with the reason; set NOETL_CLUSTER_REQUIRED=1 to
make that an error instead. Tests that use the cluster get the `cluster` marker automatically.

The node agent runs containers with podman; `sample_image` is the tag of a small Debian image
with sh and Python (sample_image.py), made after collection too when a test asks for it. Tests
that use it get the `containers` marker.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster import runtime
from tests.cluster.build import BuildError, BuildResult, ensure_binaries, kubernetes_version
from tests.cluster.cluster import Cluster
from tests.cluster.sample_image import ImageError, ensure_sample_image

T = TypeVar("T")
_BUILD = pytest.StashKey[BuildResult | BuildError]()
_SAMPLE = pytest.StashKey[str | ImageError]()
_STARTUP = pytest.StashKey[float]()


def _uses_cluster(item: pytest.Item) -> bool:
    return "kube_cluster" in getattr(item, "fixturenames", ())


def _uses_sample_image(item: pytest.Item) -> bool:
    return "sample_image" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_cluster(item):
            item.add_marker(pytest.mark.cluster)
        if _uses_sample_image(item):
            item.add_marker(pytest.mark.containers)


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(_uses_cluster(item) for item in session.items):
        session.config.stash[_BUILD] = _build(session.config)
    if any(_uses_sample_image(item) for item in session.items):
        session.config.stash[_SAMPLE] = _sample(session.config)


def _log(config: pytest.Config) -> Callable[[str], None]:
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def log(line: str) -> None:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, flush=True)

    return log


def _build(config: pytest.Config) -> BuildResult | BuildError:
    log = _log(config)
    try:
        return ensure_binaries(log)
    except BuildError as error:
        log(f"cluster binaries: {error}")
        return error


def _sample(config: pytest.Config) -> str | ImageError:
    log = _log(config)
    problem = runtime.available()
    if problem is not None:
        return ImageError(problem)
    try:
        return ensure_sample_image(log)
    except ImageError as error:
        log(f"sample image: {error}")
        return error


def _prepared(
    config: pytest.Config, key: pytest.StashKey[T], prepare: Callable[[pytest.Config], T]
) -> T:
    """What collection prepared (binaries, image), or prepare it now (a test run by itself)."""
    found = config.stash.get(key, None)
    if found is None:
        found = config.stash[key] = prepare(config)
    return found


def _unavailable(reason: str) -> None:
    if os.environ.get("NOETL_CLUSTER_REQUIRED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sample_image(request: pytest.FixtureRequest) -> str:
    """The tag of a small Debian image with sh and python3 (and its kubernetes client)."""
    image = _prepared(request.config, _SAMPLE, _sample)
    if isinstance(image, ImageError):
        _unavailable(f"the sample image is not available: {image}")
    assert isinstance(image, str)
    return image


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A running cluster: `.kubeconfig`, `.api_client()`, `.service_account_kubeconfig(ns, name)`,
    `.node_name`, `.kwok()` for simulated nodes."""
    config = request.config
    build = _prepared(config, _BUILD, _build)
    if isinstance(build, BuildError):
        _unavailable(f"the Kubernetes test binaries could not be built: {build}")
    assert isinstance(build, BuildResult)
    problem = runtime.available()
    if problem is not None:
        _unavailable(f"the node agent cannot run containers: {problem}")
    cluster = Cluster(build.bin_dir, kubernetes_version=kubernetes_version(), log=lambda _: None)
    cluster.start()
    config.stash[_STARTUP] = cluster.startup_seconds
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kube_namespace(kube_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace, ready for pods, for one test."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:5]}"
    with kube_cluster.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        # Pods are refused until the namespace's default ServiceAccount exists, and their token
        # volume waits for the root CA ConfigMap.
        deadline = time.monotonic() + 30
        while True:
            try:
                core.read_namespaced_service_account("default", name)
                core.read_namespaced_config_map("kube-root-ca.crt", name)
                break
            except ApiException as error:
                if error.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    yield name
    with kube_cluster.api_client() as api:
        try:
            client.CoreV1Api(api).delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    build = terminalreporter.config.stash.get(_BUILD, None)
    if build is None:
        return
    terminalreporter.section("test cluster")
    if isinstance(build, BuildError):
        terminalreporter.write_line(f"binaries: not built: {build}")
        return
    if build.built:
        terminalreporter.write_line(f"binaries: built in {build.seconds:.0f}s into {build.bin_dir}")
    else:
        terminalreporter.write_line(f"binaries: reused from {build.bin_dir} (no build)")
    startup = terminalreporter.config.stash.get(_STARTUP, None)
    if startup is not None:
        terminalreporter.write_line(f"cluster start-to-ready: {startup:.1f}s")
