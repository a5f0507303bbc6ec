"""The operator's driver against an in-memory API server: no cluster, crash windows chosen.

Table-driven, in the manner of reconciler tests: each playbook runs to its end once cleanly, then
once per write the clean run made, with the operator crashing right after that write and a new
driver taking over (as after a SIGKILL and a restart). Every run must end the same, with one Job
per step: nothing lost, nothing started twice. API errors are injected and must be survived.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from noetl.kube import driver as driver_module
from noetl.kube import metrics
from noetl.kube.driver import ExecutionDriver, OperatorContext
from noetl.kube.inbox import ExecutionChanged, JobChanged, PodEnded
from noetl.kube.names import results_config_map
from noetl.kube.registry import DriverRegistry
from noetl.kube.settings import OperatorSettings
from tests.kube.fake_api import (
    FakeClock,
    FakeKubeApi,
    OperatorCrashed,
    WatchedQueue,
    until_idle,
)

NS = "team"


def shell(name: str, after: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    step = {"step": name, "tool": "shell", "args": {"command": f"echo {name}"}, **extra}
    if after:
        step["next"] = [{"step": target} for target in after]
    return step


CHAIN = {
    "workflow": [
        {"step": "start", "next": [{"step": "a"}]},
        shell("a", ["b"]),
        shell("b", ["c"]),
        shell("c"),
    ],
    "output": "{{ c.stdout }}",
}
FAN = {
    "workflow": [
        {"step": "start", "next": [{"step": "x"}, {"step": "y"}]},
        shell("x", ["join"]),
        shell("y", ["join"]),
        shell("join"),
    ],
    "output": "{{ [x.stdout, y.stdout, join.stdout] }}",
}
LOOP = {
    "workflow": [
        {"step": "start", "next": [{"step": "each"}]},
        shell(
            "each", loop={"in": [1, 2, 3], "iterator": "i", "mode": "parallel", "maxInFlight": 2}
        ),
    ],
    "output": "{{ each.results | length }}",
}

FINALLY = {
    "workflow": [{"step": "start", "next": [{"step": "a"}]}, shell("a")],
    "finally": [shell("tidy", ["report"]), shell("report")],
    "output": "{{ a.stdout }}",
}


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    result: Any
    jobs: int


WIDE_LOOP = {
    "workflow": [
        {"step": "start", "next": [{"step": "each"}]},
        shell(
            "each",
            loop={"in": list(range(7)), "iterator": "i", "mode": "parallel", "maxInFlight": 3},
            next=[{"step": "after"}],
        ),
        shell("after"),
    ],
    "output": "{{ [each.results | length, after.stdout] }}",
}

CASES = [
    Case("chain", CHAIN, "c", 3),
    Case("fan", FAN, ["x", "y", "join"], 3),
    Case("loop", LOOP, 3, 3),
    # Its saves wait (the fake clock stands still): crashes come while Jobs ran ahead of them.
    Case("wide-loop", WIDE_LOOP, [7, "after"], 8),
    Case("finally", FINALLY, "a", 3),
]


def submit(api: FakeKubeApi, spec: dict[str, Any], name: str = "run") -> None:
    api.put(
        {
            "apiVersion": "noetl.io/v1alpha1",
            "kind": "Playbook",
            "metadata": {"name": "pb", "namespace": NS},
            "spec": spec,
        }
    )
    api.put(
        {
            "apiVersion": "noetl.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"playbookRef": {"name": "pb"}},
        }
    )


class Operator:
    """A driver on the fake API and a fake clock; the test plays the cluster's part for Jobs."""

    def __init__(self, api: FakeKubeApi, name: str = "run", log: str | None = None) -> None:
        self.api = api
        self.name = name
        self.log = log  # what every step's pod printed
        self.clock = FakeClock()
        self.context = OperatorContext(api, OperatorSettings(), clock=self.clock)  # type: ignore[arg-type]
        self.restarts = 0
        self.driver = ExecutionDriver(self.context, NS, name)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """A new driver, as after an operator start: kopf delivers every Job it lists."""
        self.api.revive()
        self.driver = ExecutionDriver(self.context, NS, self.name)
        self.queue = self.driver.queue = WatchedQueue()
        self.task = asyncio.create_task(self.driver.run())
        for job in self.api.of_kind("Job"):
            self.driver.queue.put_nowait(JobChanged(job))

    async def idle(self) -> None:
        """Let the driver work until it waits for a message, or has ended."""
        assert self.task is not None
        await until_idle(self.task, self.queue)

    def unfinished_jobs(self) -> list[dict[str, Any]]:
        return [job for job in self.api.of_kind("Job") if not job.get("status")]

    def finish(self, job: dict[str, Any], ok: bool = True, result: Any = None) -> None:
        name = job["metadata"]["name"]
        if result is None:
            result = {"stdout": job["metadata"]["labels"]["noetl.io/step"]}
        self.api.finish_job(NS, name, ok, result, self.log)
        self.driver.queue.put_nowait(JobChanged(job))

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.idle()

    async def run(self, limit: int = 100) -> dict[str, Any]:
        """Run to the end, each Job ending as soon as it exists; after a crash, a restart."""
        if self.task is None:
            self.start()
        for _ in range(limit):
            await self.idle()
            assert self.task is not None
            if self.task.done():
                if isinstance(self.task.exception(), OperatorCrashed):
                    self.restarts += 1
                    self.start()
                    continue
                self.task.result()
                break
            for job in self.unfinished_jobs():
                self.finish(job)
        else:
            raise AssertionError("the execution did not end")
        return self.status()

    def status(self) -> dict[str, Any]:
        execution = self.api.get("Execution", NS, self.name)
        assert execution is not None
        return dict(execution.get("status") or {})

    def events(self) -> list[str]:
        return [f"{event['reason']}: {event['message']}" for event in self.api.of_kind("Event")]


async def started(spec: dict[str, Any]) -> Operator:
    """An operator driving an execution of `spec`, waiting for its first Jobs to end."""
    api = FakeKubeApi()
    submit(api, spec)
    operator = Operator(api)
    operator.start()
    await operator.idle()
    return operator


def writes_of_a_clean_run(case: Case) -> int:
    api = FakeKubeApi()
    submit(api, case.spec)
    asyncio.run(Operator(api).run())
    return len(api.writes)


def assert_ran_once_each(api: FakeKubeApi, case: Case, status: dict[str, Any]) -> None:
    assert (status["phase"], status.get("result")) == ("Succeeded", case.result), status.get(
        "error"
    )
    jobs = [key for key in api.created if key[0] == "Job"]
    assert len(jobs) == case.jobs, jobs
    assert all(count == 1 for key, count in api.created.items() if key[0] == "Job")
    assert all(name.endswith("-a1") for _, _, name in jobs)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_a_playbook_runs_to_its_end(case: Case):
    api = FakeKubeApi()
    submit(api, case.spec)
    status = await Operator(api).run()
    assert_ran_once_each(api, case, status)
    assert max(api.status_patches) < 16 * 1024


@pytest.mark.parametrize(
    ("case", "crash_after"),
    [(case, n) for case in CASES for n in range(1, writes_of_a_clean_run(case) + 1)],
    ids=lambda value: value.name if isinstance(value, Case) else f"write{value}",
)
async def test_a_crash_after_any_write_loses_nothing_and_starts_nothing_twice(
    case: Case, crash_after: int
):
    api = FakeKubeApi()
    submit(api, case.spec)
    api.crash_after_writes = crash_after
    operator = Operator(api)
    status = await operator.run()
    assert operator.restarts == 1
    assert_ran_once_each(api, case, status)


@pytest.mark.parametrize(
    ("verb", "kind", "error"),
    [
        ("patch", "Execution", ApiException(status=409, reason="Conflict")),
        ("patch", "ConfigMap", ApiException(status=500, reason="Internal Server Error")),
        ("create", "Job", ApiException(status=429, reason="Too Many Requests")),
        ("list", "Job", ApiException(status=410, reason="Gone")),
        ("get", "ConfigMap", TimeoutError("read timed out")),
        ("create", "Event", ApiException(status=500, reason="Internal Server Error")),
    ],
    ids=lambda value: str(getattr(value, "status", value)),
)
async def test_api_failures_are_survived(verb: str, kind: str, error: BaseException):
    api = FakeKubeApi()
    submit(api, CHAIN)
    api.fail(verb, kind, error, error)
    settings = OperatorSettings(reconcile_backoff_seconds=0)
    drivers = DriverRegistry(OperatorContext(api, settings))  # type: ignore[arg-type]
    drivers.deliver(NS, "run")
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:  # polls the fake API for a condition
        for job in api.of_kind("Job"):
            if not job.get("status"):
                api.finish_job(
                    NS,
                    job["metadata"]["name"],
                    result={"stdout": job["metadata"]["labels"]["noetl.io/step"]},
                )
                drivers.deliver(NS, "run", JobChanged(job))
        status = api.get("Execution", NS, "run").get("status") or {}
        if status.get("phase") == "Succeeded":
            break
        await asyncio.sleep(0.02)
    assert_ran_once_each(api, CASES[0], status)


RETRIED = {
    "workflow": [
        {"step": "start", "next": [{"step": "slow"}]},
        shell("slow", timeout="30s", retry={"maxAttempts": 2, "initialDelay": "5s"}),
    ],
    "output": "{{ slow.stdout }}",
}


async def test_a_step_timeout_is_the_engines_timer_and_its_retry_survives_a_restart():
    operator = await started(RETRIED)
    api = operator.api
    assert [job["metadata"]["name"] for job in operator.unfinished_jobs()] == ["run-slow-a1"]
    await operator.advance(31)
    assert api.get("Job", NS, "run-slow-a1") is None  # cancelled: the Job is deleted
    assert any("timed out after 30s" in event for event in operator.events())
    assert operator.task is not None
    operator.task.cancel()  # the operator goes away while the retry waits
    operator.start()
    await operator.idle()
    assert operator.unfinished_jobs() == []
    await operator.advance(6)  # the retry timer, re-armed from the saved state
    [second] = operator.unfinished_jobs()
    assert second["metadata"]["name"] == "run-slow-a2"
    status = await operator.run()
    assert (status["phase"], status["result"]) == ("Succeeded", "slow")
    assert status["steps"]["slow"]["attempts"] == 2


async def test_the_execution_timeout_fails_the_run_and_deletes_its_jobs():
    operator = await started({**CHAIN, "timeout": "1m"})
    api = operator.api
    await operator.advance(61)
    status = operator.status()
    assert (status["phase"], status["error"]) == ("Failed", "execution timed out after 1m")
    assert status["finishedAt"] is not None
    assert api.of_kind("Job") == []
    assert operator.driver.finished_at == operator.clock.now()  # the TTL counts from here


async def test_a_loop_whose_gathered_results_are_too_large_fails_through_the_engine(monkeypatch):
    monkeypatch.setattr(driver_module, "MAX_RESULT_BYTES", 300)  # each item fits, all do not
    spec = {
        "workflow": [
            {"step": "start", "next": [{"step": "each"}, {"step": "other"}]},
            shell("each", loop={"in": [1, 2, 3], "iterator": "i", "mode": "parallel"}),
            shell("other"),
        ]
    }
    operator = await started(spec)
    for job in operator.unfinished_jobs():
        if job["metadata"]["labels"]["noetl.io/step"] == "each":
            operator.finish(job, result="x" * 100)
    await operator.advance(1)  # the save of a turn of successes is due
    assert operator.status()["phase"] == "Running"  # the parallel branch still runs
    [other] = operator.unfinished_jobs()
    operator.finish(other)
    await operator.idle()
    status = operator.status()
    assert status["phase"] == "Failed" and "byte limit" in status["error"]
    assert status["finishedAt"] is not None and operator.driver.finished_at is not None
    assert any(event.startswith("ExecutionFailed") for event in operator.events())


async def test_an_event_that_cannot_be_posted_does_not_stop_the_driver():
    api = FakeKubeApi()
    submit(api, CHAIN)
    api.fail("create", "Event", *[ApiException(status=500)] * 50)
    operator = Operator(api)
    status = await operator.run()
    assert operator.restarts == 0
    assert_ran_once_each(api, CASES[0], status)


def set_spec(operator: Operator, **fields: Any) -> None:
    """Change the Execution's spec as a user would, and deliver the change to the driver."""
    execution = operator.api.get("Execution", NS, operator.name)
    assert execution is not None
    execution["spec"].update(fields)
    operator.api.put(execution)
    operator.driver.queue.put_nowait(ExecutionChanged(execution))


async def test_a_suspended_execution_starts_no_job_until_resumed_even_across_a_restart():
    api = FakeKubeApi()
    submit(api, CHAIN)
    operator = Operator(api)
    set_spec(operator, suspend=True)  # created suspended
    operator.start()
    await operator.idle()
    assert (operator.status()["phase"], api.of_kind("Job")) == ("Suspended", [])
    assert operator.task is not None
    operator.task.cancel()
    operator.start()  # a restarted operator keeps it suspended
    await operator.idle()
    assert api.of_kind("Job") == []
    set_spec(operator, suspend=False)
    await operator.idle()
    assert [job["metadata"]["name"] for job in operator.unfinished_jobs()] == ["run-a-a1"]
    assert (await operator.run())["result"] == "c"
    assert any(event.startswith("Suspended: spec.suspend is true") for event in operator.events())


GATED = {
    "workflow": [
        {"step": "start", "next": [{"step": "gate"}]},
        {"step": "gate", "tool": "approval", "args": {"message": "go?"}, "next": [{"step": "a"}]},
        shell("a"),
    ],
    "output": "{{ gate }}",
}


async def test_an_approval_in_the_spec_completes_the_waiting_step_after_a_restart():
    api = FakeKubeApi()
    submit(api, GATED)
    operator = Operator(api)
    operator.start()
    await operator.idle()
    status = operator.status()
    assert (status["awaitingApproval"], api.of_kind("Job")) == (["gate"], [])
    assert status["steps"]["gate"]["message"] == "waiting for approval: go?"
    assert operator.task is not None
    operator.task.cancel()  # the approval is written while no operator runs
    execution = api.get("Execution", NS, "run")
    assert execution is not None
    execution["spec"]["approvals"] = {"gate": {"by": "ada"}}
    api.put(execution)
    operator.start()
    status = await operator.run()
    assert (status["phase"], status["result"]) == ("Succeeded", {"by": "ada"})
    assert status.get("awaitingApproval") is None
    assert "Approved: step gate approved: {'by': 'ada'}" in operator.events()


async def test_a_step_ends_on_its_pod_before_its_job_and_the_jobs_end_changes_nothing():
    operator = await started(CHAIN)
    api = operator.api
    [first] = operator.unfinished_jobs()
    pod = api.finish_job(NS, first["metadata"]["name"], result={"stdout": "a"})
    operator.driver.queue.put_nowait(PodEnded(pod))  # the Job's Complete has not been seen yet
    await operator.idle()
    assert [job["metadata"]["name"] for job in operator.unfinished_jobs()] == ["run-b-a1"]
    writes = len(api.writes)
    operator.driver.queue.put_nowait(JobChanged(first))  # the Job controller catches up
    await operator.idle()
    assert len(api.writes) == writes  # a stale end: nothing to do, nothing to save
    status = await operator.run()
    assert_ran_once_each(api, CASES[0], status)


async def test_a_pod_of_another_execution_of_the_same_name_is_ignored():
    operator = await started(CHAIN)
    api = operator.api
    [first] = operator.unfinished_jobs()
    pod = api.finish_job(NS, first["metadata"]["name"], result={"stdout": "a"})
    pod["metadata"]["annotations"]["noetl.io/execution-uid"] = "an-older-run"
    operator.driver.queue.put_nowait(PodEnded(pod))
    await operator.advance(1)  # a save of what it knows is due
    assert operator.unfinished_jobs() == []  # the run still waits for word of its own
    assert operator.status()["steps"]["a"]["phase"] == "Running"


async def test_the_same_end_heard_twice_in_one_turn_is_counted_once():
    operator = await started(CHAIN)
    api = operator.api
    [first] = operator.unfinished_jobs()
    pod = api.finish_job(NS, first["metadata"]["name"], result={"stdout": "a"})
    finished = metrics.STEPS_FINISHED.labels(tool="shell", outcome="succeeded")
    before = finished._value.get()
    for _ in range(3):  # a pod's status changes more than once after its container ends
        operator.driver.queue.put_nowait(PodEnded(pod))
    await operator.idle()
    assert finished._value.get() == before + 1
    assert len(operator.unfinished_jobs()) == 1


async def test_a_turn_of_successes_puts_its_save_off_until_it_is_due():
    operator = await started(CHAIN)
    api = operator.api
    assert operator.status() == {}  # the first turn's save waits too: a restart starts again
    await operator.advance(1)
    [first] = operator.unfinished_jobs()
    operator.finish(first)
    await operator.idle()
    assert [job["metadata"]["name"] for job in operator.unfinished_jobs()] == ["run-b-a1"]
    assert operator.status()["steps"]["a"]["phase"] == "Running"  # the save waits...
    assert api.writes[-1] == ("create", "Event", api.writes[-1][2])
    await operator.advance(1)  # ...until it is due, with no further news
    status = operator.status()
    assert (status["steps"]["a"]["phase"], status["steps"]["b"]["phase"]) == (
        "Succeeded",
        "Running",
    )


async def test_a_failure_is_saved_in_its_own_turn():
    operator = await started(CHAIN)
    [first] = operator.unfinished_jobs()
    operator.finish(first, ok=False)
    await operator.idle()
    status = operator.status()
    assert status["phase"] == "Failed" and status["steps"]["a"]["phase"] == "Failed"


async def test_a_loop_item_makes_no_event_of_its_start_or_success_but_does_of_its_failure():
    operator = await started(LOOP)
    for job in operator.unfinished_jobs():
        operator.finish(job, ok=job["metadata"]["labels"]["noetl.io/index"] != "0")
    await operator.idle()
    events = operator.events()
    # The loop is told as a whole (its start, its end); no item's start or success is.
    assert not any(e.startswith(("StepStarted: step each[", "StepSucceeded")) for e in events)
    assert any(e.startswith("StepFailed: step each[0]") for e in events), events


async def test_a_steps_log_tail_rides_the_write_that_stores_its_record():
    runs = {}
    for log in (None, "the end of\nwhat it printed"):
        api = FakeKubeApi()
        submit(api, CHAIN)
        status = await Operator(api, log=log).run()
        assert status["phase"] == "Succeeded"
        runs[log] = api
    quiet, talkative = runs.values()
    assert talkative.writes == quiet.writes  # the same calls, in the same order
    data = talkative.get("ConfigMap", NS, results_config_map("run", 0))["data"]
    assert {step: json.loads(data[f"{step}.log"]) for step in "abc"} == dict.fromkeys(
        "abc", "the end of\nwhat it printed"
    )
    assert not any(
        key.endswith(".log")
        for key in quiet.get("ConfigMap", NS, results_config_map("run", 0))["data"]
    )
