"""Suspend, resume and approval steps: nothing new starts while suspended; approvals wait."""

from __future__ import annotations

from noetl.engine import (
    ApprovalGiven,
    AwaitApproval,
    ResumeRequested,
    ScheduleTimer,
    StartStep,
    SuspendRequested,
)
from tests.engine.world import World

LOOPED = """
kind: Playbook
name: looped
workflow:
  - step: start
    next: [{step: each}]
  - step: each
    tool: shell
    args: {command: "echo {{ item }}"}
    loop: {in: [0, 1, 2, 3], mode: parallel, maxInFlight: 2}
    retry: {maxAttempts: 2, initialDelay: 1s}
    next: [{step: after}]
  - step: after
    tool: shell
    args: {command: after}
finally:
  - step: tidy
    tool: shell
    args: {command: "echo {{ execution.phase }}"}
"""


def suspend(world: World) -> list:
    return world.send(SuspendRequested(at=world.tick()))


def resume(world: World) -> list:
    return world.send(ResumeRequested(at=world.tick()))


def test_a_suspended_execution_lets_runs_end_and_starts_nothing_until_resumed():
    world = World(LOOPED, roundtrip=True)
    world.start()
    suspend(world)
    assert world.state.shown_phase == "Suspended"
    assert world.succeed("each[0]#1") == []  # item 2 is due, but held
    world.fail("each[1]#1")
    assert world.fire("retry:each[1]#2") == []  # so is the retry of item 1
    assert world.state.runs_in_flight() == []  # held runs are not waited for as processes
    started = [c.key for c in resume(world) if isinstance(c, StartStep)]
    assert started == ["each[2]#1", "each[1]#2"]
    assert world.state.shown_phase == "Running"
    world.run_to_end()
    assert world.finished.phase == "Succeeded"
    assert [c.step for c in world.started].count("after") == 1


def test_a_step_routed_to_while_suspended_waits_as_a_step():
    world = World(LOOPED.replace("maxInFlight: 2", "maxInFlight: 4"))
    world.start()
    suspend(world)
    for key in list(world.running):
        world.succeed(key)
    assert "after#1" not in world.running
    assert (world.step("after").phase, world.state.held) == ("Waiting", [("after", None, 1)])
    resume(world)
    assert "after#1" in world.running


def test_cancel_ends_a_suspension_and_runs_finally():
    world = World(LOOPED)
    world.start()
    suspend(world)
    world.succeed("each[0]#1")
    world.cancel()
    assert {c.key for c in world.cancelled} == {"each[1]#1"}  # the held item never ran
    assert world.state.suspended is None
    assert list(world.running) == ["tidy#1"]
    world.succeed("tidy#1")
    assert world.finished.phase == "Cancelled"


GATED = """
kind: Playbook
name: gated
workflow:
  - step: start
    next: [{step: gate}]
  - step: gate
    tool: approval
    args: {message: "deploy {{ workload.version }}?"}
    timeout: 1h
    onError: continue
    next:
      - when: "{{ gate.error is defined }}"
        then: [{step: expired}]
      - when: "{{ gate.approved }}"
        then: [{step: deploy}]
  - step: deploy
    tool: shell
    args: {command: "deploy {{ workload.version }} by {{ gate.by }}"}
  - step: expired
    tool: shell
    args: {command: "echo {{ gate.error }}"}
"""


def test_an_approval_waits_and_its_values_become_its_result():
    world = World(GATED, {"version": "1.2"}, roundtrip=True)
    commands = world.start()
    assert AwaitApproval("gate", "deploy 1.2?", 3600.0) in commands
    assert ScheduleTimer("timeout:gate#1", 3600.0) in commands
    assert world.running == {}
    gate = world.step("gate")
    assert (gate.phase, gate.message) == ("Waiting", "waiting for approval: deploy 1.2?")
    assert world.state.runs_in_flight() == []  # no process to look for after a restart
    world.send(ApprovalGiven("gate", at=world.tick(), values={"approved": True, "by": "ada"}))
    assert world.running["deploy#1"].args == {"command": "deploy 1.2 by ada"}
    assert "timeout:gate#1" not in world.state.timers
    assert world.send(ApprovalGiven("gate", at=world.tick(), values={"approved": False})) == []
    world.succeed("deploy")
    assert world.finished.phase == "Succeeded"


def test_an_approval_not_given_in_time_fails_the_step_which_may_route_on():
    world = World(GATED, {"version": "1.2"})
    world.start()
    world.fire("timeout:gate#1")
    assert world.running["expired#1"].args == {"command": "echo no approval within 3600s"}
    assert world.step("gate").phase == "Failed"
    assert world.send(ApprovalGiven("gate", at=world.tick())) == []  # too late: ignored


def test_an_approval_with_no_values_is_an_empty_result():
    world = World(
        """
        kind: Playbook
        name: plain
        workflow:
          - step: start
            next: [{step: gate}]
          - step: gate
            tool: approval
        """
    )
    world.start()
    assert world.step("gate").message == "waiting for approval"
    world.send(ApprovalGiven("gate", at=world.tick()))
    assert (world.finished.phase, world.finished.result) == ("Succeeded", {})
    assert world.step("gate").message == "approved"
