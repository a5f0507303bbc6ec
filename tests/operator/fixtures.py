"""Pytest fixtures for operator tests: CRDs installed and `noetl operator` running against the
real control plane of tests/cluster (`kube_cluster`), one namespace per test.

The shared operator watches the namespaces named `nt-*` only, so that tests which run operators
of their own (crash, RBAC) do it in namespaces no other operator touches. Its steps may use the
Secrets named `pg`, `token` and `step-*` there, and no other (see kube/tenancy.py). Steps run
as Jobs in this checkout's plugin images (see `harness.step_image_settings`), so these tests
get the `containers` marker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.operator.harness import OperatorProcess, Resources, install_crds

SHARED_PREFIX = "nt-"


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "noetl_operator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.containers)


@pytest.fixture(scope="session")
def noetl_operator(
    kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    install_crds(kube_cluster.api_client())
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    allowed_secrets = [f"{SHARED_PREFIX}*/{name}" for name in ("pg", "token", "step-*")]
    operator = OperatorProcess(
        kube_cluster.kubeconfig,
        log,
        {
            "NOETL_NAMESPACES": f"{SHARED_PREFIX}*",
            "NOETL_ALLOWED_SECRETS": json.dumps(allowed_secrets),
        },
    )
    operator.start()
    yield operator
    operator.stop()


def _namespace(kube_cluster: Any, prefix: str) -> Iterator[str]:
    core = client.CoreV1Api(kube_cluster.api_client())
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    deadline = time.monotonic() + 120
    while not core.list_namespaced_service_account(
        name, field_selector="metadata.name=default"
    ).items:
        assert time.monotonic() < deadline, f"namespace {name} got no default ServiceAccount"
        time.sleep(0.1)  # pods are refused until it exists
    yield name
    core.delete_namespace(name)


@pytest.fixture
def resources(kube_cluster: Any, noetl_operator: OperatorProcess) -> Iterator[Resources]:
    for namespace in _namespace(kube_cluster, SHARED_PREFIX):
        yield Resources(kube_cluster.api_client(), namespace)


@pytest.fixture
def isolated(kube_cluster: Any, noetl_operator: OperatorProcess) -> Iterator[Resources]:
    """A namespace that no running operator watches: the test starts its own."""
    for namespace in _namespace(kube_cluster, "iso-"):
        yield Resources(kube_cluster.api_client(), namespace)


@pytest.fixture
def isolated_too(kube_cluster: Any, noetl_operator: OperatorProcess) -> Iterator[Resources]:
    """A second namespace that no running operator watches."""
    for namespace in _namespace(kube_cluster, "iso-"):
        yield Resources(kube_cluster.api_client(), namespace)
