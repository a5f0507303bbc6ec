"""Reads of drivers that start together: one namespace-wide list answers those that wait for a
token together, each caller getting what its own selector or name picks; a lone read is asked as
it is."""

from __future__ import annotations

import asyncio

from noetl.kube.shared_reads import SharedReads, selected
from tests.kube.fake_api import FakeKubeApi

NS = "team"


def stored_jobs(api: FakeKubeApi) -> None:
    for execution in ("a", "b", "c"):
        for step in ("x", "y"):
            labels = {"noetl.io/execution": execution, "noetl.io/step": step}
            api.put(
                {
                    "kind": "Job",
                    "metadata": {"name": f"{execution}-{step}", "namespace": NS, "labels": labels},
                }
            )
    api.put({"kind": "Job", "metadata": {"name": "not-ours", "namespace": NS}})


def names(objects: list[dict]) -> list[str]:
    return sorted(obj["metadata"]["name"] for obj in objects)


async def test_reads_waiting_together_are_answered_by_one_list_of_the_namespace():
    api = FakeKubeApi()
    stored_jobs(api)
    reads = SharedReads(api)  # type: ignore[arg-type]
    a, b, c = await asyncio.gather(
        *(reads.list_jobs(NS, f"noetl.io/execution={name}") for name in "abc")
    )
    assert (names(a), names(b), names(c)) == (["a-x", "a-y"], ["b-x", "b-y"], ["c-x", "c-y"])
    assert api.reads == [("list", "Job", "noetl.io/execution")]


async def test_a_read_waiting_alone_is_asked_as_it_is_and_later_ones_get_a_newer_answer():
    api = FakeKubeApi()
    stored_jobs(api)
    reads = SharedReads(api)  # type: ignore[arg-type]
    assert names(await reads.list_jobs(NS, "noetl.io/execution=a")) == ["a-x", "a-y"]
    api.put(
        {
            "kind": "Job",
            "metadata": {"name": "a-z", "namespace": NS, "labels": {"noetl.io/execution": "a"}},
        }
    )
    assert names(await reads.list_jobs(NS, "noetl.io/execution=a")) == ["a-x", "a-y", "a-z"]
    assert api.reads == [("list", "Job", "noetl.io/execution=a")] * 2


async def test_gets_by_name_waiting_together_share_a_list_and_a_missing_one_is_none():
    api = FakeKubeApi()
    for name in ("one", "two"):
        api.put({"kind": "Execution", "metadata": {"name": name, "namespace": NS}})
    reads = SharedReads(api)  # type: ignore[arg-type]
    one, gone = await asyncio.gather(
        reads.get_custom("executions", NS, "one"), reads.get_custom("executions", NS, "gone")
    )
    assert one is not None and one["metadata"]["name"] == "one" and gone is None
    assert api.reads == [("list", "Execution", "")]


async def test_a_failed_list_fails_every_read_that_waited_for_it():
    api = FakeKubeApi()
    api.fail("list", "Job", TimeoutError("read timed out"))
    reads = SharedReads(api)  # type: ignore[arg-type]
    answers = await asyncio.gather(
        reads.list_jobs(NS, "noetl.io/execution=a"),
        reads.list_jobs(NS, "noetl.io/execution=b"),
        return_exceptions=True,
    )
    assert all(isinstance(answer, TimeoutError) for answer in answers)


def test_selectors_of_equalities_and_bare_keys():
    job = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    assert selected(job, "a=1,b=2") and selected(job, "a") and selected(job, "")
    assert not selected(job, "a=2") and not selected(job, "c")
