"""Step pods watched, on the in-memory API and a fake clock: a pod that cannot start is told at
once and failed after the pending deadline, naming the cause; a container that dies without an
outcome gives its exit code and the end of its log; a deleted pod is called that."""

from __future__ import annotations

from typing import Any

from noetl.engine import StartStep
from noetl.kube.inbox import JobChanged
from noetl.kube.manifests import step_job
from noetl.kube.pending import PodWaiting
from noetl.kube.settings import OperatorSettings
from noetl.playbook import parse_playbook
from tests.kube.fake_api import FakeKubeApi
from tests.kube.test_driver import CHAIN, NS, Operator, started

PULL = "ErrImagePull: failed to pull ghcr.io/noetl/noetl-plugin-shell:typo: not found"


def pod_of(api: FakeKubeApi, job: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    return api.pod(NS, job["metadata"]["name"], state)


def waiting(reason: str, message: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


async def test_a_pod_that_cannot_pull_its_image_is_told_then_failed_at_the_pending_deadline():
    operator = await started(CHAIN)
    api = operator.api
    [job] = operator.unfinished_jobs()
    reason, message = PULL.split(": ", 1)
    operator.driver.queue.put_nowait(PodWaiting(pod_of(api, job, waiting(reason, message))))
    await operator.idle()
    assert ("Warning", "StepPending", f"step a: its pod cannot start: {PULL}") in [
        (e["type"], e["reason"], e["message"]) for e in api.of_kind("Event")
    ]
    assert operator.status()["steps"]["a"]["waiting"] == PULL
    await fails_at_the_pending_deadline(operator, job, f"could not start within 300s: {PULL}")


async def fails_at_the_pending_deadline(operator: Operator, job: dict[str, Any], why: str) -> None:
    """The step fails once its 300 s pending deadline has passed, not before; its Job goes."""
    await operator.advance(299)
    assert operator.status()["phase"] == "Running"
    await operator.advance(2)
    status = operator.status()
    assert status["phase"] == "Failed"
    assert f"the step's pod {why}" in status["error"]
    assert "timed out" not in status["error"]
    assert operator.api.get("Job", NS, job["metadata"]["name"]) is None  # it stops trying


async def test_a_pod_that_starts_after_all_clears_the_deadline():
    operator = await started(CHAIN)
    api = operator.api
    [job] = operator.unfinished_jobs()
    missing = waiting("ImagePullBackOff", "Back-off pulling image")
    operator.driver.queue.put_nowait(PodWaiting(pod_of(api, job, missing)))
    await operator.idle()
    assert operator.status()["steps"]["a"]["waiting"].startswith("ImagePullBackOff")
    running = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
    operator.driver.queue.put_nowait(PodWaiting(pod_of(api, job, running)))
    await operator.idle()
    assert "waiting" not in operator.status()["steps"]["a"]
    await operator.advance(600)
    assert operator.status()["phase"] == "Running"
    status = await operator.run()
    assert status["phase"] == "Succeeded"


def test_step_containers_leave_their_log_tail_when_they_die_without_an_outcome():
    playbook = parse_playbook({"kind": "Playbook", "metadata": {"name": "p"}, "spec": CHAIN}, "p")
    execution = {"metadata": {"name": "run", "namespace": NS, "uid": "u"}}
    command = StartStep("a", None, 1, tool="shell", args={"command": "echo a"})
    job = step_job(execution, command, playbook.steps["a"], OperatorSettings())
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


async def ended_with(operator: Operator, terminated: dict[str, Any], job_failed: bool) -> str:
    api = operator.api
    [job] = operator.unfinished_jobs()
    pod_of(api, job, {"terminated": terminated})
    condition = "Failed" if job_failed else "Complete"
    job["status"] = {"conditions": [{"type": condition, "status": "True"}]}
    operator.driver.queue.put_nowait(JobChanged(job))
    await operator.idle()
    return str(operator.status()["error"])


async def test_a_plugin_that_exits_hard_gives_its_exit_code_and_log_tail():
    operator = await started(CHAIN)
    tail = "Traceback (most recent call last):\n  ...\nSegmentation fault"
    error = await ended_with(operator, {"exitCode": 139, "message": tail}, job_failed=True)
    assert "exited with code 139 without reporting an outcome" in error
    assert error.endswith("Segmentation fault")
    assert "termination message is empty" not in error


async def test_a_deleted_pod_is_called_deleted():
    operator = await started(CHAIN)
    api = operator.api
    [job] = operator.unfinished_jobs()
    job["status"] = {
        "conditions": [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ]
    }
    operator.driver.queue.put_nowait(JobChanged(job))
    await operator.idle()
    error = operator.status()["error"]
    assert "the step's pod was deleted before it finished" in error
    assert "backoff limit" not in error
    assert api.get("Job", NS, job["metadata"]["name"]) is not None


def big_loop(items: int, **loop: Any) -> dict[str, Any]:
    each = {"in": list(range(items)), "iterator": "i", "mode": "parallel", "maxInFlight": 50}
    return {
        "workflow": [
            {"step": "start", "next": [{"step": "each"}]},
            {
                "step": "each",
                "tool": "shell",
                "args": {"command": "echo"},
                "loop": {**each, **loop},
            },
        ]
    }


async def test_a_loop_is_told_as_a_whole_not_two_events_per_item():
    operator = await started(big_loop(200))
    for _ in range(20):
        await operator.advance(3)  # the items end over a minute: progress is not rate-held
        for job in operator.unfinished_jobs()[:10]:
            operator.finish(job)
    status = await operator.run()
    assert status["phase"] == "Succeeded"
    told = [(e["reason"], e["message"]) for e in operator.api.of_kind("Event")]
    reasons = [reason for reason, _ in told]
    assert (
        reasons.count("StepStarted") == 1
        and ("StepStarted", "step each started a loop of 200 items") in told
    )
    assert "StepSucceeded" not in reasons
    assert 3 <= reasons.count("StepProgress") <= 10
    assert ("StepFinished", "step each: loop succeeded (200/200 items succeeded)") in told
    assert len(told) <= 14


async def test_item_failures_are_told_a_few_then_counted():
    operator = await started(big_loop(40, maxFailures=100, maxInFlight=10))
    while operator.unfinished_jobs():
        await operator.advance(11)
        for job in operator.unfinished_jobs():
            operator.finish(job, ok=False)
        await operator.idle()
    told = [(e["reason"], e["message"]) for e in operator.api.of_kind("Event")]
    assert [reason for reason, _ in told].count("StepFailed") == 3
    assert any(reason == "StepProgress" and "failed" in message for reason, message in told)
