"""The operator runs under the Helm chart's ServiceAccount with exactly the chart's RBAC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from tests.deploy.chart import HelmError, render_chart
from tests.operator.harness import OperatorProcess, Resources

pytestmark = pytest.mark.cluster
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def apply(api_client: client.ApiClient, manifest: dict[str, Any]) -> None:
    try:
        utils.create_from_dict(api_client, manifest)
    except utils.FailToCreateError as failure:
        if any(error.status != 409 for error in failure.api_exceptions):
            raise


def test_the_operator_works_with_only_the_charts_rbac(
    kube_cluster: Any, isolated: Resources, tmp_path: Path
):
    try:
        manifests = render_chart(
            {"watchNamespaces": [isolated.namespace]}, namespace=isolated.namespace
        )
    except HelmError as error:
        pytest.skip(str(error))
    admin = kube_cluster.api_client()
    rbac = [m for m in manifests if m["kind"] in RBAC_KINDS]
    # Namespaced mode grants nothing cluster-wide: kopf scans neither namespaces nor CRDs.
    assert {m["kind"] for m in rbac} == {"ServiceAccount", "Role", "RoleBinding"}
    for manifest in rbac:
        apply(admin, manifest)
    account = next(m for m in rbac if m["kind"] == "ServiceAccount")["metadata"]["name"]
    kubeconfig = kube_cluster.service_account_kubeconfig(isolated.namespace, account)

    as_operator = client.CoreV1Api(
        __import__("kubernetes").config.new_client_from_config(str(kubeconfig))
    )
    with pytest.raises(ApiException) as denied:
        as_operator.list_namespaced_secret(isolated.namespace)
    assert denied.value.status == 403  # least privilege: the operator never reads Secrets

    operator = OperatorProcess(
        kubeconfig, tmp_path / "operator.log", {"NOETL_NAMESPACES": isolated.namespace}
    )
    operator.start()
    try:
        isolated.apply_playbook_file(PLAYBOOKS / "hello.yaml")
        isolated.apply_playbook_file(PLAYBOOKS / "greet.yaml")
        isolated.apply_playbook_file(PLAYBOOKS / "sub-playbook.yaml")
        isolated.execute("hello", "hello", {"name": "RBAC"})
        isolated.execute("children", "sub-playbook")
        assert isolated.wait_finished("hello")["result"] == "Hello, RBAC!"
        assert isolated.wait_finished("children")["result"] == ["Hi, Ada", "Hi, Grace"]
        playbook = isolated.wait("playbooks", "hello", lambda obj: bool(obj.get("status")))
        assert playbook["status"]["conditions"][0]["status"] == "True"
        assert "Forbidden" not in (tmp_path / "operator.log").read_text()
    finally:
        operator.stop()
