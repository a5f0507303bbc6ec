"""The chart's renders are accepted by the real API server (server-side dry run) of tests/cluster,
in both scenarios: the defaults, and namespaced mode with every switch on."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from tests.deploy.chart import NAMESPACE, SCENARIOS, HelmError, render_chart

pytestmark = pytest.mark.cluster


def ensure_namespace(core: client.CoreV1Api, name: str) -> None:
    try:
        core.create_namespace({"metadata": {"name": name}})
    except ApiException as error:
        if error.status != 409:
            raise


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_api_server_accepts_the_rendered_chart(kube_cluster: Any, scenario: str):
    values = SCENARIOS[scenario]
    try:
        with_crds = render_chart(values, include_crds=True)
    except HelmError as error:
        pytest.skip(str(error))
    api = DynamicClient(kube_cluster.api_client())
    core = client.CoreV1Api(kube_cluster.api_client())
    for name in [NAMESPACE, *values.get("watchNamespaces", [])]:
        ensure_namespace(core, name)
    crds = [m for m in with_crds if m["kind"] == "CustomResourceDefinition"]
    assert {crd["metadata"]["name"] for crd in crds} >= {
        "playbooks.noetl.io",
        "executions.noetl.io",
        "cronplaybooks.noetl.io",
    }
    definitions = api.resources.get(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
    )
    for crd in crds:
        # For real (not a dry run): the peering objects below need their kinds to exist.
        definitions.server_side_apply(body=crd, field_manager="noetl-tests", force_conflicts=True)
    accepted = []
    for manifest in with_crds:
        if manifest["kind"] in ("CustomResourceDefinition", "ServiceMonitor"):
            continue  # no Prometheus Operator on the test cluster
        resource = api.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        namespace = (
            manifest["metadata"].get("namespace", NAMESPACE) if resource.namespaced else None
        )
        # Server-side apply in dry-run mode: validated and admitted like a real install, whether or
        # not another test already created the same cluster-scoped object.
        resource.server_side_apply(
            body=manifest,
            namespace=namespace,
            field_manager="noetl-tests",
            force_conflicts=True,
            dry_run="All",
        )
        accepted.append(manifest["kind"])
    assert "Deployment" in accepted
    rbac = "Role" if values.get("watchNamespaces") else "ClusterRole"
    assert {"ServiceAccount", rbac} <= set(accepted)
