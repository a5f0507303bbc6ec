"""Reads that many drivers make at once, made as one namespace-wide list.

A driver that starts reads its Execution, its Playbook, its playbook snapshot and results, and,
when it resumes, its Jobs, their pods and its child Executions: five reads or more each. After an
operator restart every live Execution's driver starts at once, and fifty of them would queue
some 250 reads at the token bucket. `SharedReads` stands in front of `KubeApi` for those reads:
reads of the same kind in one namespace that wait for a token together are answered by one list
of the namespace (every Job of an execution, every Execution or Playbook, every ConfigMap the
operator made, every step pod), each caller getting what its own selector or name picks from
it. A read that waits alone is made as it was asked, so a lone driver costs what it did.

A batch is open until its token comes, and the list is sent after that: every caller's answer
is at least as new as its question, as a read of its own would be. While the bucket has tokens to
spare (after a restart, at first), nothing waits: so while several drivers do their start-up
reads (`starting`), a batch whose kind was asked within the last `GATHER_SECONDS` stays open
that long first. A lone driver's reads, and the reads of drivers past their start, are asked at
once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from noetl.kube.api import KubeApi
from noetl.kube.manifests import EXECUTION_LABEL, PURPOSE_LABEL

Objects = list[dict[str, Any]]
GATHER_SECONDS = 0.02


@dataclass
class _Batch:
    questions: list[tuple[str, asyncio.Future[Objects]]] = field(default_factory=list)


def selected(obj: dict[str, Any], selector: str) -> bool:
    """Whether `obj`'s labels match an equality selector (`a=b,c=d`) or name a bare key (`a`)."""
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        key, equals, value = term.partition("=")
        if (labels.get(key) != value) if equals else key not in labels:
            return False
    return True


class SharedReads:
    """The reads of `KubeApi` a driver makes at its start, batched across drivers; every other
    call goes straight to the API."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self._open: dict[tuple[str, str], _Batch] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._asked: dict[tuple[str, str], float] = {}  # when each kind's last batch opened
        self.starting = 0  # drivers doing their start-up reads now

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)  # writes, and reads no driver makes at its start

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = await self._read(
            plural,
            namespace,
            f"name:{name}",
            lambda api: _as_list(api.get_custom(plural, namespace, name)),
            lambda api: api.list_custom(plural, namespace, ""),
        )
        return found[0] if found else None

    async def list_custom(self, plural: str, namespace: str, selector: str) -> Objects:
        return await self._read(
            plural,
            namespace,
            selector,
            lambda api: api.list_custom(plural, namespace, selector),
            lambda api: api.list_custom(plural, namespace, ""),
        )

    async def list_jobs(self, namespace: str, selector: str) -> Objects:
        return await self._listed("list_jobs", "jobs", namespace, selector, EXECUTION_LABEL)

    async def list_pods(self, namespace: str, selector: str) -> Objects:
        return await self._listed("list_pods", "pods", namespace, selector, EXECUTION_LABEL)

    async def list_config_maps(self, namespace: str, selector: str) -> Objects:
        return await self._listed(
            "list_config_maps", "configmaps", namespace, selector, PURPOSE_LABEL
        )

    async def _listed(
        self, method: str, resource: str, namespace: str, selector: str, wide: str
    ) -> Objects:
        """A list by `selector`, or its part of a list by `wide` that answers several."""
        return await self._read(
            resource,
            namespace,
            selector,
            lambda api: getattr(api, method)(namespace, selector),
            lambda api: getattr(api, method)(namespace, wide),
        )

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = await self._read(
            "configmaps",
            namespace,
            f"name:{name}",
            lambda api: _as_list(api.read_config_map(namespace, name)),
            lambda api: api.list_config_maps(namespace, PURPOSE_LABEL),
        )
        return found[0] if found else None

    async def _read(
        self,
        resource: str,
        namespace: str,
        question: str,
        alone: Callable[[KubeApi], Awaitable[Objects]],
        together: Callable[[KubeApi], Awaitable[Objects]],
    ) -> Objects:
        """`question` is a selector, or `name:<name>`; `alone` answers it by itself, `together`
        lists what answers every question of its kind in the namespace."""
        key = (resource, namespace)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Objects] = loop.create_future()
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch()
            recent = loop.time() - self._asked.get(key, -GATHER_SECONDS) < GATHER_SECONDS
            streaming = recent and self.starting > 1
            self._asked[key] = loop.time()
            task = asyncio.create_task(self._send(key, batch, alone, together, streaming))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        batch.questions.append((question, answer))
        return await answer

    async def _send(
        self,
        key: tuple[str, str],
        batch: _Batch,
        alone: Callable[[KubeApi], Awaitable[Objects]],
        together: Callable[[KubeApi], Awaitable[Objects]],
        streaming: bool,
    ) -> None:
        try:
            try:
                if streaming:
                    await asyncio.sleep(GATHER_SECONDS)
                await self.api.acquire()
            finally:
                del self._open[key]  # later questions wait for a newer answer
            paid = self.api.without_limit()
            if len(batch.questions) == 1:
                answers = [await alone(paid)]
            else:
                listed = await together(paid)
                answers = [_pick(listed, question) for question, _ in batch.questions]
        except BaseException as error:
            for _, answer in batch.questions:
                if not answer.done():
                    answer.set_exception(error)
            if isinstance(error, asyncio.CancelledError):
                raise
            return  # the askers have it: raised here too, nobody would read it
        for (_, answer), objects in zip(batch.questions, answers, strict=True):
            if not answer.done():
                answer.set_result(objects)


async def _as_list(read: Awaitable[dict[str, Any] | None]) -> Objects:
    found = await read
    return [found] if found is not None else []


def _pick(listed: Objects, question: str) -> Objects:
    if question.startswith("name:"):
        name = question.removeprefix("name:")
        return [obj for obj in listed if obj["metadata"]["name"] == name]
    return [obj for obj in listed if selected(obj, question)]
