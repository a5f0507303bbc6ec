"""The server in this process (aiohttp's test client): what it answers when a cluster is out of
reach or absent, when actions are off, and for what does not exist."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from kubernetes import client

from noetl.ui.server import UI, build
from noetl.ui.sources.cluster import ClusterRuns
from noetl.ui.sources.local import LocalRuns
from tests.cluster.control_plane import free_port


async def serve(ui: UI) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(ui.app())) as test_client:
        yield test_client


@pytest.fixture
async def unreachable(tmp_path: Path) -> AsyncIterator[TestClient]:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    configuration.retries = False
    cluster = ClusterRuns(client.ApiClient(configuration))
    async for test_client in serve(UI([LocalRuns(tmp_path), cluster], actions=False)):
        yield test_client


async def test_a_cluster_out_of_reach_is_a_note_not_a_failure(unreachable: TestClient) -> None:
    response = await unreachable.get("/executions")
    assert response.status == 200
    page = await response.text()
    assert '<span class="note">cluster: ' in page
    assert (await unreachable.get("/playbooks")).status == 200
    response = await unreachable.get("/executions/team-a/run-1")
    assert response.status == 502
    assert "could not read it" in await response.text()


async def test_actions_off_refuse_cancel_and_unknown_things_are_404(
    unreachable: TestClient,
) -> None:
    response = await unreachable.post("/executions/local/x/cancel", data={"token": "t"})
    assert response.status == 403
    assert (await unreachable.get("/executions/local/nothing")).status == 404
    assert (await unreachable.get("/executions/local/nothing/steps/a")).status == 404
    assert (await unreachable.get("/static/../../etc/passwd")).status == 404
    assert (await unreachable.get("/static/other.js")).status == 404


async def test_without_a_kubeconfig_the_cluster_part_is_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    ui = build(tmp_path / "runs", None)
    assert [source.name for source in ui.sources] == ["local"]
    assert ui.notes and ui.notes[0].startswith("cluster: not shown")
    async for test_client in serve(ui):
        page = await (await test_client.get("/executions")).text()
        assert "cluster: not shown" in page and "No executions" in page
