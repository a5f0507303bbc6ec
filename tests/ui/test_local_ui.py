"""`noetl ui` over real `noetl run` processes, in headless Chromium: the graph follows the run
live, a failed step shows its error and its output, cancel stops a run, and no response carries
the value of a secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.browser import (
    UIProcess,
    detail_text,
    needs_browser,
    no_secret_in,
    screenshot,
    state_of,
    wait_for,
)

pytestmark = needs_browser
SECRET = "s3cr3t-value-9f2c1"
GATED = """\
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: gated}
spec:
  description: Waits for a file, while another branch fails.
  workload: {gate: GATE}
  workflow:
    - step: start
      next: [{step: gate}, {step: broken}]
    - step: gate
      tool: shell
      args:
        secretRef: creds
        command: >-
          while [ ! -f "{{ workload.gate }}" ]; do sleep 0.05; done;
          test -n "$TOKEN" && echo opened
      next: [{step: after}]
    - step: broken
      tool: shell
      args: {command: "echo broken-on-purpose >&2; exit 3"}
    - step: after
      tool: shell
      loop: {in: [1, 2, 3], iterator: n}
      args: {command: "echo item {{ n }}"}
      next: [{step: end}]
    - step: end
"""
SLEEPY = """\
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: sleepy}
spec:
  workflow:
    - step: start
      next: [{step: nap}]
    - step: nap
      tool: shell
      args: {command: sleep 300}
"""


def start_run(directory: Path, playbook: str, *args: str) -> subprocess.Popen[bytes]:
    with (directory / f"{Path(playbook).stem}.stderr").open("wb") as errors:
        return subprocess.Popen(
            [sys.executable, "-m", "noetl", "run", "-q", playbook, *args],
            cwd=directory,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "gated.yaml").write_text(GATED)
    (tmp_path / "playbooks" / "sleepy.yaml").write_text(SLEEPY)
    (tmp_path / "playbooks" / "broken.yaml").write_text(
        "kind: Playbook\nname: broken\nworkflow:\n  - step: start\n    next: [{step: nowhere}]\n"
        "  - step: lost\n    tool: shell\n    args: {command: true}\n"
    )
    (tmp_path / "creds.env").write_text(f"TOKEN={SECRET}\n")
    return tmp_path


@pytest.fixture
def ui(workspace: Path) -> Iterator[UIProcess]:
    # Its defaults: .noetl/runs and ./playbooks of the directory it starts in.
    process = UIProcess(workspace / "ui.log", "--no-cluster", cwd=workspace)
    yield process
    process.stop()


def run_name(workspace: Path, prefix: str) -> str:
    runs = workspace / ".noetl" / "runs"
    found = sorted(runs.glob(f"{prefix}-*.jsonl")) if runs.is_dir() else []
    return found[0].stem if found else ""


def logged_run(browser: Any, workspace: Path, prefix: str, run: subprocess.Popen[bytes]) -> str:
    """The name of the run's event log, once `noetl run` has opened it."""

    def opened(_: Any) -> str:
        if run.poll() is not None and not run_name(workspace, prefix):
            pytest.fail(f"noetl run ended early: {(workspace / f'{prefix}.stderr').read_text()}")
        return run_name(workspace, prefix)

    return str(wait_for(browser, opened))


def test_a_local_run_seen_live(workspace: Path, ui: UIProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    gate = workspace / "gate"
    run = start_run(
        workspace,
        "playbooks/gated.yaml",
        "--set",
        "gate=gate",  # steps run in the directory of `noetl run`
        "--secret",
        "creds=creds.env",
    )
    try:
        name = logged_run(browser, workspace, "gated", run)
        browser.get(ui.base + "/executions")
        browser.find_element(By.LINK_TEXT, name).click()
        assert name in browser.current_url
        wait_for(browser, lambda d: state_of(d, "gate") == "Running")
        wait_for(browser, lambda d: state_of(d, "broken") == "Failed")
        assert state_of(browser, "after") == "Waiting"
        screenshot(browser, "execution-running")

        # Keyboard: Tab to the failed step's box, Enter opens its detail beside the graph.
        node = browser.find_element(By.CSS_SELECTOR, 'svg .node[data-step="broken"]')
        node.send_keys(Keys.ENTER)
        wait_for(browser, lambda d: "command exited with code 3" in detail_text(d))
        assert "broken-on-purpose" in detail_text(browser)  # its stderr, under Logs

        gate.touch()
        wait_for(browser, lambda d: state_of(d, "after") == "Succeeded 3/3 items")
        wait_for(browser, lambda d: "Failed" in d.find_element(By.ID, "phase").text)
        assert state_of(browser, "gate") == "Succeeded"
        assert state_of(browser, "end") == "Succeeded"  # its branch ran on; the run still fails
        assert "broken" in browser.find_element(By.ID, "error").text
        assert not browser.find_element(By.ID, "cancel").is_displayed()
        # Arrow keys move between the boxes: from the failed step left to its neighbour.
        browser.find_element(By.CSS_SELECTOR, 'svg .node[data-step="broken"]').send_keys(
            Keys.ARROW_LEFT
        )
        assert browser.switch_to.active_element.get_attribute("data-step") == "gate"
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait_for(browser, lambda d: "opened" in detail_text(d))
        assert "creds" in detail_text(browser)  # the Secret's name only
        screenshot(browser, "execution")
        assert run.wait(timeout=60) == 1
        pages = [browser.page_source]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

    # Every page and response, fetched again as a client without script sees them.
    browser.get(ui.base + "/executions")
    screenshot(browser, "executions")
    listing = ui.fetch("/executions")
    assert f'href="/executions/local/{name}"' in listing
    assert "Failed" in ui.fetch("/executions?phase=Failed")
    assert name not in ui.fetch("/executions?phase=Succeeded")
    page = ui.fetch(f"/executions/local/{name}")
    assert "✗ Failed" in page and "broken" in page
    for step in ("start", "gate", "broken", "after", "end"):
        ui.fetch(f"/executions/local/{name}/steps/{step}")
        ui.fetch(f"/executions/local/{name}/steps/{step}?partial=1")
    live = ui.fetch(f"/executions/local/{name}/live")
    assert '"finished":true' in live
    ui.fetch("/playbooks")
    ui.fetch("/playbooks/local/gated")
    no_secret_in(ui.bodies + pages, SECRET)


def test_playbooks_with_their_validation(workspace: Path, ui: UIProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(ui.base + "/playbooks")
    rows = {
        row.text.split()[0]: row.text for row in browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert "Valid" in rows["gated"]
    assert "Invalid" in rows["broken"]
    screenshot(browser, "playbooks")
    browser.find_element(By.LINK_TEXT, "broken").click()
    errors = browser.find_element(By.CSS_SELECTOR, ".errors").text
    assert "workflow[0].next[0].step" in errors and "nowhere" in errors
    # The error sits at its step too, and the step's box says it is invalid.
    assert "nowhere" in browser.find_element(By.ID, "step-start").text
    assert "error" in state_of(browser, "start")
    screenshot(browser, "playbook-invalid")


def test_cancel_a_local_run(workspace: Path, ui: UIProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    run = start_run(workspace, "playbooks/sleepy.yaml")
    try:
        name = logged_run(browser, workspace, "sleepy", run)
        browser.get(f"{ui.base}/executions/local/{name}")
        wait_for(browser, lambda d: state_of(d, "nap") == "Running")
        # The button shows once the log names the run's process (it may not when the page opens).
        wait_for(browser, lambda d: d.find_element(By.ID, "cancel").is_displayed())
        browser.find_element(By.ID, "cancel").click()
        wait_for(browser, lambda d: "Cancelled" in d.find_element(By.ID, "phase").text)
        assert state_of(browser, "nap") == "Cancelled"
        assert run.wait(timeout=30) == 130
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            run.wait()


def test_a_forged_cancel_is_refused(workspace: Path, ui: UIProcess, browser: Any) -> None:
    import urllib.error

    run = start_run(workspace, "playbooks/sleepy.yaml")
    try:
        name = logged_run(browser, workspace, "sleepy", run)
        with pytest.raises(urllib.error.HTTPError) as refused:
            ui.fetch(f"/executions/local/{name}/cancel", data=b"token=guess")
        assert refused.value.code == 403
        assert run.poll() is None
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
