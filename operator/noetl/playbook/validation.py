"""Whole-document rules a playbook must keep, beyond what the models check field by field.

`validate_spec` returns every problem at once, each with the path of the field (relative to the
spec) and why. The rules: unique step and task names; step names and loop iterators not
reserved in templates, and no two steps with the same name in templates (`a-b` and `a_b`); a
`start` step; every `next` target exists; no cycles (every step runs at most once per execution);
every step reachable from `start`; workbook references resolve; tools are known and fit the
fields given; templates compile (and those that read no data render within the limits).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from noetl.playbook.errors import PlaybookError, join_path
from noetl.playbook.models import TOOLS, PlaybookSpec, Step
from noetl.templating import (
    RESERVED_NAMES,
    check_template,
    is_template,
    template_name,
    template_strings,
)

START = "start"


def validate_spec(spec: PlaybookSpec) -> list[PlaybookError]:
    errors: list[PlaybookError] = []
    index_of = _step_indexes(spec, errors)
    errors += _check_template_names(spec)
    errors += _check_workbook(spec)
    tasks = {task.name: task for task in spec.workbook}
    for i, step in enumerate(spec.workflow):
        errors += _check_step(step, join_path("workflow", i), tasks)
        errors += _check_targets(step, i, index_of)
    if START not in index_of:
        errors.append(
            PlaybookError("workflow", f"no step named {START!r}: the workflow begins there")
        )
    else:
        errors += _check_graph(spec, index_of)
    errors += _check_templates(spec.output, "output")
    return errors


def _step_indexes(spec: PlaybookSpec, errors: list[PlaybookError]) -> dict[str, int]:
    index_of: dict[str, int] = {}
    for i, step in enumerate(spec.workflow):
        if step.step in index_of:
            errors.append(
                PlaybookError(
                    join_path("workflow", i, "step"),
                    f"duplicate step name {step.step!r} (first at workflow[{index_of[step.step]}])",
                )
            )
        else:
            index_of[step.step] = i
    return index_of


def _check_template_names(spec: PlaybookSpec) -> list[PlaybookError]:
    """Step names and loop iterators templates can reach: none reserved, no two alike."""
    errors = []
    reserved = ", ".join(sorted(RESERVED_NAMES, key=str.lower))
    taken: dict[str, str] = {}
    for i, step in enumerate(spec.workflow):
        name = template_name(step.step)
        if name in RESERVED_NAMES:
            errors.append(
                PlaybookError(
                    join_path("workflow", i, "step"),
                    f"{step.step!r} is reserved in templates (reserved: {reserved})",
                )
            )
        elif taken.setdefault(name, step.step) != step.step:
            errors.append(
                PlaybookError(
                    join_path("workflow", i, "step"),
                    f"{step.step!r} and {taken[name]!r} are both {name!r} in templates",
                )
            )
        if step.loop is not None and step.loop.iterator in RESERVED_NAMES:
            errors.append(
                PlaybookError(
                    join_path("workflow", i, "loop", "iterator"),
                    f"{step.loop.iterator!r} is reserved in templates (reserved: {reserved})",
                )
            )
    return errors


def _check_workbook(spec: PlaybookSpec) -> list[PlaybookError]:
    errors, seen = [], set()
    for i, task in enumerate(spec.workbook):
        path = join_path("workbook", i)
        if task.name in seen:
            errors.append(
                PlaybookError(join_path(path, "name"), f"duplicate task name {task.name!r}")
            )
        seen.add(task.name)
        errors += _check_tool(task.tool, task.code, path)
        errors += _check_templates(task.args, join_path(path, "args"))
    return errors


def _check_tool(tool: str | None, code: str | None, path: str) -> list[PlaybookError]:
    if tool is None:
        return []
    if tool not in TOOLS:
        return [
            PlaybookError(
                join_path(path, "tool"), f"unknown tool {tool!r} (known: {', '.join(TOOLS)})"
            )
        ]
    if tool == "python" and not code:
        return [PlaybookError(join_path(path, "code"), "a python step needs `code` (its source)")]
    if tool != "python" and code is not None:
        return [PlaybookError(join_path(path, "code"), f"`code` is for python steps, not {tool}")]
    return []


def _check_step(step: Step, path: str, tasks: dict[str, Any]) -> list[PlaybookError]:
    errors: list[PlaybookError] = []
    tool = step.tool
    if step.task is not None:
        if step.tool is not None:
            errors.append(
                PlaybookError(join_path(path, "task"), "a step takes `task` or `tool`, not both")
            )
        elif step.task not in tasks:
            known = ", ".join(sorted(tasks)) or "none"
            errors.append(
                PlaybookError(
                    join_path(path, "task"),
                    f"no workbook task named {step.task!r} (known: {known})",
                )
            )
        else:
            tool = tasks[step.task].tool
    if step.task is None:
        errors += _check_tool(step.tool, step.code, path)
    if tool is None and step.task is None:
        for field in ("loop", "retry", "timeout", "code"):
            if getattr(step, field) is not None:
                errors.append(
                    PlaybookError(
                        join_path(path, field), f"a routing step (no tool) takes no {field}"
                    )
                )
        if step.args:
            errors.append(
                PlaybookError(join_path(path, "args"), "a routing step (no tool) takes no args")
            )
    if tool == "playbook" and not isinstance(step.args.get("name"), str):
        errors.append(
            PlaybookError(
                join_path(path, "args", "name"),
                "a playbook step needs args.name, the playbook to run",
            )
        )
    errors += _check_templates(step.args, join_path(path, "args"))
    if step.loop is not None:
        items = step.loop.in_
        if isinstance(items, str) and not is_template(items):
            errors.append(
                PlaybookError(
                    join_path(path, "loop", "in"),
                    "expected a list or a template that renders to one",
                )
            )
        errors += _check_templates(items, join_path(path, "loop", "in"))
    if step.retry is not None and step.retry.when is not None:
        errors += _check_templates(step.retry.when, join_path(path, "retry", "when"))
    for j, entry in enumerate(step.next):
        if entry.when is not None:
            errors += _check_templates(entry.when, join_path(path, "next", j, "when"))
    return errors


def _target_paths(step: Step) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for j, entry in enumerate(step.next):
        if entry.step is not None:
            yield ("next", j, "step"), entry.step
        for key, targets in (("then", entry.then), ("else", entry.else_)):
            for k, target in enumerate(targets or []):
                yield ("next", j, key, k, "step"), target.step


def _check_targets(step: Step, i: int, index_of: dict[str, int]) -> list[PlaybookError]:
    return [
        PlaybookError(join_path("workflow", i, *where), f"no step named {target!r}")
        for where, target in _target_paths(step)
        if target not in index_of
    ]


def _check_graph(spec: PlaybookSpec, index_of: dict[str, int]) -> list[PlaybookError]:
    """Cycles (each reported once, at the edge that closes it) and steps `start` never reaches."""
    errors: list[PlaybookError] = []
    edges = {
        step.step: [(where, t) for where, t in _target_paths(step) if t in index_of]
        for step in spec.workflow
    }
    state: dict[str, str] = {}  # "open" while on the DFS stack, "done" after
    stack: list[tuple[str, Iterator[tuple[tuple[str | int, ...], str]]]] = [
        (START, iter(edges[START]))
    ]
    state[START] = "open"
    while stack:
        name, pending = stack[-1]
        for where, target in pending:
            if state.get(target) == "open":
                cycle = [entry[0] for entry in stack][[entry[0] for entry in stack].index(target) :]
                errors.append(
                    PlaybookError(
                        join_path("workflow", index_of[name], *where),
                        "this edge closes a cycle (" + " -> ".join([*cycle, target]) + "); "
                        "use loop or retry to repeat work",
                    )
                )
            elif target not in state:
                state[target] = "open"
                stack.append((target, iter(edges[target])))
                break
        else:
            state[name] = "done"
            stack.pop()
    for i, step in enumerate(spec.workflow):
        if step.step not in state and index_of.get(step.step) == i:
            errors.append(
                PlaybookError(
                    join_path("workflow", i, "step"),
                    f"step {step.step!r} is not reachable from {START!r}",
                )
            )
    return errors


def _check_templates(value: Any, path: str) -> list[PlaybookError]:
    errors = []
    for where, text in template_strings(value):
        problem = check_template(text)
        if problem:
            errors.append(PlaybookError(join_path(path, *where), f"{problem} in {text!r}"))
    return errors
