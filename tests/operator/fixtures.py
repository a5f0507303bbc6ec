"""Pytest fixtures for operator tests: CRDs installed and `noetl operator` running against the
real control plane of tests/cluster (`kube_cluster`), one namespace per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.operator.harness import OperatorProcess, Resources, install_crds


@pytest.fixture(scope="session")
def noetl_operator(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    install_crds(kube_cluster.api_client())
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(kube_cluster.kubeconfig, log)
    operator.start()
    yield operator
    operator.stop()


@pytest.fixture
def resources(kube_cluster: Any, kube_namespace: str, noetl_operator: OperatorProcess) -> Resources:
    return Resources(kube_cluster.api_client(), kube_namespace)
