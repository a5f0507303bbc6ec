"""Both shells: step names and loop iterators that templates could not reach are refused, with
the path of the field."""

from __future__ import annotations

import pytest

from noetl.playbook import PlaybookInvalid, parse_playbook


def workflow(*steps: dict) -> dict:
    return {
        "kind": "Playbook",
        "name": "p",
        "workflow": [{"step": "start", "next": [{"step": s["step"]} for s in steps]}, *steps],
    }


def errors_of(document: dict) -> list[str]:
    with pytest.raises(PlaybookInvalid) as caught:
        parse_playbook(document)
    return [str(error) for error in caught.value.errors]


@pytest.mark.parametrize(
    "name",
    ["workload", "execution", "attempt", "loop", "error", "result", "range", "none", "self"],
)
def test_a_reserved_step_name_is_refused(name):
    [error] = errors_of(workflow({"step": name, "tool": "shell", "args": {"command": "x"}}))
    assert error.startswith(f"workflow[1].step: {name!r} is reserved in templates (reserved: ")


@pytest.mark.parametrize("name", ["workload", "loop", "execution", "namespace", "true"])
def test_a_reserved_loop_iterator_is_refused(name):
    step = {"step": "each", "tool": "shell", "args": {"command": "x"}}
    step["loop"] = {"in": [1], "iterator": name}
    [error] = errors_of(workflow(step))
    assert error.startswith(f"workflow[1].loop.iterator: {name!r} is reserved in templates")


def test_two_steps_with_one_name_in_templates_are_refused():
    errors = errors_of(
        workflow(
            {"step": "fetch-data", "tool": "shell", "args": {"command": "x"}},
            {"step": "fetch_data", "tool": "shell", "args": {"command": "x"}},
        )
    )
    assert errors == [
        "workflow[2].step: 'fetch_data' and 'fetch-data' are both 'fetch_data' in templates"
    ]


def test_ordinary_names_pass():
    playbook = parse_playbook(
        workflow(
            {"step": "fetch-data", "tool": "shell", "args": {"command": "x"}},
            {
                "step": "items",
                "tool": "shell",
                "args": {"command": "{{ row }}"},
                "loop": {"in": [1], "iterator": "row"},
            },
        )
    )
    assert playbook.template_names == {
        "start": "start",
        "fetch_data": "fetch-data",
        "items": "items",
    }
