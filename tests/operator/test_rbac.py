"""The operator runs under the Helm chart's ServiceAccount with exactly the chart's RBAC."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, utils
from kubernetes.client.exceptions import ApiException

from tests.deploy.chart import HelmError, aggregated, render_chart
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
    rbac = [m for m in manifests if m["kind"] in RBAC_KINDS and not aggregated(m)]
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
        schedule = {"schedule": "* * * * * *", "playbookRef": {"name": "hello"}}
        isolated.create(
            "cronplaybooks",
            {"kind": "CronPlaybook", "metadata": {"name": "often"}, "spec": schedule},
        )
        assert isolated.wait_finished("hello")["result"] == "Hello, RBAC!"
        assert isolated.wait_finished("children")["result"] == ["Hi, Ada", "Hi, Grace"]
        playbook = isolated.wait("playbooks", "hello", lambda obj: bool(obj.get("status")))
        assert playbook["status"]["conditions"][0]["status"] == "True"
        cron = isolated.wait(
            "cronplaybooks",
            "often",
            lambda obj: (obj.get("status") or {}).get("lastSuccessfulTime"),
        )
        isolated.custom.delete_namespaced_custom_object(
            "noetl.io", "v1alpha1", isolated.namespace, "cronplaybooks", "often"
        )
        assert cron["status"]["lastScheduleTime"]
        assert "Forbidden" not in (tmp_path / "operator.log").read_text()
    finally:
        operator.stop()


def bound_to(kube_cluster: Any, namespace: str, role: str) -> client.CustomObjectsApi:
    """A user (a ServiceAccount) bound in `namespace` to the cluster's own ClusterRole `role`."""
    user = f"{role}-user"
    kubeconfig = kube_cluster.service_account_kubeconfig(namespace, user)
    client.RbacAuthorizationV1Api(kube_cluster.api_client()).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": user},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": user, "namespace": namespace}],
        },
    )
    return client.CustomObjectsApi(
        __import__("kubernetes").config.new_client_from_config(str(kubeconfig))
    )


def test_users_bound_to_edit_and_view_work_with_noetl_objects(
    kube_cluster: Any, isolated: Resources
):
    try:
        manifests = render_chart({}, namespace=isolated.namespace)
    except HelmError as error:
        pytest.skip(str(error))
    admin = kube_cluster.api_client()
    for manifest in manifests:
        if aggregated(manifest):
            apply(admin, manifest)
    rbac = client.RbacAuthorizationV1Api(admin)

    def grants_noetl(role: str) -> bool:
        rules = rbac.read_cluster_role(role).rules or []
        return any("noetl.io" in (rule.api_groups or []) for rule in rules)

    deadline = time.monotonic() + 120
    while not (grants_noetl("view") and grants_noetl("edit")):
        assert time.monotonic() < deadline, "the aggregation controller did not add the rules"
        time.sleep(0.2)  # polling the API server for the controller's work

    isolated.apply_playbook_file(PLAYBOOKS / "hello.yaml")
    isolated.execute("seen", "hello")
    viewer = bound_to(kube_cluster, isolated.namespace, "view")
    for plural in ("executions", "playbooks", "cronplaybooks"):
        listed: Any = viewer.list_namespaced_custom_object(
            "noetl.io", "v1alpha1", isolated.namespace, plural
        )
        assert plural != "executions" or [e["metadata"]["name"] for e in listed["items"]] == [
            "seen"
        ]
    execution = {
        "apiVersion": "noetl.io/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": "by-user"},
        "spec": {"playbookRef": {"name": "hello"}},
    }
    with pytest.raises(ApiException) as denied:
        viewer.create_namespaced_custom_object(
            "noetl.io", "v1alpha1", isolated.namespace, "executions", execution
        )
    assert denied.value.status == 403
    editor = bound_to(kube_cluster, isolated.namespace, "edit")
    editor.create_namespaced_custom_object(
        "noetl.io", "v1alpha1", isolated.namespace, "executions", execution
    )
    editor.patch_namespaced_custom_object(
        "noetl.io",
        "v1alpha1",
        isolated.namespace,
        "executions",
        "by-user",
        {"spec": {"cancel": True}},
    )
