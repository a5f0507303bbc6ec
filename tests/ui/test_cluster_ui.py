"""`noetl ui` over the real control plane and operator, in headless Chromium: an Execution's graph
follows its Jobs live, a failed step shows its error and pod log, the Events are listed, cancel
works, Playbooks show their validation, and no response carries the value of a Secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.harness import Resources
from tests.ui.browser import (
    UIProcess,
    detail_text,
    needs_browser,
    no_secret_in,
    screenshot,
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
    wait_for(browser, lambda d: d.find_elements(By.LINK_TEXT, "show-1") or d.refresh())
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


def test_cancel_and_playbook_validation(resources: Resources, ui: UIProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    ns = resources.namespace
    workflow = [{"step": "start", "next": [{"step": "nap"}]}, shell("nap", "sleep 300")]
    resources.create(
        "playbooks",
        {"kind": "Playbook", "metadata": {"name": "sleepy"}, "spec": {"workflow": workflow}},
    )
    resources.execute("sleepy-1", "sleepy")
    browser.get(f"{ui.base}/executions/{ns}/sleepy-1")
    wait_for(browser, lambda d: state_of(d, "nap") == "Running")
    browser.find_element(By.ID, "cancel").click()
    wait_for(browser, lambda d: "Cancelled" in d.find_element(By.ID, "phase").text)
    assert resources.wait_finished("sleepy-1")["phase"] == "Cancelled"

    dangling = [{"step": "start", "next": [{"step": "nowhere"}]}]
    resources.create(
        "playbooks",
        {"kind": "Playbook", "metadata": {"name": "dangling"}, "spec": {"workflow": dangling}},
    )
    resources.wait("playbooks", "dangling", lambda obj: (obj.get("status") or {}).get("errors"))
    browser.get(f"{ui.base}/playbooks/{ns}/dangling")
    assert "Invalid" in browser.find_element(By.CSS_SELECTOR, ".heading .badge").text
    assert "nowhere" in browser.find_element(By.ID, "step-start").text
