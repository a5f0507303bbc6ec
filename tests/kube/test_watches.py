"""The operator's own watch of step pods, against the test control plane's API server: what it
lists at its start, what it follows after, and only what carries the selected label."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client

from noetl.kube.watches import Watch

pytestmark = pytest.mark.cluster
LABEL = "noetl.io/execution"


def pod(name: str, labelled: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {LABEL: "x"} if labelled else {"other": "x"}},
        "spec": {"containers": [{"name": "c", "image": "none.invalid/none"}]},
    }


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
    try:
        assert await asyncio.wait_for(seen.get(), 30) == (None, "before")
        core.create_namespaced_pod(kube_namespace, pod("after", labelled=True))
        assert await asyncio.wait_for(seen.get(), 30) == ("ADDED", "after")
        core.delete_namespaced_pod("before", kube_namespace, grace_period_seconds=0)
        changes = [await asyncio.wait_for(seen.get(), 30)]
        while changes[-1] != ("DELETED", "before"):
            changes.append(await asyncio.wait_for(seen.get(), 30))
        assert {name for _, name in changes} <= {"before", "after"}  # never "unlabelled"
    finally:
        watch.stop()


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
