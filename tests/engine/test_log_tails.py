"""The end of a step's log is kept with its record: that of the run whose end ended the step."""

from __future__ import annotations

from noetl.engine import StepSucceeded, log_key
from tests.engine.world import World

STEPS = """
kind: Playbook
name: tails
workflow:
  - step: start
    next: [{step: a}]
  - step: a
    tool: shell
    args: {command: "echo a"}
    retry: {maxAttempts: 2, initialDelay: 1s}
    next: [{step: items}]
  - step: items
    tool: shell
    loop: {in: [1, 2, 3], iterator: n, mode: parallel}
    args: {command: "echo {{ n }}"}
    next: [{step: end}]
  - step: end
"""


def test_the_last_attempts_log_is_kept_beside_the_record_and_a_stale_one_is_not():
    world = World(STEPS, roundtrip=True)
    world.start()
    world.fail("a", log="first try")
    assert log_key("a") not in world.results  # retried: the step is not over
    world.fire(next(iter(world.timers)))
    run = world.running["a#2"]
    world.succeed("a#2", {"stdout": "a"}, log="second try")
    assert world.results[log_key("a")] == "second try"
    assert world.step("a").phase == "Succeeded"
    # A second word of the same end (a pod seen again) changes nothing.
    world.send(StepSucceeded(run.step, run.index, run.attempt, at=world.tick(), log="stale"))
    assert world.results[log_key("a")] == "second try"


def test_a_loop_keeps_the_log_of_the_item_that_ended_it_and_a_silent_step_none():
    world = World(STEPS)
    world.start()
    world.succeed("a", log=None)
    assert log_key("a") not in world.results
    for key, log in (("items[2]#1", "two"), ("items[0]#1", "zero"), ("items[1]#1", "one")):
        assert log_key("items") not in world.results
        world.succeed(key, log=log)
    assert world.results[log_key("items")] == "one"
    assert world.finished is not None and world.finished.phase == "Succeeded"
