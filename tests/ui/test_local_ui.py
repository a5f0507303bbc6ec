"""`noetl ui --actions` over real `noetl run` processes, in headless Chromium: the graph and the
list follow runs live, a failed step shows its error and its output, the buttons cancel, suspend,
resume and retry runs (also as plain forms, without script), forged or disabled actions are
refused, and no response carries the value of a secret."""

from __future__ import annotations

import json
import os
import re
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
    phase,
    screenshot,
    shown,
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


HELD = """\
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: held}
spec:
  workflow:
    - step: start
      next: [{step: first}]
    - step: first
      tool: shell
      args: {command: 'while [ ! -f first.gate ]; do sleep 0.05; done'}
      next: [{step: second}]
    - step: second
      tool: shell
      args: {command: echo second}
"""
FLAKY = """\
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: flaky}
spec:
  workflow:
    - step: start
      next: [{step: once}]
    - step: once
      tool: shell
      args: {command: 'echo ran >> once.count'}
      next: [{step: check}]
    - step: check
      tool: shell
      args: {command: 'test -f fixed'}
"""
QUICK = """\
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: quick}
spec:
  workflow:
    - step: start
      next: [{step: hello}]
    - step: hello
      tool: shell
      args: {command: 'while [ ! -f quick.gate ]; do sleep 0.05; done'}
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    for name, text in (("gated", GATED), ("sleepy", SLEEPY), ("held", HELD), ("flaky", FLAKY)):
        (tmp_path / "playbooks" / f"{name}.yaml").write_text(text)
    (tmp_path / "playbooks" / "quick.yaml").write_text(QUICK)
    (tmp_path / "playbooks" / "broken.yaml").write_text(
        "kind: Playbook\nname: broken\nworkflow:\n  - step: start\n    next: [{step: nowhere}]\n"
        "  - step: lost\n    tool: shell\n    args: {command: true}\n"
    )
    (tmp_path / "creds.env").write_text(f"TOKEN={SECRET}\n")
    return tmp_path


@pytest.fixture
def ui(workspace: Path) -> Iterator[UIProcess]:
    # Its defaults: .noetl/runs and ./playbooks of the directory it starts in.
    process = UIProcess(workspace / "ui.log", "--no-cluster", "--actions", cwd=workspace)
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


def test_suspend_and_resume_a_local_run(workspace: Path, ui: UIProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    run = start_run(workspace, "playbooks/held.yaml")
    try:
        name = logged_run(browser, workspace, "held", run)
        browser.get(f"{ui.base}/executions/local/{name}")
        wait_for(browser, lambda d: state_of(d, "first") == "Running" and shown(d, "suspend"))
        assert not shown(browser, "resume") and not shown(browser, "retry")
        # By keyboard: the button takes the focus and Enter presses it.
        browser.find_element(By.ID, "suspend").send_keys(Keys.ENTER)
        wait_for(browser, lambda d: "Suspended" in phase(d))
        wait_for(browser, lambda d: shown(d, "resume") and not shown(d, "suspend"))
        screenshot(browser, "execution-suspended")
        # The running step goes on to its end; the next one is held while suspended.
        (workspace / "first.gate").touch()
        wait_for(browser, lambda d: state_of(d, "first") == "Succeeded")
        assert "Suspended" in phase(browser) and state_of(browser, "second") == "Waiting"
        browser.find_element(By.ID, "resume").click()
        wait_for(browser, lambda d: "Succeeded" in phase(d))
        assert state_of(browser, "second") == "Succeeded"
        assert run.wait(timeout=60) == 0
        assert not browser.find_elements(By.CSS_SELECTOR, "form[data-action]:not([hidden])")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def action_error(driver: Any) -> str:
    """What a refused action says beside the buttons ("" when nothing was refused)."""
    from selenium.common.exceptions import NoSuchElementException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.ID, "action-error").text)
    except NoSuchElementException:  # another page: the new run's, which has no error yet
        return ""


def test_retry_a_failed_local_run(workspace: Path, ui: UIProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    run = start_run(workspace, "playbooks/flaky.yaml")
    assert run.wait(timeout=120) == 1
    name = run_name(workspace, "flaky")
    browser.get(f"{ui.base}/executions/local/{name}")
    assert "Failed" in phase(browser) and state_of(browser, "check") == "Failed"
    assert shown(browser, "retry") and not shown(browser, "cancel")
    (workspace / "fixed").touch()
    browser.find_element(By.ID, "retry").click()
    # The page of the new run (a `noetl retry` the view started), followed to its end.
    refused = wait_for(browser, lambda d: name not in d.current_url or action_error(d))
    assert refused is True, refused
    retried = browser.current_url.rpartition("/")[2]
    assert (
        retried.startswith("flaky-") and (workspace / ".noetl/runs" / f"{retried}.jsonl").is_file()
    )
    wait_for(browser, lambda d: "Succeeded" in phase(d))
    assert state_of(browser, "check") == "Succeeded"
    # What succeeded before is kept, not run again.
    assert (workspace / "once.count").read_text() == "ran\n"
    header = json.loads((workspace / ".noetl/runs" / f"{retried}.jsonl").read_text().split("\n")[0])
    assert header["retryOf"] == name


def test_the_list_follows_runs_live(workspace: Path, ui: UIProcess, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(ui.base + "/executions")
    assert "No executions" in browser.find_element(By.ID, "rows").text
    run = start_run(workspace, "playbooks/quick.yaml")
    try:
        name = logged_run(browser, workspace, "quick", run)
        # No reload: the row comes, then its phase changes.
        row = wait_for(browser, lambda d: d.find_elements(By.LINK_TEXT, name))[0]
        assert row.get_attribute("href").endswith(f"/executions/local/{name}")
        wait_for(browser, lambda d: "Running" in d.find_element(By.ID, "rows").text)
        (workspace / "quick.gate").touch()
        wait_for(browser, lambda d: "Succeeded" in d.find_element(By.ID, "rows").text)
        assert run.wait(timeout=60) == 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def post_form(ui: UIProcess, path: str, token: str, **headers: str) -> tuple[int, str]:
    """A form posted as a browser without script posts it: the answer after any redirect."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        ui.base + path, data=f"token={token}".encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_forms_work_without_script_and_forged_or_disabled_actions_are_refused(
    workspace: Path, ui: UIProcess, browser: Any
) -> None:
    run = start_run(workspace, "playbooks/sleepy.yaml")
    read_only = None
    try:
        name = logged_run(browser, workspace, "sleepy", run)
        page = ui.fetch(f"/executions/local/{name}")
        match = re.search(r'name="token" value="([^"]+)"', page)
        assert match, "no form token in the page"
        token, path = match[1], f"/executions/local/{name}/suspend"
        own = {"Origin": ui.base}
        assert post_form(ui, path, "guess", **own)[0] == 403
        assert post_form(ui, path, token)[0] == 403  # not from the view's pages
        assert post_form(ui, path, token, Origin="http://evil.example")[0] == 403
        assert run.poll() is None
        # As a browser without script: the form posts, the answer redirects to the page.
        wait_for(
            browser, lambda _: 'id="suspend-form" data-action="suspend">' in ui.fetch(path[:-8])
        )
        status, answer = post_form(ui, path, token, **own)
        assert status == 200 and f"<h1>{name}</h1>" in answer
        wait_for(browser, lambda _: "‖ Suspended" in ui.fetch(f"/executions/local/{name}"))
        status, answer = post_form(ui, path, token, **own)  # suspended already: does not apply
        assert status == 409 and "suspend does not apply" in answer

        # A view without --actions: no form, and a post is refused whatever it carries.
        read_only = UIProcess(workspace / "ro.log", "--no-cluster", cwd=workspace)
        assert '<form method="post"' not in read_only.fetch(f"/executions/local/{name}")
        assert post_form(read_only, f"/executions/local/{name}/cancel", token, **own)[0] == 403
        assert run.poll() is None
    finally:
        if read_only is not None:
            read_only.stop()
        run.send_signal(signal.SIGKILL)
        run.wait()
