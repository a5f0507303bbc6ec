"""`noetl ui` over the real control plane and operator, in headless Chromium: an Execution's graph
and the list follow the cluster live, a failed step shows its error and pod log, the Events are
listed, the buttons suspend, resume, cancel and retry Executions, Playbooks show their
validation, and no response carries the value of a Secret."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.operator.harness import Resources
from tests.ui.browser import (
    UIProcess,
    detail_text,
    needs_browser,
    no_secret_in,
    phase,
    screenshot,
    shown,
    state_of,
    wait_for,
)

pytestmark = [needs_browser, pytest.mark.cluster]
SECRET = "s3cr3t-value-c1u5"


def shell(name: str, command: str, then: list[str] | None = None, **args: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"step": name, "tool": "shell", "args": {"command": command, **args}}
    if then:
        step["next"] = [{"step": target} for target in then]
    return step


@pytest.fixture
def ui(kube_cluster: Any, resources: Resources, tmp_path: Path) -> Iterator[UIProcess]:
    process = UIProcess(
        tmp_path / "ui.log",
        "--namespace",
        resources.namespace,
        "--actions",
        "--runs",
        str(tmp_path / "runs"),
        "--playbooks",
        str(tmp_path / "none"),
        env={"KUBECONFIG": str(kube_cluster.kubeconfig)},
    )
    yield process
    process.stop()


def test_an_execution_seen_live(resources: Resources, ui: UIProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    ns = resources.namespace
    resources.core.create_namespaced_secret(
        ns, {"metadata": {"name": "token"}, "stringData": {"API_TOKEN": SECRET}}
    )
    workflow = [
        {"step": "start", "next": [{"step": "slow"}, {"step": "broken"}]},
        shell(
            "slow", 'sleep 6; test -n "$API_TOKEN" && echo slow-done', ["end"], secretRef="token"
        ),
        shell("broken", "echo broken-on-purpose >&2; exit 3"),
        {"step": "end"},
    ]
    resources.create(
        "playbooks",
        {"kind": "Playbook", "metadata": {"name": "show"}, "spec": {"workflow": workflow}},
    )
    resources.execute("show-1", "show")

    browser.get(f"{ui.base}/executions?namespace={ns}")
    browser.find_element(By.LINK_TEXT, "show-1").click()
    assert f"/executions/{ns}/show-1" in browser.current_url
    wait_for(browser, lambda d: state_of(d, "slow") == "Running")
    wait_for(browser, lambda d: state_of(d, "broken") == "Failed")
    screenshot(browser, "cluster-running")
    browser.find_element(By.CSS_SELECTOR, 'svg .node[data-step="broken"]').click()
    wait_for(browser, lambda d: "exited with code 3" in detail_text(d))
    wait_for(browser, lambda d: "broken-on-purpose" in detail_text(d))  # the pod's log

    wait_for(browser, lambda d: state_of(d, "slow") == "Succeeded")
    wait_for(browser, lambda d: "Failed" in d.find_element(By.ID, "phase").text)
    browser.find_element(By.CSS_SELECTOR, 'svg .node[data-step="slow"]').click()
    wait_for(browser, lambda d: "slow-done" in detail_text(d))
    assert '"secretRef": "token"' in detail_text(browser)
    browser.refresh()  # the Events table is filled when the page is served
    assert "No Events." not in browser.find_element(By.CSS_SELECTOR, "table.events").text
    screenshot(browser, "cluster-execution")
    pages = [browser.page_source]

    for step in ("start", "slow", "broken", "end"):
        ui.fetch(f"/executions/{ns}/show-1/steps/{step}?partial=1")
    ui.fetch(f"/executions/{ns}/show-1")
    ui.fetch(f"/executions/{ns}/show-1/live")
    ui.fetch("/executions")
    ui.fetch("/playbooks")
    no_secret_in(ui.bodies + pages, SECRET)


def test_suspend_resume_cancel_and_playbook_validation(
    resources: Resources, ui: UIProcess, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    ns = resources.namespace
    workflow = [
        {"step": "start", "next": [{"step": "nap"}]},
        shell("nap", "sleep 300", ["after"]),
        shell("after", "true"),
    ]
    resources.create(
        "playbooks",
        {"kind": "Playbook", "metadata": {"name": "sleepy"}, "spec": {"workflow": workflow}},
    )
    resources.execute("sleepy-1", "sleepy")
    browser.get(f"{ui.base}/executions/{ns}/sleepy-1")
    wait_for(browser, lambda d: state_of(d, "nap") == "Running" and shown(d, "suspend"))
    assert not shown(browser, "resume") and not shown(browser, "retry")
    browser.find_element(By.ID, "suspend").click()
    wait_for(browser, lambda d: "Suspended" in phase(d) and shown(d, "resume"))
    assert resources.get("executions", "sleepy-1")["spec"]["suspend"] is True
    assert not shown(browser, "suspend") and state_of(browser, "nap") == "Running"
    screenshot(browser, "cluster-suspended")
    browser.find_element(By.ID, "resume").click()
    wait_for(browser, lambda d: "Running" in phase(d) and shown(d, "suspend"))
    assert resources.get("executions", "sleepy-1")["spec"]["suspend"] is False
    browser.find_element(By.ID, "cancel").click()
    wait_for(browser, lambda d: "Cancelled" in phase(d))
    assert resources.wait_finished("sleepy-1")["phase"] == "Cancelled"
    wait_for(browser, lambda d: shown(d, "retry") and not shown(d, "cancel"))

    dangling = [{"step": "start", "next": [{"step": "nowhere"}]}]
    resources.create(
        "playbooks",
        {"kind": "Playbook", "metadata": {"name": "dangling"}, "spec": {"workflow": dangling}},
    )
    resources.wait("playbooks", "dangling", lambda obj: (obj.get("status") or {}).get("errors"))
    browser.get(f"{ui.base}/playbooks/{ns}/dangling")
    assert "Invalid" in browser.find_element(By.CSS_SELECTOR, ".heading .badge").text
    assert "nowhere" in browser.find_element(By.ID, "step-start").text


def test_the_list_follows_new_executions_and_a_failed_one_is_retried(
    resources: Resources, ui: UIProcess, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    ns = resources.namespace
    browser.get(f"{ui.base}/executions?namespace={ns}")
    assert "No executions" in browser.find_element(By.ID, "rows").text
    workflow = [{"step": "start", "next": [{"step": "fail"}]}, shell("fail", "exit 3")]
    resources.create(
        "playbooks",
        {"kind": "Playbook", "metadata": {"name": "failing"}, "spec": {"workflow": workflow}},
    )
    resources.execute("failing-1", "failing")
    # No reload: the new Execution's row comes, and its phase changes as it runs.
    wait_for(browser, lambda d: d.find_elements(By.LINK_TEXT, "failing-1"))
    wait_for(browser, lambda d: "Failed" in d.find_element(By.ID, "rows").text)
    browser.find_element(By.LINK_TEXT, "failing-1").click()
    wait_for(browser, lambda d: "Failed" in phase(d) and shown(d, "retry"))
    browser.find_element(By.ID, "retry").click()
    wait_for(browser, lambda d: not d.current_url.endswith("/failing-1"))
    retried = browser.current_url.rpartition("/")[2]
    assert retried.startswith("failing-1-")
    assert resources.get("executions", retried)["spec"]["retryOf"] == "failing-1"
    wait_for(browser, lambda d: "Failed" in phase(d))  # it fails as the first did
    assert resources.wait_finished(retried)["phase"] == "Failed"


def test_the_charts_read_only_rbac_is_enough_and_no_more(
    kube_cluster: Any, resources: Resources, tmp_path: Path
) -> None:
    """`noetl ui` under the chart's ServiceAccount for it: every page reads, nothing can change."""
    import kubernetes
    from kubernetes import utils
    from kubernetes.client.exceptions import ApiException

    from tests.deploy.chart import HelmError, render_chart

    ns = resources.namespace
    try:
        manifests = render_chart({"ui": {"enabled": True}, "watchNamespaces": [ns]}, namespace=ns)
    except HelmError as error:
        pytest.skip(str(error))
    rbac = [
        m
        for m in manifests
        if m["metadata"]["name"] == "noetl-operator-ui"
        and m["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    ]
    assert len(rbac) == 3
    for manifest in rbac:
        utils.create_from_dict(kube_cluster.api_client(), manifest)
    kubeconfig = kube_cluster.service_account_kubeconfig(ns, "noetl-operator-ui")
    as_ui = kubernetes.config.new_client_from_config(str(kubeconfig))
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(as_ui).list_namespaced_secret(ns)
    assert denied.value.status == 403
    with pytest.raises(ApiException) as denied:
        client.CustomObjectsApi(as_ui).patch_namespaced_custom_object(
            "noetl.io", "v1alpha1", ns, "executions", "hello-1", {"spec": {"cancel": True}}
        )
    assert denied.value.status == 403

    resources.apply_playbook_file(Path(__file__).resolve().parents[2] / "playbooks" / "hello.yaml")
    resources.execute("hello-1", "hello", {"name": "UI"})
    assert resources.wait_finished("hello-1")["phase"] == "Succeeded"
    ui = UIProcess(
        tmp_path / "ui.log",
        "--namespace",
        ns,
        "--no-actions",
        env={"KUBECONFIG": str(kubeconfig)},
        cwd=tmp_path,
    )
    try:
        assert "hello-1" in ui.fetch("/executions")
        page = ui.fetch(f"/executions/{ns}/hello-1")
        assert "✓ Succeeded" in page and "No Events." not in page
        step = html.unescape(ui.fetch(f"/executions/{ns}/hello-1/steps/greet?partial=1"))
        assert '"stdout": "Hello, UI!' in step  # the result, from the results ConfigMap
        assert "pod hello-1-greet-a1" in step  # the log, from the pod
        assert "hello" in ui.fetch("/playbooks")
        assert 'id="cancel"' not in page
    finally:
        ui.stop()
    assert "Forbidden" not in (tmp_path / "ui.log").read_text()


def test_the_charts_rbac_with_actions_allows_what_the_buttons_do_and_no_more(
    kube_cluster: Any, resources: Resources
) -> None:
    """Under the chart's ServiceAccount with `ui.actions.enabled`, the calls the buttons make
    (those of `noetl.kube.client`, as the commands) go through; deleting or reading Secrets not."""
    import kubernetes
    from kubernetes import utils
    from kubernetes.client.exceptions import ApiException

    from noetl.kube.client import Cluster
    from tests.deploy.chart import HelmError, render_chart

    ns = resources.namespace
    values = {"ui": {"enabled": True, "actions": {"enabled": True}}, "watchNamespaces": [ns]}
    try:
        manifests = render_chart(values, namespace=ns)
    except HelmError as error:
        pytest.skip(str(error))
    for manifest in manifests:
        if manifest["metadata"]["name"] == "noetl-operator-ui" and manifest["kind"] in (
            "ServiceAccount",
            "Role",
            "RoleBinding",
        ):
            utils.create_from_dict(kube_cluster.api_client(), manifest)
    kubeconfig = kube_cluster.service_account_kubeconfig(ns, "noetl-operator-ui")
    as_ui = kubernetes.config.new_client_from_config(str(kubeconfig))
    workflow = [{"step": "start", "next": [{"step": "nap"}]}, shell("nap", "sleep 300")]
    resources.create(
        "playbooks",
        {"kind": "Playbook", "metadata": {"name": "napping"}, "spec": {"workflow": workflow}},
    )
    resources.execute("napping-1", "napping", suspend=True)  # nothing starts while suspended
    cluster = Cluster(ns, as_ui)
    cluster.resume("napping-1", {})
    cluster.suspend("napping-1")
    cluster.cancel("napping-1")
    assert resources.wait_finished("napping-1")["phase"] == "Cancelled"
    retried = cluster.run_again("napping-1", {}, keep=True)
    assert resources.get("executions", retried)["spec"]["retryOf"] == "napping-1"
    custom = client.CustomObjectsApi(as_ui)
    for forbidden in (
        lambda: custom.delete_namespaced_custom_object(
            "noetl.io", "v1alpha1", ns, "executions", "napping-1"
        ),
        lambda: custom.patch_namespaced_custom_object(
            "noetl.io", "v1alpha1", ns, "playbooks", "napping", {"spec": {}}
        ),
        lambda: client.CoreV1Api(as_ui).list_namespaced_secret(ns),
    ):
        with pytest.raises(ApiException) as denied:
            forbidden()
        assert denied.value.status == 403
    cluster.cancel(retried)
