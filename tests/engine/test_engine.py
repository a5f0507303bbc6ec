"""The engine's rules, event by event, with no processes: each DSL feature and the edge cases."""

from __future__ import annotations

import pytest

from noetl.engine import CancelStep, ScheduleTimer, StartChildExecution, StartStep
from tests.engine.world import World

CHAIN = """
kind: Playbook
name: chain
workflow:
  - step: start
    next: [{step: a}]
  - step: a
    tool: shell
    args: {command: "echo a"}
    next: [{step: b}]
  - step: b
    tool: shell
    args: {command: "echo {{ a.stdout }}"}
    next: [{step: end}]
  - step: end
"""


def test_a_chain_runs_in_order_and_passes_results():
    world = World(CHAIN)
    world.start()
    assert list(world.running) == ["a#1"]
    world.succeed("a", {"stdout": "hello"})
    assert world.running["b#1"].args == {"command": "echo hello"}
    world.succeed("b", {"stdout": "done"})
    assert world.finished.phase == "Succeeded"
    assert world.finished.result == {"stdout": "done"}  # no output: the last tool step's result
    assert world.state.phase == "Succeeded"
    assert world.state.steps == {}  # finished records live with the results
    assert [s for s in ("start", "a", "b", "end") if world.step(s).phase == "Succeeded"] == [
        "start",
        "a",
        "b",
        "end",
    ]


FAN = """
kind: Playbook
name: fan
workflow:
  - step: start
    next: [{step: a}, {step: b}, {step: c}]
  - step: a
    tool: shell
    args: {command: a}
    next: [{step: a2}]
  - step: a2
    tool: shell
    args: {command: a2}
    next: [{step: join}]
  - step: b
    tool: shell
    args: {command: b}
    next: [{step: join}]
  - step: c
    tool: shell
    args: {command: c}
    next: [{step: join}]
  - step: join
    tool: python
    code: "result = 1"
    args: {seen: ["{{ a2 }}", "{{ b }}", "{{ c }}"]}
output: "{{ join }}"
"""


def test_fan_out_starts_branches_together_and_the_join_waits_for_all():
    world = World(FAN)
    world.start()
    assert sorted(world.running) == ["a#1", "b#1", "c#1"]
    world.succeed("b", "B")
    world.succeed("c", "C")
    assert "join" not in world.started_steps()  # a2 has not even started yet, but can still arrive
    world.succeed("a", "A")
    assert "join" not in world.started_steps()
    world.succeed("a2", "A2")
    assert world.running["join#1"].args == {"seen": ["A2", "B", "C"]}
    world.succeed("join", 42)
    assert world.finished.result == 42


def test_a_join_after_a_failed_branch_is_skipped_but_other_branches_carry_on():
    world = World(FAN)
    world.start()
    world.fail("b", "exit 3")
    assert sorted(world.running) == ["a#1", "c#1"]  # failure stays local
    world.succeed("a")
    world.succeed("c")
    assert "a2#1" in world.running
    world.succeed("a2")
    assert world.finished.phase == "Failed"
    assert world.finished.error == "step 'b' failed: exit 3"
    assert world.step("join").phase == "Skipped"
    assert "join" not in world.started_steps()


CONDITIONAL = """
kind: Playbook
name: cond
workflow:
  - step: start
    next: [{step: check}]
  - step: check
    tool: python
    code: "result = 1"
    next:
      - step: always
      - when: "{{ check.n > 10 }}"
        then: [{step: big}]
      - when: "{{ check.n > 5 }}"
        then: [{step: medium}]
      - else: [{step: small}]
  - step: always
    tool: shell
    args: {command: x}
  - step: big
    tool: shell
    args: {command: x}
  - step: medium
    tool: shell
    args: {command: x}
  - step: small
    tool: shell
    args: {command: x}
"""


@pytest.mark.parametrize(("n", "branch"), [(20, "big"), (7, "medium"), (1, "small")])
def test_when_entries_form_an_if_elif_chain_with_else(n, branch):
    world = World(CONDITIONAL)
    world.start()
    world.succeed("check", {"n": n})
    assert sorted(world.running) == sorted(["always#1", f"{branch}#1"])


def test_a_condition_that_cannot_render_fails_the_step_naming_it():
    world = World(CONDITIONAL)
    world.start()
    world.succeed("check", {"m": 1})
    assert world.finished.phase == "Failed"
    assert "check" in world.finished.error
    assert "next[1].when" in world.finished.error
    assert "check.n > 10" in world.finished.error


LOOP = """
kind: Playbook
name: loop
workload: {items: [a, b, c, d, e]}
workflow:
  - step: start
    next: [{step: each}]
  - step: each
    tool: shell
    loop: {in: "{{ workload['items'] }}", iterator: it, mode: MODE, maxInFlight: 2}
    args: {command: "echo {{ it }} {{ loop.index }}"}
    next: [{step: end}]
  - step: end
output: "{{ each.results }}"
"""


def test_a_sequential_loop_runs_one_item_at_a_time():
    world = World(LOOP.replace("MODE", "sequential"))
    world.start()
    for index, item in enumerate("abcde"):
        assert list(world.running) == [f"each[{index}]#1"]
        assert world.running[f"each[{index}]#1"].args == {"command": f"echo {item} {index}"}
        world.succeed(f"each[{index}]#1", item.upper())
    assert world.finished.result == ["A", "B", "C", "D", "E"]


def test_a_parallel_loop_keeps_max_in_flight_and_item_order():
    world = World(LOOP.replace("MODE", "parallel"))
    world.start()
    assert sorted(world.running) == ["each[0]#1", "each[1]#1"]
    world.succeed("each[1]#1", "B")
    assert sorted(world.running) == ["each[0]#1", "each[2]#1"]
    world.succeed("each[2]#1", "C")
    world.succeed("each[3]#1", "D")
    world.succeed("each[0]#1", "A")
    world.succeed("each[4]#1", "E")
    assert world.finished.result == ["A", "B", "C", "D", "E"]
    item_keys = [key for key in world.results if "[" in key or key.endswith("#items")]
    assert not item_keys  # item results and the item list dropped once gathered


def test_a_loop_item_that_fails_for_good_fails_the_loop_after_in_flight_items_end():
    world = World(LOOP.replace("MODE", "parallel"))
    world.start()
    world.fail("each[0]#1", "bad item")
    assert list(world.running) == ["each[1]#1"]  # nothing new is launched
    world.succeed("each[1]#1")
    assert world.finished.phase == "Failed"
    assert world.finished.error == "step 'each' failed: item 0 failed: bad item"


def test_an_empty_loop_succeeds_with_no_results():
    world = World(LOOP.replace("MODE", "parallel"), workload={"items": []})
    world.start()
    assert world.finished.result == []


def test_a_loop_over_something_not_a_list_fails_clearly():
    world = World(LOOP.replace("MODE", "parallel"), workload={"items": {"a": 1}})
    world.start()
    assert world.finished.error == "step 'each' failed: loop.in rendered to dict, expected a list"


RETRY = """
kind: Playbook
name: retry
workflow:
  - step: start
    next: [{step: flaky}]
  - step: flaky
    tool: http
    args: {url: "http://x/{{ attempt }}"}
    timeout: 30s
    retry: {maxAttempts: 4, backoff: exponential, initialDelay: 2s, maxDelay: 5s WHEN}
"""


def test_retry_backs_off_exponentially_up_to_max_delay_then_gives_up():
    world = World(RETRY.replace(" WHEN", ""))
    world.start()
    assert world.running["flaky#1"].timeout == 30.0
    delays = []
    for attempt in (1, 2, 3):
        assert world.running[f"flaky#{attempt}"].args == {"url": f"http://x/{attempt}"}
        before = world.clock
        world.fail("flaky", f"failure {attempt}")
        delays.append(world.retries[-1].due - before - 1)
        assert not world.running  # nothing runs while waiting
        assert world.state.steps["flaky"].phase == "Retrying"
        world.fire(world.retries[-1].timer)
    assert delays == [2.0, 4.0, 5.0]
    world.fail("flaky", "failure 4")
    assert world.finished.error == "step 'flaky' failed: failure 4"


def test_retry_when_decides_from_the_error_and_result():
    world = World(RETRY.replace(" WHEN", ', when: "{{ result.status == 503 }}"'))
    world.start()
    world.fail("flaky", "status 503", result={"status": 503})
    assert len(world.retries) == 1
    world.fire(world.retries[-1].timer)
    world.fail("flaky", "status 404", result={"status": 404})
    assert len(world.retries) == 1
    assert world.finished.phase == "Failed"


def test_a_late_event_of_an_old_attempt_is_ignored():
    world = World(RETRY.replace(" WHEN", ""))
    world.start()
    world.fail("flaky")
    world.fire(world.retries[-1].timer)
    from noetl.engine import StepSucceeded

    assert world.send(StepSucceeded("flaky", None, 1, at=world.tick(), result="stale")) == []
    assert world.finished is None
    world.succeed("flaky#2", "fresh")
    assert world.finished.result == "fresh"


def test_a_duplicate_success_starts_nothing_twice():
    world = World(CHAIN)
    world.start()
    from noetl.engine import StepSucceeded

    event = StepSucceeded("a", None, 1, at=1.0, result={"stdout": "x"})
    first = world.send(event)
    world.running.pop("b#1")
    assert [type(c).__name__ for c in first] == ["StartStep"]
    assert world.send(event) == []


def test_a_template_error_names_the_step_and_the_expression_and_is_not_retried():
    world = World(
        """
kind: Playbook
name: t
workflow:
  - step: start
    next: [{step: bad}]
  - step: bad
    tool: shell
    args: {command: "echo {{ nothing.here }}"}
    retry: {maxAttempts: 3}
"""
    )
    world.start()
    assert world.finished.phase == "Failed"
    assert (
        world.finished.error
        == "step 'bad' failed: args: template 'echo {{ nothing.here }}': 'nothing' is undefined"
    )
    assert not world.retries


def test_the_sandbox_refuses_escapes_in_step_args():
    world = World(
        """
kind: Playbook
name: t
workflow:
  - step: start
    next: [{step: bad}]
  - step: bad
    tool: shell
    args: {command: "{{ workload.__class__.__mro__[1].__subclasses__() }}"}
"""
    )
    world.start()
    assert "refused by the sandbox" in world.finished.error
    assert not world.started


def test_cancel_stops_everything_running_and_ignores_later_events():
    world = World(FAN)
    world.start()
    world.succeed("b")
    commands = world.cancel()
    assert sorted(c.key for c in commands if isinstance(c, CancelStep)) == ["a#1", "c#1"]
    assert world.finished.phase == "Cancelled"
    assert world.step("a").phase == "Cancelled"
    from noetl.engine import StepSucceeded

    assert world.send(StepSucceeded("a", None, 1, at=9.0)) == []


def test_the_execution_timeout_fails_the_run_and_cancels_steps():
    world = World(CHAIN.replace("name: chain", "name: chain\ntimeout: 10s"))
    commands = world.start()
    assert ScheduleTimer("execution-timeout", 10.0) in commands
    world.fire("execution-timeout")
    assert world.finished.phase == "Failed"
    assert world.finished.error == "execution timed out after 10s"
    assert [c.key for c in world.cancelled] == ["a#1"]


def test_on_error_continue_routes_onward_with_the_error():
    world = World(
        """
kind: Playbook
name: t
workflow:
  - step: start
    next: [{step: risky}]
  - step: risky
    tool: shell
    args: {command: "exit 1"}
    onError: continue
    next:
      - when: "{{ risky.error is defined }}"
        then: [{step: report}]
  - step: report
    tool: shell
    args: {command: "echo {{ risky.error }}"}
"""
    )
    world.start()
    world.fail("risky", "exit 1")
    assert world.running["report#1"].args == {"command": "echo exit 1"}
    world.succeed("report", "reported")
    assert world.finished.phase == "Succeeded"


def test_a_playbook_step_starts_a_child_execution():
    world = World(
        """
kind: Playbook
name: parent
workload: {who: Ada}
workflow:
  - step: start
    next: [{step: child}]
  - step: child
    tool: playbook
    args: {name: greet, workload: {who: "{{ workload.who }}"}}
output: "{{ child.greeting }}"
"""
    )
    world.start()
    command = world.running["child#1"]
    assert isinstance(command, StartChildExecution)
    assert (command.playbook, command.workload) == ("greet", {"who": "Ada"})
    world.succeed("child", {"greeting": "Hi, Ada"})
    assert world.finished.result == "Hi, Ada"


def test_an_output_that_cannot_render_fails_the_execution():
    world = World(CHAIN.replace("name: chain", "name: chain\noutput: '{{ missing }}'"))
    world.run_to_end(lambda command: (True, {"stdout": "x"}))
    assert world.finished.phase == "Failed"
    assert world.finished.error == "output: template '{{ missing }}': 'missing' is undefined"


def test_routing_only_playbooks_finish_at_once():
    world = World(
        "kind: Playbook\nname: r\nworkflow:\n"
        "  - step: start\n    next: [{step: end}]\n  - step: end\n"
    )
    world.start()
    assert world.finished.phase == "Succeeded"
    assert not world.started


def test_the_workload_of_the_execution_overrides_the_playbook_default():
    world = World(
        CHAIN.replace("name: chain", "name: chain\nworkload: {x: 1, y: 2}").replace(
            "echo a", "{{ workload.x }}{{ workload.y }}"
        ),
        workload={"x": 9},
    )
    world.start()
    assert world.running["a#1"].args == {"command": "92"}


def test_a_nested_workload_override_keeps_the_defaults_beside_it():
    source = CHAIN.replace(
        "name: chain", "name: chain\nworkload: {db: {host: h, port: 5432}, tags: [a]}"
    ).replace("echo a", "{{ workload.db.host }}:{{ workload.db.port }} {{ workload.tags }}")
    world = World(source, workload={"db": {"port": 6543}, "tags": ["b"]})
    world.start()
    assert world.running["a#1"].args == {"command": "h:6543 ['b']"}


def test_the_state_stays_small_for_a_large_loop():
    import json

    world = World(
        LOOP.replace("MODE", "parallel").replace("maxInFlight: 2", "maxInFlight: 50"),
        workload={"items": list(range(10_000))},
    )
    world.run_to_end(lambda command: (True, {"stdout": "x" * 20}))
    assert world.finished.phase == "Succeeded"
    assert len(world.finished.result) == 10_000
    assert len(json.dumps(world.state.to_dict())) < 4096


@pytest.mark.parametrize(
    "source", [CHAIN, FAN, LOOP.replace("MODE", "parallel"), RETRY.replace(" WHEN", "")]
)
def test_a_run_replayed_from_json_after_every_event_ends_the_same(source):
    def decide(command: StartStep | StartChildExecution):
        return (command.attempt > 1 or command.step != "flaky"), command.step

    plain, reread = World(source), World(source, roundtrip=True)
    assert plain.run_to_end(decide) == reread.run_to_end(decide)
    assert [c.key for c in plain.started] == [c.key for c in reread.started]


def test_a_long_chain_of_routing_steps_needs_no_deep_stack():
    lines = [
        "kind: Playbook",
        "name: long",
        "workflow:",
        "  - step: start",
        "    next: [{step: s0}]",
    ]
    for i in range(5000):
        lines += [f"  - step: s{i}", f"    next: [{{step: s{i + 1}}}]"]
    lines += ["  - step: s5000", "    tool: shell", "    args: {command: x}"]
    world = World("\n".join(lines))
    world.start()
    assert list(world.running) == ["s5000#1"]
    world.succeed("s5000", "done")
    assert world.finished.result == "done"


def test_a_step_timeout_is_a_timer_that_cancels_the_attempt_and_may_retry():
    world = World(RETRY.replace(" WHEN", ""))
    commands = world.start()
    assert ScheduleTimer("timeout:flaky#1", 30.0) in commands
    commands = world.fire("timeout:flaky#1")
    assert CancelStep("flaky", None, 1) in commands
    assert world.retries[-1].error == "timed out after 30s"
    assert world.step("flaky").phase == "Retrying"


def test_a_timeout_timer_of_a_finished_attempt_changes_nothing():
    world = World(RETRY.replace(" WHEN", ""))
    world.start()
    world.succeed("flaky", "ok")
    assert "timeout:flaky#1" not in world.state.timers
    assert world.finished.phase == "Succeeded"
    assert world.fire("timeout:flaky#1") == []


def test_a_loop_whose_gathered_results_exceed_the_limit_fails_its_step():
    source = LOOP.replace("MODE", "parallel")
    world = World(source)
    world.engine.result_limit = 400  # each item fits, the five together do not
    world.run_to_end(lambda command: (True, "x" * 100))
    assert world.finished.phase == "Failed"
    assert world.step("each").phase == "Failed"
    assert "byte limit" in (world.step("each").message or "")
    assert not [key for key in world.results if "[" in key or key.endswith("#items")]


def test_a_finished_steps_record_leaves_the_state_for_the_result_store():
    world = World(CHAIN)
    world.start()
    world.succeed("a", {"stdout": "hello"})
    assert set(world.state.steps) == {"b"}
    assert world.results["a#record"]["phase"] == "Succeeded"
