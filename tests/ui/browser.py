"""Helpers for the UI's tests: `noetl ui` as a real process, and headless Chromium driving it.

Chromium and chromedriver come from Debian (`.ci/setup` installs them); Selenium drives them with
no browser download of its own. Chromium's background services (updates, sync, safe browsing)
are turned off: they open connections that this network refuses.
Screenshots are written only when NOETL_UI_SCREENSHOTS names a directory (docs/images).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.control_plane import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1366,768",
)


def have_browser() -> bool:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()


# In CI (.ci/setup installs them) a missing browser is a failure, not a skip.
needs_browser = pytest.mark.skipif(
    not have_browser() and not os.environ.get("CI"),
    reason="no Chromium/chromedriver (Debian) or no selenium",
)


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class UIProcess:
    """`noetl ui` in a child process; every body it sends through `fetch` is kept for checks."""

    def __init__(
        self, log: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.bodies: list[str] = []
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "noetl", "ui", "--port", str(self.port), *args],
            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})},
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, f"noetl ui exited: see {log}"
            try:
                self.fetch("/healthz")
                return
            except OSError:
                assert time.monotonic() < deadline, f"noetl ui did not answer: see {log}"
                time.sleep(0.1)

    def fetch(self, path: str, data: bytes | None = None) -> str:
        with urllib.request.urlopen(self.base + path, data=data, timeout=30) as response:
            body = response.read().decode()
        self.bodies.append(body)
        return body

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def screenshot(driver: Any, name: str) -> None:
    """docs/images/ui-NAME.png, when NOETL_UI_SCREENSHOTS asks for screenshots."""
    directory = os.environ.get("NOETL_UI_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(directory) / f"ui-{name}.png"))


def state_of(driver: Any, step: str) -> str:
    """The state word a step's box in the graph shows (what a reader of the page sees)."""
    from selenium.webdriver.common.by import By

    node = driver.find_element(By.CSS_SELECTOR, f'svg .node[data-step="{step}"] .label')
    return str(node.text)


def phase(driver: Any) -> str:
    """The phase an execution's page shows, with its symbol."""
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "phase").text)


def shown(driver: Any, action: str) -> bool:
    """Whether the button of `action` is shown on an execution's page."""
    from selenium.webdriver.common.by import By

    return bool(driver.find_element(By.ID, action).is_displayed())


def wait_for(driver: Any, condition: Any, timeout: float = 120) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The detail panel is replaced as the step changes: an element read a moment ago may be gone.
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(lambda d: condition(d))


def detail_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "detail").text)


def no_secret_in(bodies: list[str], secret: str) -> None:
    leaks = [body[:200] for body in bodies if secret in body]
    assert not leaks, f"the secret's value is in {len(leaks)} responses: {leaks}"
