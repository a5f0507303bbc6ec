"""Both shells: the names templates see in the engine's render context. A hyphenated step is
reached with `_`; workload templates are rendered once, at the start, seeing `execution`;
a limit reached names the step and the expression."""

from __future__ import annotations

from tests.engine.world import World

HYPHENATED = """
kind: Playbook
name: hyphens
workflow:
  - step: start
    next: [{step: fetch-data}]
  - step: fetch-data
    tool: http
    args: {url: "http://example.org"}
    next: [{step: use}]
  - step: use
    tool: shell
    args: {command: "echo {{ fetch_data.items | length }} {{ fetch_data.body.keys }}"}
"""


def test_a_hyphenated_step_is_reached_with_an_underscore_and_its_keys_are_data():
    world = World(HYPHENATED)
    world.start()
    world.succeed("fetch-data", {"items": [1, 2, 3], "body": {"keys": "k"}})
    assert world.running["use#1"].args == {"command": "echo 3 k"}


WORKLOAD_TEMPLATES = """
kind: Playbook
name: stamped
workload:
  run: "run-{{ execution.id }}"
  paths: ["/data/{{ execution.name }}", plain]
workflow:
  - step: start
    next: [{step: use}]
  - step: use
    tool: shell
    args: {command: "echo {{ workload.run }} {{ workload.paths[0] }}"}
"""


def test_the_playbooks_workload_templates_are_rendered_once_at_the_start():
    world = World(WORKLOAD_TEMPLATES)
    world.start()
    assert world.running["use#1"].args == {"command": "echo run-x-1 /data/x"}
    assert world.engine.workload["paths"][1] == "plain"


def test_values_given_for_the_run_are_data_never_templates():
    world = World(WORKLOAD_TEMPLATES, {"run": "{{ execution.name }}", "extra": "{{ 1 + 1 }}"})
    world.start()
    assert world.running["use#1"].args == {"command": "echo {{ execution.name }} /data/x"}
    assert world.engine.workload["extra"] == "{{ 1 + 1 }}"


def test_a_workload_template_that_fails_fails_the_execution_naming_its_key():
    bad = WORKLOAD_TEMPLATES.replace("  paths:", '  bad: {deep: ["{{ fetch.items }}"]}\n  paths:')
    world = World(bad)
    world.start()
    assert world.running == {}
    assert world.finished is not None
    assert world.finished.phase == "Failed"
    assert world.finished.error == (
        "workload.bad.deep[0]: template '{{ fetch.items }}': 'fetch' is undefined"
    )


LIMITED = """
kind: Playbook
name: limited
workflow:
  - step: start
    next: [{step: boom}]
  - step: boom
    tool: shell
    args: {command: "echo {{ workload.n ** workload.n }}"}
"""


def test_a_template_past_the_limits_fails_its_step_naming_the_expression():
    world = World(LIMITED, {"n": 10**6})
    world.start()
    assert world.finished is not None
    assert world.finished.error == (
        "step 'boom' failed: args: template 'echo {{ workload.n ** workload.n }}': "
        "over the template limits: an integer of more than 4,096 bits"
    )
