"""`finally` steps: they run after the workflow however it ended, and never hide its failure."""

from __future__ import annotations

from noetl.engine import CancelStep, ScheduleTimer
from noetl.engine.machine import FINALLY_GRACE
from tests.engine.world import World

PLAYBOOK = """
kind: Playbook
name: tidy
timeout: 1m
output: "{{ work.n }}"
workflow:
  - step: start
    next: [{step: work}]
  - step: work
    tool: shell
    args: {command: work}
finally:
  - step: notify
    tool: shell
    args: {command: "echo {{ execution.phase }} {{ execution.error }}"}
    next: [{step: report}]
  - step: cleanup
    tool: shell
    args: {command: cleanup}
    next: [{step: report}]
  - step: report
    tool: shell
    args: {command: report}
"""


def _finish_finally(world: World) -> None:
    world.succeed("notify")
    world.succeed("cleanup")
    world.succeed("report")


def test_after_success_the_finally_graph_runs_and_the_output_is_kept():
    world = World(PLAYBOOK)
    world.start()
    world.succeed("work", {"n": 7})
    assert sorted(world.running) == ["cleanup#1", "notify#1"]  # the roots, together
    assert world.running["notify#1"].args == {"command": "echo Succeeded None"}
    assert world.state.phase == "Running" and world.state.ending == "Succeeded"
    world.succeed("notify")
    assert "report#1" not in world.running  # a join inside finally waits for both
    world.succeed("cleanup")
    world.succeed("report")
    assert (world.finished.phase, world.finished.result) == ("Succeeded", 7)
    assert world.step("report").phase == "Succeeded"


def test_after_a_failure_finally_sees_it_and_the_execution_keeps_it():
    world = World(PLAYBOOK)
    world.start()
    world.fail("work", "disk full")
    error = "step 'work' failed: disk full"
    assert world.running["notify#1"].args == {"command": f"echo Failed {error}"}
    world.fail("notify", "no mail server")
    world.succeed("cleanup")
    assert world.finished.phase == "Failed"
    assert world.finished.error == f"{error}; then finally step 'notify' failed: no mail server"
    assert world.step("report").phase == "Skipped"  # below a failed finally step, as anywhere


def test_a_finally_failure_fails_a_workflow_that_succeeded():
    world = World(PLAYBOOK)
    world.start()
    world.succeed("work", {"n": 1})
    world.succeed("notify")
    world.fail("cleanup", "volume busy")
    assert world.finished.phase == "Failed"
    assert world.finished.error == "step 'cleanup' failed: volume busy"
    assert world.finished.result is None


def test_cancel_stops_the_workflow_then_finally_runs_within_the_grace():
    world = World(PLAYBOOK, roundtrip=True)
    world.start()
    commands = world.cancel()
    assert CancelStep("work", None, 1) in commands
    assert ScheduleTimer(FINALLY_GRACE, world.clock + 30.0) in commands
    assert world.running["notify#1"].args == {"command": "echo Cancelled cancel requested"}
    assert world.cancel() == []  # asked again (a spec watched again): nothing more
    _finish_finally(world)
    assert (world.finished.phase, world.finished.error) == ("Cancelled", "cancel requested")
    assert world.step("work").phase == "Cancelled"


def test_finally_steps_still_running_when_the_grace_ends_are_stopped():
    world = World(PLAYBOOK)
    world.start()
    world.cancel()
    world.succeed("notify")
    commands = world.fire(FINALLY_GRACE)
    assert CancelStep("cleanup", None, 1) in commands
    assert (world.finished.phase, world.finished.error) == ("Cancelled", "cancel requested")
    assert world.step("cleanup").phase == "Cancelled"
    assert world.step("report").phase == "Cancelled"


def test_the_execution_timeout_ends_the_workflow_and_finally_runs():
    world = World(PLAYBOOK)
    world.start()
    world.fire("execution-timeout")
    assert world.running["notify#1"].args["command"].startswith("echo Failed execution timed out")
    assert FINALLY_GRACE in world.timers
    _finish_finally(world)
    assert world.finished.phase == "Failed"
    assert world.finished.error == "execution timed out after 1m"


def test_a_cancel_while_finally_runs_bounds_it_and_keeps_the_outcome():
    world = World(PLAYBOOK)
    world.start()
    world.succeed("work", {"n": 2})
    commands = world.cancel()
    assert [c for c in commands if isinstance(c, CancelStep)] == []
    assert FINALLY_GRACE in world.timers
    _finish_finally(world)
    assert (world.finished.phase, world.finished.result) == ("Succeeded", 2)


def test_a_grace_that_ends_after_success_fails_the_execution():
    world = World(PLAYBOOK)
    world.start()
    world.succeed("work", {"n": 2})
    world.fire("execution-timeout")  # the execution timeout also covers finally steps
    world.fire(FINALLY_GRACE)
    assert world.finished.phase == "Failed"
    assert world.finished.error == "finally steps stopped after the 30s grace"


def test_a_restart_in_the_middle_of_finally_carries_on():
    world = World(PLAYBOOK, roundtrip=True)  # the state re-read from JSON before every event
    world.start()
    world.fail("work", "boom")
    world.succeed("notify")
    assert world.state.to_dict()["ending"] == "Failed"
    world.succeed("cleanup")
    world.succeed("report")
    assert (world.finished.phase, world.finished.error) == ("Failed", "step 'work' failed: boom")


def test_a_cancel_before_the_start_runs_nothing():
    world = World(PLAYBOOK)
    world.cancel()
    assert world.finished.phase == "Cancelled"
    assert world.started == []
