"""The operator's own watch of step pods: against the test control plane's API server, what it
lists at its start, what it follows after, and only what carries the selected label; against
scripted answers, how it resumes and lists again."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from noetl.kube.watches import Watch

LABEL = "noetl.io/execution"


def pod(name: str, labelled: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {LABEL: "x"} if labelled else {"other": "x"}},
        "spec": {"containers": [{"name": "c", "image": "none.invalid/none"}]},
    }


@pytest.mark.cluster
async def test_a_watch_hands_over_what_it_lists_then_what_changes_and_only_the_selected(
    kube_cluster: Any, kube_namespace: str
):
    core = client.CoreV1Api(kube_cluster.api_client())
    core.create_namespaced_pod(kube_namespace, pod("before", labelled=True))
    core.create_namespaced_pod(kube_namespace, pod("unlabelled", labelled=False))
    seen: asyncio.Queue[tuple[str | None, str]] = asyncio.Queue()

    def changed(kind: str | None, obj: dict[str, Any]) -> None:
        seen.put_nowait((kind, obj["metadata"]["name"]))

    watch = Watch(kube_cluster.api_client(), "pods", kube_namespace, LABEL, changed)
    watch.start()

    async def changes_until(last: tuple[str, str]) -> list[tuple[str | None, str]]:
        changes = [await asyncio.wait_for(seen.get(), 30)]
        while changes[-1] != last:  # the scheduler's updates come in between
            changes.append(await asyncio.wait_for(seen.get(), 30))
        return changes

    try:
        assert await asyncio.wait_for(seen.get(), 30) == (None, "before")
        core.create_namespaced_pod(kube_namespace, pod("after", labelled=True))
        changes = await changes_until(("ADDED", "after"))
        core.delete_namespaced_pod("before", kube_namespace, grace_period_seconds=0)
        changes += await changes_until(("DELETED", "before"))
        assert {name for _, name in changes} == {"before", "after"}  # never "unlabelled"
    finally:
        watch.stop()


@pytest.mark.cluster
async def test_a_watch_of_all_namespaces_keeps_to_those_its_patterns_match(
    kube_cluster: Any, kube_namespace: str
):
    core = client.CoreV1Api(kube_cluster.api_client())
    here: asyncio.Queue[tuple[str | None, str]] = asyncio.Queue()
    elsewhere: list[str] = []

    def seen_here(kind: str | None, obj: dict[str, Any]) -> None:
        if obj["metadata"]["namespace"] == kube_namespace:  # not another test's
            here.put_nowait((kind, obj["metadata"]["name"]))

    def seen_elsewhere(kind: str | None, obj: dict[str, Any]) -> None:
        elsewhere.append(obj["metadata"]["namespace"])

    api = kube_cluster.api_client()
    watches = [
        Watch(api, "pods", None, LABEL, seen_here, [kube_namespace[:-5] + "*"]),
        Watch(api, "pods", None, LABEL, seen_elsewhere, ["no-such-namespace-*"]),
    ]
    for watch in watches:
        watch.start()
    try:
        core.create_namespaced_pod(kube_namespace, pod("p", labelled=True))
        assert (await asyncio.wait_for(here.get(), 30))[1] == "p"
        core.delete_namespaced_pod("p", kube_namespace, grace_period_seconds=0)
        while (await asyncio.wait_for(here.get(), 30))[0] != "DELETED":
            pass
        assert elsewhere == []
    finally:
        for watch in watches:
            watch.stop()


class Scripted:
    """A list function that answers from a script: a list (a dict) or a stream (its lines)."""

    def __init__(self, script: list[Any], at_end: Any) -> None:
        self.script = script
        self.at_end = at_end  # called when the script is spent
        self.asked: list[str | None] = []  # the resourceVersion each watch asked for

    def __call__(self, **kwargs: Any) -> Any:
        self.asked.append(kwargs.get("resource_version"))
        if not self.script:
            self.at_end()
            return Response([])
        answer = self.script.pop(0)
        return Response(answer if isinstance(answer, list) else [json.dumps(answer)])


class Response:
    def __init__(self, lines: list[str]) -> None:
        self.lines = [line.encode() for line in lines]
        self.data = self.lines[0] if self.lines else b""

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.lines)

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def named(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "n", "resourceVersion": version}}


def change(kind: str, obj: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "object": obj})


async def test_a_watch_resumes_from_the_last_version_and_lists_again_when_it_is_gone():
    done = asyncio.Event()
    seen: list[tuple[str | None, str]] = []
    watch = Watch(
        client.ApiClient(),
        "pods",
        "n",
        LABEL,
        lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
        backoffs=[0.01],
    )
    loop = asyncio.get_running_loop()

    released = threading.Event()

    def spent() -> None:  # in the watch's thread: hold it there until the test has looked
        loop.call_soon_threadsafe(done.set)  # after the changes handed over before it
        released.wait(10)

    script = Scripted(
        [
            {"items": [named("a", "5")], "metadata": {"resourceVersion": "10"}},
            [change("ADDED", named("b", "11")), change("BOOKMARK", named("", "12"))],
            [change("ERROR", {"code": 410, "message": "too old resource version"})],
            {"items": [named("a", "5"), named("b", "11")], "metadata": {"resourceVersion": "20"}},
        ],
        spent,
    )
    watch._list = script  # the API server's answers, scripted
    watch.start()
    try:
        await asyncio.wait_for(done.wait(), 10)
        assert script.asked == [None, "10", "12", None, "20"]
        assert seen == [(None, "a"), ("ADDED", "b"), (None, "a"), (None, "b")]
    finally:
        watch.stop()
        released.set()
