"""Which actions apply to an execution in each phase, and the checks an action passes before it
runs (`noetl.ui.access`), through the real server in this process (aiohttp's test client)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from noetl.ui.access import COOKIE, Access, is_loopback
from noetl.ui.model import applicable_actions
from noetl.ui.server import UI
from noetl.ui.sources.local import LocalRuns

ALL = {"reachable": True, "awaiting_approval": False, "retryable": True}


@pytest.mark.parametrize(
    ("phase", "given", "expected"),
    [
        ("Pending", ALL, ("cancel", "suspend")),
        ("Running", ALL, ("cancel", "suspend")),
        ("Running", {**ALL, "awaiting_approval": True}, ("cancel", "suspend", "resume")),
        ("Suspended", ALL, ("cancel", "resume")),
        ("Running", {**ALL, "reachable": False}, ()),  # a local run whose process is not there
        ("Succeeded", ALL, ()),
        ("Failed", ALL, ("retry",)),
        ("Cancelled", ALL, ("retry",)),
        ("Interrupted", ALL, ("retry",)),
        ("Failed", {**ALL, "retryable": False}, ()),  # a log that does not hold its playbook
    ],
)
def test_actions_that_apply_in_each_phase(
    phase: str, given: dict[str, bool], expected: tuple[str, ...]
) -> None:
    assert applicable_actions(phase, **given) == expected


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("localhost.example.com", False),
        ("evil.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@asynccontextmanager
async def client(ui: UI) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(ui.app(), host="127.0.0.1")) as test_client:
        yield test_client


def origin(test_client: TestClient) -> dict[str, str]:
    return {"Origin": f"http://127.0.0.1:{test_client.port}"}


async def test_actions_are_off_unless_asked_for(tmp_path: Path) -> None:
    async with client(UI([LocalRuns(tmp_path)])) as test_client:
        for action in ("cancel", "suspend", "resume", "retry"):
            response = await test_client.post(
                f"/executions/local/x/{action}", data={"token": "t"}, headers=origin(test_client)
            )
            assert response.status == 403
            assert "actions are off" in await response.text()


async def test_an_action_needs_the_form_token_and_a_request_from_the_views_pages(
    tmp_path: Path,
) -> None:
    access = Access()
    async with client(UI([LocalRuns(tmp_path)], actions=True, access=access)) as test_client:
        url = "/executions/local/absent/cancel"
        good = {"token": access.form_token}

        async def refused(data: dict[str, str], headers: dict[str, str]) -> str:
            response = await test_client.post(url, data=data, headers=headers)
            assert response.status == 403
            return await response.text()

        assert "form token" in await refused({"token": "guess"}, origin(test_client))
        assert "form token" in await refused({}, origin(test_client))
        assert "own pages" in await refused(good, {})  # neither Origin nor Referer
        assert "own pages" in await refused(good, {"Origin": "http://evil.example"})
        assert "own pages" in await refused(good, {"Origin": "null"})
        # A page of another site whose name resolves to 127.0.0.1 (DNS rebinding).
        rebound = {"Host": "evil.example", "Origin": "http://evil.example"}
        assert "listens on loopback" in await refused(good, rebound)
        # Through every check: the execution is looked for (there is none).
        response = await test_client.post(url, data=good, headers=origin(test_client))
        assert response.status == 404
        referred = {"Referer": f"http://127.0.0.1:{test_client.port}/executions/local/absent"}
        assert (await test_client.post(url, data=good, headers=referred)).status == 404
        assert (await test_client.post("/executions/local/x/delete", data=good)).status == 404


async def test_beyond_loopback_actions_need_the_access_token(tmp_path: Path) -> None:
    # A run in progress, written by this process (which keeps its log open, as `noetl run` does).
    log = tmp_path / "going-1.jsonl"
    header = {"type": "Run", "pid": os.getpid(), "execution": "going-1", "name": "going"}
    started = {"type": "ExecutionStarted", "at": 1.0, "execution": "going-1"}
    log.write_text(json.dumps(header) + "\n" + json.dumps(started) + "\n")
    access = Access("sesame", loopback_only=False)
    ui = UI([LocalRuns(tmp_path)], actions=True, access=access)
    with log.open("a"):
        await signing_in(ui, access)


async def signing_in(ui: UI, access: Access) -> None:
    async with client(ui) as test_client:
        url = "/executions/local/absent/cancel"
        good = {"token": access.form_token}
        response = await test_client.post(url, data=good, headers=origin(test_client))
        assert response.status == 403
        assert "access token" in await response.text()
        assert (await test_client.get("/executions?token=guess")).status == 403
        page = await (await test_client.get("/executions/local/going-1")).text()
        assert 'method="post"' not in page and "need this view's access token" in page

        response = await test_client.get("/executions?phase=Failed&token=sesame")
        assert [r.status for r in response.history] == [303]
        assert response.url.path_qs == "/executions?phase=Failed"  # the token left the address
        cookie = response.history[0].cookies[COOKIE]
        assert cookie.value == "sesame" and cookie["httponly"] and cookie["samesite"] == "Strict"
        response = await test_client.post(url, data=good, headers=origin(test_client))
        assert response.status == 404  # signed in: through to looking for the execution
        page = await (await test_client.get("/executions/local/going-1")).text()
        assert 'id="cancel-form"' in page and "access token" not in page


def test_form_tokens_differ_between_server_processes() -> None:
    first, second = Access(), Access()
    assert first.form_token != second.form_token
    assert re.fullmatch(r"[\w-]{32}", first.form_token)


def test_actions_beyond_loopback_print_a_token_that_signs_in(tmp_path: Path) -> None:
    """`noetl ui --actions --host 0.0.0.0` as a process: the token it makes is printed once as a
    link; posts need it; a token given in NOETL_UI_TOKEN is used and never printed."""
    import http.cookiejar
    import urllib.error
    import urllib.request

    from tests.ui.browser import UIProcess

    args = ("--no-cluster", "--actions", "--host", "0.0.0.0", "--runs", str(tmp_path / "runs"))
    made = UIProcess(tmp_path / "made.log", *args)
    try:
        printed = (tmp_path / "made.log").read_text()
        found = re.search(rf"open http://0\.0\.0\.0:{made.port}/\?token=([\w-]+)", printed)
        assert found, printed
        page = made.fetch("/executions")
        assert found[1] not in page
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(f"{made.base}/executions?token=guess")
        assert refused.value.code == 403
        with opener.open(f"{made.base}/executions?phase=Failed&token={found[1]}") as response:
            assert response.url == f"{made.base}/executions?phase=Failed"
    finally:
        made.stop()

    given = UIProcess(tmp_path / "given.log", *args, env={"NOETL_UI_TOKEN": "sesame-given"})
    try:
        given.fetch("/executions?token=sesame-given")
    finally:
        given.stop()
    assert "token" not in (tmp_path / "given.log").read_text()
