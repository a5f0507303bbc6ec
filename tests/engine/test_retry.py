"""A retry: a new run seeded with what an earlier one kept runs only what did not succeed."""

from __future__ import annotations

from typing import Any

from noetl.engine.retry import kept_results
from tests.engine.world import World

PIPELINE = """
kind: Playbook
name: pipeline
workload: {numbers: [1, 2, 3, 4]}
workflow:
  - step: start
    next: [{step: prepare}]
  - step: prepare
    tool: shell
    args: {command: prepare}
    next: [{step: each}]
  - step: each
    tool: shell
    args: {command: "square {{ item }} after {{ prepare }}"}
    loop: {in: "{{ workload.numbers }}", mode: parallel, maxInFlight: 2}
    next: [{step: report}]
  - step: report
    tool: shell
    args: {command: "report {{ each.results }}"}
finally:
  - step: tidy
    tool: shell
    args: {command: tidy}
"""


def failed_run(workload: dict[str, Any] | None = None) -> World:
    """A run in which `prepare` succeeded and item 1 of `each` failed (items 0 and 2 succeeded)."""
    world = World(PIPELINE, workload)
    world.start()
    world.succeed("prepare", "p")
    world.succeed("each[0]#1", 0)
    world.fail("each[1]#1", "boom")
    world.succeed("each[2]#1", 4)  # already in flight when item 1 failed: it ends
    world.succeed("tidy")
    assert world.finished.phase == "Failed"
    return world


def retry_of(earlier: World, workload: dict[str, Any] | None = None) -> World:
    world = World(PIPELINE, workload, roundtrip=True)
    world.results = kept_results(world.engine.graph, earlier.results)
    return world


def test_a_retry_runs_the_failed_items_and_what_follows_and_keeps_the_rest():
    world = retry_of(failed_run())
    world.start()
    assert sorted(world.running) == ["each[1]#1", "each[3]#1"]  # prepare, items 0 and 2 kept
    assert world.running["each[1]#1"].args == {"command": "square 2 after p"}
    assert world.step("prepare").message == "kept from the run retried"
    world.succeed("each[1]#1", 1)
    world.succeed("each[3]#1", 9)
    assert world.running["report#1"].args == {"command": "report [0, 1, 4, 9]"}
    world.succeed("report", "done")
    world.succeed("tidy")  # finally steps always run again
    assert (world.finished.phase, world.finished.result) == ("Succeeded", "done")
    assert world.started_steps() == ["each", "each", "report", "tidy"]


def test_a_loop_whose_items_changed_runs_whole():
    world = retry_of(failed_run(), {"numbers": [5, 6]})
    world.start()
    assert sorted(world.running) == ["each[0]#1", "each[1]#1"]
    assert world.running["each[0]#1"].args == {"command": "square 5 after p"}


def test_what_is_kept_is_only_what_succeeded():
    kept = kept_results(World(PIPELINE).engine.graph, failed_run().results)
    assert sorted(kept) == [
        "each#items",
        "each[0]",
        "each[2]",
        "prepare",
        "prepare#record",
        "start#record",
    ]


def test_a_retry_of_a_run_that_succeeded_runs_nothing_but_finally():
    earlier = World(PIPELINE)
    earlier.run_to_end()
    world = retry_of(earlier)
    world.run_to_end()
    assert world.started_steps() == ["tidy"]
    assert world.finished.result == earlier.finished.result
