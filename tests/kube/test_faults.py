"""Drivers that fail, on the in-memory API and a fake clock: nothing stays Running for ever.

Errors are told apart (a conflict is retried at once, transient trouble after a growing wait,
permanent trouble not at all); an execution its driver cannot drive ends Failed with reason
ReconcileError and the API server's words, and a cancel is honoured while its driver cannot
resume.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, ClassVar

import pytest
from kubernetes.client.exceptions import ApiException

from noetl.kube import metrics
from noetl.kube.driver import OperatorContext
from noetl.kube.faults import Backoff, classify
from noetl.kube.inbox import ExecutionChanged, JobChanged
from noetl.kube.registry import DriverRegistry
from noetl.kube.settings import OperatorSettings
from tests.kube.fake_api import FakeClock, FakeKubeApi, WatchedQueue
from tests.kube.test_driver import CHAIN, NS, submit


def refusal(status: int, message: str = "") -> ApiException:
    error = ApiException(status=status, reason="Refused")
    error.body = f'{{"message": "{message}"}}' if message else None
    return error


@pytest.mark.parametrize(
    ("error", "trouble"),
    [
        (refusal(409), "conflict"),
        (refusal(429), "transient"),
        (refusal(410), "transient"),
        (refusal(503), "transient"),
        (TimeoutError("read timed out"), "transient"),
        (ConnectionResetError(), "transient"),
        (refusal(403, "exceeded quota: cm"), "permanent"),
        (refusal(422, "spec.x: Invalid value"), "permanent"),
        (refusal(404), "permanent"),
        (refusal(413), "permanent"),
        (refusal(500, "etcdserver: request is too large"), "permanent"),
    ],
    ids=lambda value: str(getattr(value, "status", None) or value),
)
def test_errors_are_told_apart(error: BaseException, trouble: str):
    assert classify(error) == trouble


def test_backoff_grows_to_its_cap_with_jitter():
    backoff = Backoff(1.0, 30.0, random.Random(7))
    delays = [backoff.delay(n) for n in range(1, 9)]
    assert all(
        0.5 * min(30, 2 ** (n - 1)) <= d <= min(30, 2 ** (n - 1)) for n, d in enumerate(delays, 1)
    )
    assert delays[-1] > delays[0] and max(delays) <= 30


class Cluster:
    """The registry of drivers on the fake API; the test finishes Jobs and moves the clock."""

    made: ClassVar[list[Cluster]] = []

    def __init__(self, spec: dict[str, Any] = CHAIN, **settings: Any) -> None:
        self.api = FakeKubeApi()
        submit(self.api, spec)
        self.clock = FakeClock()
        context = OperatorContext(self.api, OperatorSettings(**settings), clock=self.clock)  # type: ignore[arg-type]
        self.drivers = DriverRegistry(context)
        Cluster.made.append(self)

    def start(self) -> None:
        self.drivers.deliver(NS, "run")
        self.queue = WatchedQueue()  # kept by every driver the registry starts for the run
        self.drivers._drivers[(NS, "run")].queue = self.queue

    async def idle(self) -> None:
        """Until the run's driver ended, waits for a message, or waits out a backoff."""
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:  # polls the registry for a state
            task = self.drivers._tasks.get((NS, "run"))
            if task is None or self.drivers.backing_off(NS, "run"):
                return
            if self.queue.waiting.is_set() and self.queue.empty():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the driver neither waited nor ended within 60s")

    async def run(self, finish_jobs: bool = True, rounds: int = 50) -> dict[str, Any]:
        """Finish Jobs as they appear, let waits pass, until the execution ends."""
        if (NS, "run") not in self.drivers._drivers:
            self.start()
        for _ in range(rounds):
            await self.idle()
            if self.status().get("phase") in ("Succeeded", "Failed", "Cancelled"):
                break
            for job in self.api.of_kind("Job"):
                if finish_jobs and not job.get("status"):
                    step = job["metadata"]["labels"]["noetl.io/step"]
                    self.api.finish_job(NS, job["metadata"]["name"], result={"stdout": step})
                    self.drivers.deliver(NS, "run", JobChanged(job))
            self.clock.advance(120)
        await self.idle()
        return self.status()

    def status(self) -> dict[str, Any]:
        execution = self.api.get("Execution", NS, "run")
        assert execution is not None
        return dict(execution.get("status") or {})

    def events(self) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in self.api.of_kind("Event")]


@pytest.fixture(autouse=True)
async def no_driver_outlives_its_test():
    yield
    while Cluster.made:
        cluster = Cluster.made.pop()
        cluster.drivers.forget(NS, "run")


async def test_a_permanent_refusal_fails_the_execution_with_the_api_servers_words():
    cluster = Cluster()
    quota = refusal(403, 'configmaps \\"run-playbook\\" is forbidden: exceeded quota: cm')
    cluster.api.fail("create", "ConfigMap", quota)
    failed = metrics.EXECUTIONS_FINISHED.labels(phase="Failed")
    before = failed._value.get()
    status = await cluster.run()
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "ReconcileError"
    assert "Refused (403)" in status["error"] and "exceeded quota: cm" in status["error"]
    assert status["finishedAt"] is not None
    assert ("Warning", "ReconcileError", status["error"]) in cluster.events()
    assert failed._value.get() == before + 1
    assert cluster.api.of_kind("Job") == []


async def test_transient_trouble_is_retried_after_a_growing_wait_then_fails_the_execution():
    cluster = Cluster(reconcile_retry_limit=3)
    cluster.api.fail("create", "Job", *[refusal(503, "etcd leader changed")] * 3)
    cluster.start()
    await cluster.idle()
    assert cluster.status().get("phase") is None  # waiting out the first backoff
    assert cluster.drivers.backing_off(NS, "run")  # it waits, it does not spin
    status = await cluster.run(finish_jobs=False)
    assert status["phase"] == "Failed"
    assert status["error"] == (
        "the operator cannot drive this execution (3 attempts): Refused (503): etcd leader changed"
    )


async def test_a_few_transient_errors_are_survived():
    cluster = Cluster(reconcile_retry_limit=3)
    cluster.api.fail("create", "Job", *[refusal(503)] * 2)
    cluster.api.fail("patch", "Execution", refusal(409), refusal(409), refusal(409))
    status = await cluster.run()
    assert (status["phase"], status["result"]) == ("Succeeded", "c")


async def test_a_status_too_large_for_etcd_ends_the_execution_with_a_minimal_status():
    cluster = Cluster()
    cluster.api.fail("patch", "Execution", refusal(500, "etcdserver: request is too large"))
    status = await cluster.run()
    assert status["phase"] == "Failed" and "request is too large" in status["error"]
    assert status["conditions"][0]["reason"] == "ReconcileError"


@pytest.mark.parametrize("resumes", [True, False], ids=["driver-resumes", "driver-cannot"])
async def test_a_cancel_during_a_backoff_ends_the_execution_and_deletes_its_jobs(resumes: bool):
    cluster = Cluster(reconcile_retry_limit=100, reconcile_backoff_max_seconds=3600)
    cluster.start()
    await cluster.idle()
    [job] = cluster.api.of_kind("Job")
    cluster.api.fail("create", "ConfigMap", *[refusal(503)] * 100)  # results cannot be saved
    cluster.api.finish_job(NS, job["metadata"]["name"], result={"stdout": "a"})
    cluster.drivers.deliver(NS, "run", JobChanged(job))
    await cluster.idle()
    cluster.clock.advance(2)  # the turn's save, put off for a second, is due
    await cluster.idle()
    assert cluster.drivers.backing_off(NS, "run")  # in a backoff of up to an hour
    unfinished = [j["metadata"]["name"] for j in cluster.api.of_kind("Job") if not j.get("status")]
    assert unfinished == ["run-b-a1"]  # started before the save that failed
    if not resumes:  # the next driver cannot even read what was saved
        cluster.api.fail("list", "ConfigMap", *[refusal(503)] * 100)
    execution = cluster.api.get("Execution", NS, "run")
    assert execution is not None
    execution["spec"]["cancel"] = True
    cluster.drivers.deliver(NS, "run", ExecutionChanged(execution))
    await cluster.idle()
    status = cluster.status()
    assert status["phase"] == "Cancelled"
    assert "spec.cancel is true" in status["error"]
    assert cluster.api.get("Job", NS, "run-b-a1") is None  # deleted, its pod with it
    assert ("delete", "Job", "run-b-a1") in cluster.api.writes


async def test_a_deleted_results_config_map_fails_the_execution_clearly():
    cluster = Cluster()
    cluster.start()
    await cluster.idle()
    [job] = cluster.api.of_kind("Job")
    cluster.api.finish_job(NS, job["metadata"]["name"], result={"stdout": "a"})
    cluster.drivers.deliver(NS, "run", JobChanged(job))
    await cluster.idle()
    cluster.clock.advance(2)  # the turn's save, put off for a second, is due
    await cluster.idle()
    [results] = [
        cm for cm in cluster.api.of_kind("ConfigMap") if "-results-" in cm["metadata"]["name"]
    ]
    await cluster.api.delete("ConfigMap", NS, results["metadata"]["name"])
    status = await cluster.run()
    assert status["phase"] == "Failed"
    assert "was deleted while the execution ran" in status["error"]
    assert status["conditions"][0]["reason"] == "ReconcileError"
