"""Broken playbooks, each rejected with the exact path of the bad field and the reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from noetl.playbook import PlaybookInvalid, load_playbook, parse_playbook

GOOD: dict[str, Any] = yaml.safe_load(
    """
apiVersion: noetl.io/v1alpha1
kind: Playbook
metadata: {name: good}
spec:
  workload: {cities: [Paris, Oslo]}
  workbook:
    - name: fetch
      tool: http
      args: {url: "http://example.org/{{ city }}"}
  workflow:
    - step: start
      next: [{step: fetch_all}]
    - step: fetch_all
      task: fetch
      loop: {in: "{{ workload.cities }}", iterator: city, mode: parallel, maxInFlight: 4}
      retry: {maxAttempts: 3, backoff: exponential, initialDelay: 2s}
      timeout: 5m
      next:
        - when: "{{ fetch_all.results | length == 2 }}"
          then: [{step: store}]
        - else: [{step: report}]
    - step: store
      tool: shell
      args: {command: "echo stored"}
      next: [{step: end}]
    - step: report
      tool: python
      code: "result = 1"
      next: [{step: end}]
    - step: end
"""
)


def broken(change: str) -> dict[str, Any]:
    """GOOD with one change applied: `path = yaml value`, or `del path`."""
    document = copy.deepcopy(GOOD)
    delete = change.startswith("del ")
    path, _, value = change.removeprefix("del ").partition(" = ")
    keys: list[Any] = [
        int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")
    ]
    target = document
    for key in keys[:-1]:
        target = target[key]
    if delete:
        del target[keys[-1]]
    else:
        target[keys[-1]] = yaml.safe_load(value)
    return document


CASES = [
    (
        "spec.workflow[2] = {step: store, tool: container, args: {command: [sh]}}",
        "spec.workflow[2].args.image",
        "container steps need args.image",
    ),
    (
        "spec.workflow[2] = {step: store, tool: container, args: {image: i, command: x}}",
        "spec.workflow[2].args.command",
        "expected a valid list, got 'x'",
    ),
    (
        "spec.workflow[2] = {step: store, tool: approval, loop: {in: [1]}}",
        "spec.workflow[2].loop",
        "an approval waits once: it takes no loop",
    ),
    (
        "spec.workflow[2] = {step: store, tool: approval, args: {message: [1]}}",
        "spec.workflow[2].args.message",
        "expected a valid string",
    ),
    (
        "spec.finally = [{step: store, tool: shell, args: {command: x}}]",
        "spec.finally[0].step",
        "duplicate step name 'store' (first at workflow[2])",
    ),
    (
        "spec.finally = [{step: notify, next: [{step: end}]}]",
        "spec.finally[0].next[0].step",
        "no step named 'end' in finally (finally steps route only to finally steps)",
    ),
    (
        "spec.workflow[4].next = [{step: notify}]",
        "spec.workflow[4].next[0].step",
        "no step named 'notify' in workflow",
    ),
    (
        "spec.finally = [{step: a, next: [{step: b}]}, {step: b, next: [{step: a}]}]",
        "spec.finally[1].next[0].step",
        "this edge closes a cycle (a -> b -> a)",
    ),
    (
        "spec.finally = [{step: tidy, retry: {maxAttempts: 2}}]",
        "spec.finally[0].retry",
        "a routing step (no tool) takes no retry",
    ),
    ("spec.workflow[1].step = Fetch All", "spec.workflow[1].step", "does not match the pattern"),
    (
        "spec.workflow[2].step = fetch_all",
        "spec.workflow[2].step",
        "duplicate step name 'fetch_all' (first at workflow[1])",
    ),
    ("spec.workflow[0].step = begin", "spec.workflow", "no step named 'start'"),
    (
        "spec.workflow[2].next[0].step = nowhere",
        "spec.workflow[2].next[0].step",
        "no step named 'nowhere'",
    ),
    (
        "spec.workflow[1].next[0].then[0].step = ghost",
        "spec.workflow[1].next[0].then[0].step",
        "no step named 'ghost'",
    ),
    (
        "spec.workflow[1].next[1].else[0].step = ghost",
        "spec.workflow[1].next[1].else[0].step",
        "no step named 'ghost'",
    ),
    (
        "spec.workflow[1].task = missing",
        "spec.workflow[1].task",
        "no workbook task named 'missing' (known: fetch)",
    ),
    ("spec.workflow[2].tool = bash", "spec.workflow[2].tool", "unknown tool 'bash'"),
    ("spec.workbook[0].tool = curl", "spec.workbook[0].tool", "unknown tool 'curl'"),
    (
        "spec.workflow[1].tool = shell",
        "spec.workflow[1].task",
        "a step takes `task` or `tool`, not both",
    ),
    ("del spec.workflow[3].code", "spec.workflow[3].code", "a python step needs `code`"),
    (
        "spec.workflow[2].code = print(1)",
        "spec.workflow[2].code",
        "`code` is for python steps, not shell",
    ),
    (
        "spec.workflow[4].retry = {maxAttempts: 2}",
        "spec.workflow[4].retry",
        "a routing step (no tool) takes no retry",
    ),
    (
        "spec.workflow[4].next = [{step: start}]",
        "spec.workflow[4].next[0].step",
        "this edge closes a cycle (start -> fetch_all -> store -> end -> start)",
    ),
    (
        "spec.workflow[0].next = [{step: store}]",
        "spec.workflow[1].step",
        "step 'fetch_all' is not reachable from 'start'",
    ),
    (
        "spec.workflow[2].args.command = 'echo {{ oops'",
        "spec.workflow[2].args.command",
        "template syntax error",
    ),
    (
        "spec.workflow[1].next[0].when = '{{ a ==  }}'",
        "spec.workflow[1].next[0].when",
        "template syntax error",
    ),
    (
        "spec.workflow[1].loop.in = cities",
        "spec.workflow[1].loop.in",
        "expected a list or a template",
    ),
    (
        "spec.workflow[1].loop.mode = sometimes",
        "spec.workflow[1].loop.mode",
        "Input should be 'sequential' or 'parallel'",
    ),
    (
        "spec.workflow[1].loop.maxInFlight = 0",
        "spec.workflow[1].loop.maxInFlight",
        "greater than or equal to 1",
    ),
    (
        "spec.workflow[1].loop.iterator = 2city",
        "spec.workflow[1].loop.iterator",
        "does not match the pattern",
    ),
    (
        "spec.workflow[1].retry.backoff = linear",
        "spec.workflow[1].retry.backoff",
        "Input should be 'fixed' or 'exponential'",
    ),
    (
        "spec.workflow[1].retry.initialDelay = soon",
        "spec.workflow[1].retry.initialDelay",
        "'soon' is not a duration",
    ),
    ("spec.workflow[1].timeout = 5x", "spec.workflow[1].timeout", "'5x' is not a duration"),
    (
        "spec.workflow[1].next[0].then = null",
        "spec.workflow[1].next[0]",
        "`when` and `then` go together",
    ),
    (
        "spec.workflow[1].next[0].step = store",
        "spec.workflow[1].next[0]",
        "a next entry takes exactly one of",
    ),
    ("spec.workflow[1].nxt = []", "spec.workflow[1].nxt", "unknown field"),
    ("spec.workflow = []", "spec.workflow", "List should have at least 1 item"),
    ("spec.workload = [1, 2]", "spec.workload", "Input should be a valid dictionary"),
    (
        "spec.workflow[1].retry.when = '{% if %}'",
        "spec.workflow[1].retry.when",
        "template syntax error",
    ),
    ("spec.output = '{{ }}'", "spec.output", "template syntax error"),
    (
        "spec.workflow[2].tool = playbook",
        "spec.workflow[2].args.name",
        "playbook steps need args.name",
    ),
    ("del spec.workflow[2].args.command", "spec.workflow[2].args.command", "shell steps need"),
    (
        "spec.workflow[2].args.env = [A, B]",
        "spec.workflow[2].args.env",
        "expected a valid dictionary, got ['A', 'B']",
    ),
    ("spec.workflow[2].args.command = '  '", "spec.workflow[2].args.command", "not blank"),
    ("del spec.workbook[0].args.url", "spec.workflow[1].args.url", "http steps need args.url"),
    (
        "spec.workbook[0].args.timeout = 0",
        "spec.workbook[0].args.timeout",
        "expected greater than 0, got 0",
    ),
    (
        "spec.workflow[2] = {step: store, tool: duckdb, args: {command: 'select 1', params: 5},"
        " next: [{step: end}]}",
        "spec.workflow[2].args.params",
        "expected a valid list or a valid dictionary, got 5",
    ),
    (
        'spec.workflow[3].code = "result = 1\\nreturn result"',
        "spec.workflow[3].code",
        "Python syntax error: 'return' outside function (line 2)",
    ),
    ("spec.workflow[1].timeout = 0", "spec.workflow[1].timeout", "not a duration above zero"),
    ("spec.timeout = 0s", "spec.timeout", "not a duration above zero"),
    (
        "spec.workflow[1].on_error = continue",
        "spec.workflow[1].on_error",
        "unknown field: did you mean onError?",
    ),
    (
        "spec.workflow[1].loop.max_in_flight = 2",
        "spec.workflow[1].loop.max_in_flight",
        "did you mean maxInFlight?",
    ),
    (
        "spec.workflow[1].retry.max_attempts = 2",
        "spec.workflow[1].retry.max_attempts",
        "did you mean maxAttempts?",
    ),
    ("metadata.name = My_Playbook", "metadata.name", "'My_Playbook' cannot be a playbook name"),
    (
        "spec.workflow[2] = {step: store, tool: playbook, args: {name: ../x}, next: [{step: end}]}",
        "spec.workflow[2].args.name",
        "'../x' cannot be the name of a playbook",
    ),
    ("kind = Workflow", "kind", "expected Playbook, got 'Workflow'"),
    ("apiVersion = argoproj.io/v1alpha1", "apiVersion", "expected noetl.io/v1alpha1"),
]


@pytest.mark.parametrize(("change", "path", "reason"), CASES, ids=[case[0] for case in CASES])
def test_a_broken_playbook_is_rejected_with_the_path_and_why(change, path, reason):
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(broken(change), "broken.yaml")
    messages = {error.path: error.message for error in caught.value.errors}
    assert path in messages, f"expected an error at {path}, got {messages}"
    assert reason in messages[path]


def test_the_good_playbook_is_valid():
    playbook = parse_playbook(copy.deepcopy(GOOD))
    assert playbook.name == "good"
    # the workbook task is folded into the step that uses it
    assert playbook.steps["fetch_all"].tool == "http"
    assert playbook.steps["fetch_all"].args == {"url": "http://example.org/{{ city }}"}


def test_every_error_is_reported_at_once():
    document = broken("spec.workflow[2].tool = bash")
    document["spec"]["workflow"][3]["next"] = [{"step": "ghost"}]
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(document)
    assert [e.path for e in caught.value.errors] == [
        "spec.workflow[2].tool",
        "spec.workflow[3].next[0].step",
    ]


def test_the_bare_form_reports_paths_as_written():
    bare = {"kind": "Playbook", "name": "bare", **copy.deepcopy(GOOD["spec"])}
    bare["workflow"][2]["tool"] = "bash"
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(bare)
    assert [e.path for e in caught.value.errors] == ["workflow[2].tool"]


def test_the_bare_and_resource_forms_are_the_same_playbook():
    bare = {"kind": "Playbook", "name": "good", **copy.deepcopy(GOOD["spec"])}
    assert parse_playbook(bare).spec == parse_playbook(copy.deepcopy(GOOD)).spec


def test_a_resource_with_fields_outside_spec_is_rejected():
    document = copy.deepcopy(GOOD)
    document["workflow"] = []
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(document)
    assert caught.value.errors[0].path == "workflow"


def test_numbers_are_durations_in_seconds():
    playbook = parse_playbook(broken("spec.workflow[1].timeout = 90"))
    assert playbook.steps["fetch_all"].timeout == "90s"


def test_yaml_errors_give_the_line(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("kind: Playbook\nworkflow:\n  - step: start\n   next: oops\n")
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(file)
    assert "not valid YAML: line 4" in str(caught.value)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PlaybookInvalid, match="cannot read file"):
        load_playbook(tmp_path / "nope.yaml")


def test_errors_of_the_models_do_not_hide_the_rules_of_the_whole():
    document = broken("spec.workflow[1].retry.maxAttempts = 0")
    document["spec"]["workflow"][2]["next"] = [{"step": "ghost"}]
    document["spec"]["workflow"][3]["timeout"] = "soon"
    document["spec"]["workflow"][3]["code"] = "def main(:\n    pass"
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(document)
    assert sorted(e.path for e in caught.value.errors) == [
        "spec.workflow[1].retry.maxAttempts",
        "spec.workflow[2].next[0].step",
        "spec.workflow[3].code",
        "spec.workflow[3].timeout",
    ]


def test_a_step_with_a_bad_name_still_has_its_edges_checked_and_nothing_echoes():
    document = broken("spec.workflow[2].step = Store")
    document["spec"]["workflow"][2]["next"] = [{"step": "ghost"}]
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(document)
    paths = [e.path for e in caught.value.errors]
    assert "spec.workflow[2].step" in paths  # the pattern, not reachability as well
    assert "spec.workflow[2].next[0].step" in paths
    assert "spec.workflow[1].next[0].then[0].step" in paths  # `store` is gone by that name
    assert len(paths) == 3


def test_an_item_that_is_not_a_mapping_is_reported_once():
    document = copy.deepcopy(GOOD)
    document["spec"]["workflow"].append(7)
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(document)
    assert [e.path for e in caught.value.errors] == ["spec.workflow[5]"]


def test_templated_args_are_checked_once_rendered_not_before():
    document = broken("spec.workflow[2].args = {command: '{{ workload.cmd }}', env: '{{ x }}'}")
    parse_playbook(document)


def _write(directory, name: str, child: str | None) -> None:
    step = (
        f"  - step: call\n    tool: playbook\n    args: {{name: {child}}}\n"
        if child
        else "  - step: call\n    tool: shell\n    args: {command: 'true'}\n"
    )
    (directory / f"{name}.yaml").write_text(
        f"kind: Playbook\nname: {name}\nworkflow:\n  - step: start\n"
        f"    next: [{{step: call}}]\n{step}"
    )


def test_validation_with_a_resolver_finds_missing_children_and_cycles(tmp_path):
    from noetl.local.resolver import playbook_directory_resolver

    _write(tmp_path, "a", "b")
    _write(tmp_path, "b", "c")
    _write(tmp_path, "c", "a")
    _write(tmp_path, "lonely", "ghost")
    _write(tmp_path, "self", "self")
    _write(tmp_path, "fine", "leaf")
    _write(tmp_path, "leaf", None)
    resolve = playbook_directory_resolver(tmp_path)
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(tmp_path / "a.yaml", resolve)
    assert [str(e) for e in caught.value.errors] == [
        "workflow[1].args.name: the playbook calls itself (a -> b -> c -> a): it would nest"
        " until the depth limit stops it; repeat work with loop or retry"
    ]
    with pytest.raises(PlaybookInvalid, match="self -> self"):
        load_playbook(tmp_path / "self.yaml", resolve)
    with pytest.raises(PlaybookInvalid) as caught:
        load_playbook(tmp_path / "lonely.yaml", resolve)
    assert caught.value.errors[0].message == f"no playbook named 'ghost' in {tmp_path}"
    assert load_playbook(tmp_path / "fine.yaml", resolve).name == "fine"
    assert load_playbook(tmp_path / "a.yaml").name == "a"  # without a resolver: not looked at


def test_a_bad_next_entry_or_tool_gives_its_own_error_and_no_echo():
    document = copy.deepcopy(GOOD)
    document["spec"]["workflow"][1]["next"][0]["step"] = "store"  # step and when/then at once
    document["spec"]["workflow"][2]["tool"] = 5
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(document)
    assert [e.path for e in caught.value.errors] == [
        "spec.workflow[1].next[0]",
        "spec.workflow[2].tool",
    ]  # `store` is still reached, and not taken for a routing step with args


@pytest.mark.parametrize(
    ("pod", "path", "words"),
    [
        ({"resources": {"limit": {"memory": "1Gi"}}}, "pod.resources.limit", "unknown field"),
        ({"resources": {"limits": {"memory": "lots"}}}, "limits.memory", "not a quantity"),
        ({"tolerations": [{"key": "gpu", "efect": "NoSchedule"}]}, "tolerations[0].efect", ""),
        ({"tolerations": [{"key": "gpu", "effect": "Never"}]}, "tolerations[0].effect", ""),
        ({"tolerations": [{"operator": "Equal", "value": "x"}]}, "tolerations[0]", "Exists"),
    ],
)
def test_pod_settings_have_the_kubernetes_shapes(pod: dict[str, Any], path: str, words: str):
    document = copy.deepcopy(GOOD)
    document["spec"]["workflow"][2]["pod"] = pod
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(document)
    (error,) = caught.value.errors
    assert error.path.startswith("spec.workflow[2].pod.")
    assert error.path.endswith(path) and words in error.message, error
