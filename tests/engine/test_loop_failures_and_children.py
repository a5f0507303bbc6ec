"""Loops that tolerate failed items and keep their successes; child playbooks that are bounded.

What the engine does when a loop item fails for good (`loop.maxFailures`, `onError: continue`),
when rendered args have the wrong type, and when a child playbook would nest too deep.
"""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from noetl.engine.state import ERROR_LIMIT
from tests.engine.test_engine import LOOP
from tests.engine.world import World


def loop_playbook(mode: str = "sequential", max_failures: int | None = None, on_error: str = ""):
    """The engine tests' loop of five items, reporting its whole result."""
    limit = f", maxFailures: {max_failures}" if max_failures is not None else ""
    return (
        LOOP.replace("MODE", mode)
        .replace("maxInFlight: 2}", f"maxInFlight: 2{limit}}}")
        .replace(
            "    next: [{step: end}]",
            f"    onError: {on_error or 'fail'}\n    next: [{{step: end}}]",
            1,
        )
        .replace('output: "{{ each.results }}"', 'output: "{{ each }}"')
    )


def test_a_loop_that_succeeds_lists_its_results_and_no_errors():
    world = World(loop_playbook())
    world.run_to_end(lambda command: (True, command.args["command"].split()[1]))
    assert world.finished.result == {"results": ["a", "b", "c", "d", "e"], "errors": []}


def test_a_loop_within_max_failures_succeeds_and_keeps_every_item():
    world = World(loop_playbook(max_failures=2))
    world.run_to_end(lambda command: (command.index not in (1, 3), f"r{command.index}"))
    assert world.finished.phase == "Succeeded"
    assert world.finished.result == {
        "results": ["r0", None, "r2", None, "r4"],
        "errors": [{"index": 1, "error": "r1"}, {"index": 3, "error": "r3"}],
    }
    assert not [key for key in world.results if "[" in key or ("#" in key and "#record" not in key)]


def test_one_failure_past_max_failures_stops_the_loop_and_fails_the_step():
    world = World(loop_playbook(max_failures=1))
    world.run_to_end(lambda command: (command.index not in (0, 2), f"r{command.index}"))
    assert world.finished.phase == "Failed"
    assert [c.index for c in world.started] == [0, 1, 2]  # nothing launched after item 2
    assert world.finished.error == (
        "step 'each' failed: 2 items failed (loop.maxFailures is 1); item 2 failed: r2"
    )
    # What a retry of the execution keeps stays: the item list and the item that succeeded.
    kept = [key for key in world.results if "[" in key or ("#" in key and "#record" not in key)]
    assert kept == ["each#items", "each[1]"]


def test_on_error_continue_keeps_the_items_that_succeeded():
    world = World(loop_playbook(mode="parallel", on_error="continue"))
    world.start()
    world.fail("each[0]#1", "bad a")  # from here on no item is launched
    world.succeed("each[1]#1", "B")
    assert world.finished.phase == "Succeeded"
    assert world.finished.result == {
        "error": "item 0 failed: bad a",
        "result": {
            "results": [None, "B", None, None, None],
            "errors": [{"index": 0, "error": "bad a"}],
        },
    }


def test_items_whose_args_cannot_render_count_as_failures_without_deep_recursion():
    items = list(range(3000))
    source = loop_playbook(max_failures=5000).replace("echo {{ it }}", "{{ it.missing }}")
    world = World(source, workload={"items": items})
    world.start()
    assert world.finished.phase == "Succeeded"
    assert len(world.finished.result["errors"]) == 3000
    assert world.finished.result["results"] == [None] * 3000


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.booleans(), max_size=12),
    st.integers(0, 4),
    st.sampled_from(["sequential", "parallel"]),
    st.randoms(use_true_random=False),
)
def test_a_loop_fails_exactly_when_more_items_fail_than_it_tolerates(
    outcomes: list[bool], max_failures: int, mode: str, rng: random.Random
):
    world = World(
        loop_playbook(mode, max_failures),
        workload={"items": list(range(len(outcomes)))},
        roundtrip=True,
    )
    finished = world.run_to_end(
        lambda command: (outcomes[command.index], f"r{command.index}"), rng=rng
    )
    launched = sorted(command.index for command in world.started)
    failed = [index for index in launched if not outcomes[index]]
    assert len(launched) == len(set(launched))
    assert (finished.phase == "Failed") == (len(failed) > max_failures)
    if finished.phase == "Succeeded":
        assert launched == list(range(len(outcomes)))
        assert finished.result["results"] == [
            f"r{i}" if ok else None for i, ok in enumerate(outcomes)
        ]
        assert [e["index"] for e in finished.result["errors"]] == failed
    left = [key for key in world.results if "[" in key or ("#" in key and "#record" not in key)]
    if finished.phase == "Succeeded":
        assert left == []
    else:  # kept for a retry of the execution: the item list and the items that succeeded
        succeeded = [f"each[{i}]" for i in launched if outcomes[i]]
        assert sorted(left) == sorted(["each#items", *succeeded])
    assert len(json.dumps(world.state.to_dict())) < 4096


CHILD = """
kind: Playbook
name: parent
workload: {who: Ada}
workflow:
  - step: start
    next: [{step: child}]
  - step: child
    tool: playbook
    args: ARGS
"""


def test_a_child_workload_that_renders_to_a_string_fails_the_step_naming_the_field():
    world = World(CHILD.replace("ARGS", '{name: greet, workload: "{{ workload.who }}"}'))
    world.start()
    assert world.finished.phase == "Failed"
    assert not world.started
    assert world.finished.error == (
        "step 'child' failed: args.workload rendered wrong: expected a valid dictionary, got 'Ada'"
    )


def test_an_http_timeout_that_renders_to_text_fails_the_step_naming_the_field():
    source = CHILD.replace("tool: playbook", "tool: http").replace(
        "ARGS", '{url: "http://x", timeout: "{{ workload.who }}"}'
    )
    world = World(source)
    world.start()
    assert world.finished.phase == "Failed"
    assert "args.timeout rendered wrong" in world.finished.error
    assert "'Ada'" in world.finished.error


def test_a_child_deeper_than_the_limit_is_not_started():
    args = "{name: parent}"
    world = World(CHILD.replace("ARGS", args), depth=3, max_child_depth=3)
    world.start()
    assert not world.started
    assert world.finished.error == (
        "step 'child' failed: child playbook 'parent' not started: it would be nested 4 deep,"
        " over the limit of 3 (does a playbook call itself?)"
    )
    shallower = World(CHILD.replace("ARGS", args), depth=2, max_child_depth=3)
    shallower.start()
    assert [c.step for c in shallower.started] == ["child"]


def test_a_long_nested_error_is_cut():
    world = World(CHILD.replace("ARGS", "{name: greet}"))
    world.start()
    world.fail("child", "x" * 50_000)
    assert world.finished.phase == "Failed"
    message = world.finished.error.removeprefix("step 'child' failed: ")
    assert len(message) == ERROR_LIMIT
    assert message.endswith("…")
