"""What an Execution runs is fixed at its start: its playbook and its workload, on the in-memory
API. An edit of `spec.workload` mid-run changes nothing, not even after the operator restarts,
and a cancel is still acted on (its generation observed)."""

from __future__ import annotations

import asyncio

from noetl.kube.inbox import ExecutionChanged
from noetl.kube.registry import DriverRegistry
from noetl.kube.settings import OperatorSettings
from tests.kube.fake_api import FakeKubeApi
from tests.kube.test_driver import NS, Operator, shell, submit

WORKLOAD = {
    "workload": {"city": "Paris"},
    "workflow": [{"step": "start", "next": [{"step": "a"}]}, shell("a", ["b"]), shell("b")],
    "output": "{{ workload.city }}",
}


def edit(api: FakeKubeApi, **spec: object) -> dict[str, object]:
    execution = api.get("Execution", NS, "run")
    assert execution is not None
    execution["spec"].update(spec)
    execution["metadata"]["generation"] += 1
    return execution


async def test_a_workload_edited_mid_run_is_ignored_even_across_a_restart():
    api = FakeKubeApi()
    submit(api, WORKLOAD)
    api.objects[("Execution", NS, "run")]["spec"]["workload"] = {"city": "Paris"}
    operator = Operator(api)
    operator.start()
    await operator.idle()
    [first] = operator.unfinished_jobs()
    operator.finish(first)
    await operator.advance(1)  # the first save is due: it keeps the snapshot with the results
    edit(api, workload={"city": "Oslo"})
    assert operator.task is not None
    operator.task.cancel()  # the operator restarts half-way, and reads the edited spec
    operator.start()
    status = await operator.run()
    assert (status["phase"], status["result"]) == ("Succeeded", "Paris")


async def test_an_edit_before_the_first_save_and_a_restart_end_the_run_saying_why():
    api = FakeKubeApi()
    submit(api, WORKLOAD)
    operator = Operator(api)
    operator.start()
    await operator.idle()  # its first Job runs; the snapshot waits for the first save
    edit(api, workload={"city": "Oslo"})
    assert operator.task is not None
    operator.task.cancel()  # a restart now cannot build the same snapshot again
    operator.context.settings = OperatorSettings(reconcile_backoff_seconds=0)
    drivers = DriverRegistry(operator.context)
    drivers.deliver(NS, "run")
    await asyncio.wait_for(drivers._tasks[(NS, "run")], 60)
    status = operator.status()
    assert (status["phase"], status["conditions"][0]["reason"]) == ("Failed", "ReconcileError")
    assert (
        "run-a-a1 was made from another version of the playbook or the workload"
        in (status["error"])
    )
    assert [key[2] for key in api.created if key[0] == "Job"] == ["run-a-a1"]  # made once
    assert api.of_kind("Job") == []  # and deleted with the run it was part of


async def test_a_cancel_moves_the_observed_generation_on():
    api = FakeKubeApi()
    submit(api, WORKLOAD)
    operator = Operator(api)
    operator.start()
    await operator.idle()
    operator.driver.queue.put_nowait(ExecutionChanged(edit(api, cancel=True)))
    await operator.idle()
    status = operator.status()
    assert (status["phase"], status["observedGeneration"]) == ("Cancelled", 2)
