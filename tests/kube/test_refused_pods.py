"""Step pods the API server refuses to create (a ResourceQuota, admission), on the in-memory API
and a fake clock: the Job's FailedCreate Event is read only for a Job started with no pod, its
cause told at once, and the step failed with it at the pending deadline, unless the pod came
meanwhile."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.kube.pending import NO_POD_YET, JobWithoutPod, PodWaiting, job_without_pod
from tests.kube.fake_api import FakeKubeApi
from tests.kube.test_driver import CHAIN, NS, Operator, started, submit
from tests.kube.test_pods import fails_at_the_pending_deadline

QUOTA = (
    'pods "run-a-a1-x7k2p" is forbidden: exceeded quota: no-pods, requested: pods=1,'
    " used: pods=0, limited: pods=0"
)
CAUSE = f"FailedCreate: {QUOTA}"


def refused(api: FakeKubeApi, job: dict[str, Any], message: str = QUOTA) -> JobWithoutPod:
    """The Job controller's view of a refused pod: its Event, and the Job started with none."""
    metadata = job["metadata"]
    api.put(
        {
            "kind": "Event",
            "metadata": {"name": f"{metadata['name']}.1", "namespace": NS},
            "involvedObject": {"kind": "Job", "name": metadata["name"], "uid": metadata["uid"]},
            "reason": "FailedCreate",
            "type": "Warning",
            "message": f"Error creating: {message}",
            "lastTimestamp": "2026-01-01T00:00:01Z",
        }
    )
    return without_pod(job)


def without_pod(job: dict[str, Any]) -> JobWithoutPod:
    job["status"] = {"startTime": "2026-01-01T00:00:00Z", "active": 0}
    return JobWithoutPod(job)


async def refused_run() -> tuple[Operator, dict[str, Any]]:
    """An operator whose first step's pod a quota refused, once it has read why."""
    operator = await started(CHAIN)
    [job] = operator.unfinished_jobs()
    operator.driver.queue.put_nowait(refused(operator.api, job))
    await operator.idle()
    return operator, job


def warnings(api: FakeKubeApi) -> list[str]:
    return [e["message"] for e in api.of_kind("Event") if e["reason"] == "StepPending"]


@pytest.mark.parametrize(
    ("status", "podless"),
    [
        ({}, False),  # not synced by the Job controller yet
        ({"startTime": "t"}, True),
        ({"startTime": "t", "active": 0, "ready": 0, "terminating": 0}, True),
        ({"startTime": "t", "active": 1}, False),
        ({"startTime": "t", "succeeded": 1}, False),  # ended, its condition not written yet
        ({"startTime": "t", "uncountedTerminatedPods": {"succeeded": ["u"]}}, False),
        ({"startTime": "t", "conditions": [{"type": "Failed", "status": "True"}]}, False),
    ],
)
def test_a_job_without_pod_is_one_started_that_holds_none(status, podless):
    assert job_without_pod({"status": status}) is podless


async def test_a_refused_pod_is_told_then_failed_at_the_pending_deadline():
    operator, job = await refused_run()
    api = operator.api
    assert warnings(api) == [f"step a: its pod cannot be created: {CAUSE}"]
    assert operator.status()["steps"]["a"]["waiting"] == CAUSE
    operator.driver.queue.put_nowait(JobWithoutPod(job))  # a later status write: read once
    await operator.idle()
    assert len([r for r in api.reads if r[1] == "Event"]) == 1
    await fails_at_the_pending_deadline(operator, job, f"could not be created within 300s: {CAUSE}")


async def test_events_that_say_nothing_yet_are_read_again():
    operator = await started(CHAIN)
    api = operator.api
    [job] = operator.unfinished_jobs()
    operator.driver.queue.put_nowait(without_pod(job))  # its Event is not posted yet
    await operator.idle()
    assert operator.status()["steps"]["a"]["waiting"] == NO_POD_YET
    assert warnings(api) == []
    admission = 'pods "run-a-a1-x" is forbidden: violates PodSecurity "restricted:latest"'
    refused(api, job, admission)
    await operator.advance(2)
    assert operator.status()["steps"]["a"]["waiting"] == f"FailedCreate: {admission}"
    assert warnings(api) == [f"step a: its pod cannot be created: FailedCreate: {admission}"]


async def test_a_quota_freed_lets_the_step_run():
    operator, job = await refused_run()
    api = operator.api
    running = api.pod(NS, job["metadata"]["name"], {"running": {"startedAt": "t"}})
    operator.driver.queue.put_nowait(PodWaiting(running))
    await operator.idle()
    assert "waiting" not in operator.status()["steps"]["a"]
    await operator.advance(600)
    assert operator.status()["phase"] == "Running"
    operator.finish(job)
    assert (await operator.run())["phase"] == "Succeeded"


async def test_a_pod_created_before_the_deadline_is_not_failed_for_an_old_refusal():
    operator, job = await refused_run()
    api = operator.api
    api.pod(NS, job["metadata"]["name"], {"waiting": {"reason": "ContainerCreating"}})
    await operator.advance(301)
    assert operator.status()["phase"] == "Running"
    assert "waiting" not in operator.status()["steps"]["a"]
    assert api.get("Job", NS, job["metadata"]["name"]) is not None


async def test_a_run_whose_pods_come_reads_no_events():
    api = FakeKubeApi()
    submit(api, CHAIN)
    assert (await Operator(api).run())["phase"] == "Succeeded"
    assert [read for read in api.reads if read[1] == "Event"] == []
