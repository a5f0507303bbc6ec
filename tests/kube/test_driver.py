"""The operator's driver against an in-memory API server: no cluster, crash windows chosen.

Table-driven, in the manner of reconciler tests: each playbook runs to its end once cleanly, then
once per write the clean run made, with the operator crashing right after that write and a new
driver taking over (as after a SIGKILL and a restart). Every run must end the same, with one Job
per step: nothing lost, nothing started twice. API errors are injected and must be survived.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from noetl.kube import registry as registry_module
from noetl.kube.driver import ExecutionDriver, OperatorContext
from noetl.kube.inbox import JobChanged
from noetl.kube.registry import DriverRegistry
from noetl.kube.settings import OperatorSettings
from tests.kube.fake_api import FakeKubeApi, OperatorCrashed

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


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    result: Any
    jobs: int


CASES = [
    Case("chain", CHAIN, "c", 3),
    Case("fan", FAN, ["x", "y", "join"], 3),
    Case("loop", LOOP, 3, 3),
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
    """A driver on the fake API, with the cluster's part played: Jobs end as soon as they exist."""

    def __init__(self, api: FakeKubeApi, name: str = "run") -> None:
        self.api = api
        self.name = name
        self.context = OperatorContext(api, OperatorSettings())  # type: ignore[arg-type]
        self.restarts = 0

    async def idle(self) -> None:
        """Let the driver work until it waits for a message (the fake API never blocks)."""
        quiet = 0
        while quiet < 5:
            before = len(self.api.writes)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self.api.writes) == before else 0

    async def run(self, finish: bool = True, limit: int = 100) -> dict[str, Any]:
        driver = ExecutionDriver(self.context, NS, self.name)
        task = asyncio.create_task(driver.run())
        for _ in range(limit):
            await self.idle()
            if task.done():
                if isinstance(task.exception(), OperatorCrashed):
                    self.restarts += 1
                    driver = ExecutionDriver(self.context, NS, self.name)
                    task = asyncio.create_task(driver.run())
                    for job in self.api.of_kind("Job"):  # kopf lists everything on start
                        driver.queue.put_nowait(JobChanged(job))
                    continue
                task.result()
                break
            if finish:
                for job in self.api.of_kind("Job"):
                    if not job.get("status"):
                        self.api.finish_job(
                            NS,
                            job["metadata"]["name"],
                            result={"stdout": job["metadata"]["labels"]["noetl.io/step"]},
                        )
                        driver.queue.put_nowait(JobChanged(job))
        else:
            raise AssertionError("the execution did not end")
        execution = self.api.get("Execution", NS, self.name)
        assert execution is not None
        return dict(execution["status"])


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
async def test_api_failures_are_survived(monkeypatch, verb: str, kind: str, error: BaseException):
    monkeypatch.setattr(registry_module, "RESTART_DELAY", 0)
    api = FakeKubeApi()
    submit(api, CHAIN)
    api.fail(verb, kind, error, error)
    drivers = DriverRegistry(OperatorContext(api, OperatorSettings()))  # type: ignore[arg-type]
    drivers.deliver(NS, "run")
    for _ in range(200):
        await Operator(api).idle()
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
        await asyncio.sleep(0.01)
    assert_ran_once_each(api, CASES[0], status)
