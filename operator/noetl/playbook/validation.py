"""Whole-document rules a playbook must keep, beyond what the models check field by field.

`validate_spec` returns every problem at once, each with the path of the field (relative to the
spec) and why. The rules: unique step and task names; a `start` step; every `next` target exists;
no cycles (every step runs at most once per execution); every step reachable from `start`;
workbook references resolve; tools are known and fit the fields given; templates compile.
`finally` steps keep the same rules as a small graph of their own: their names are unique across
both sections, they route only among themselves, and they begin at the steps nothing routes to.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from noetl.playbook.errors import PlaybookError, join_path
from noetl.playbook.models import TOOLS, PlaybookSpec, Step
from noetl.templating import check_syntax, is_template, template_strings

START = "start"
WORKFLOW = "workflow"
FINALLY = "finally"


def validate_spec(spec: PlaybookSpec) -> list[PlaybookError]:
    errors: list[PlaybookError] = []
    sections = {WORKFLOW: spec.workflow, FINALLY: spec.finally_}
    seen: dict[str, str] = {}  # step name -> path of its first definition, across sections
    errors += _check_workbook(spec)
    tasks = {task.name: task for task in spec.workbook}
    for section, steps in sections.items():
        index_of = _step_indexes(section, steps, seen, errors)
        for i, step in enumerate(steps):
            errors += _check_step(step, join_path(section, i), tasks)
            errors += _check_targets(section, step, i, index_of)
        if section == FINALLY:
            errors += _check_graph(section, steps, index_of, roots=list(index_of))
        elif START not in index_of:
            errors.append(
                PlaybookError(WORKFLOW, f"no step named {START!r}: the workflow begins there")
            )
        else:
            errors += _check_graph(section, steps, index_of, roots=[START])
    errors += _check_templates(spec.output, "output")
    return errors


def finally_roots(steps: list[Step]) -> list[str]:
    """The finally steps that begin when the workflow ends: those no finally step routes to."""
    targets = {target for step in steps for entry in step.next for target in entry.targets()}
    return [step.step for step in steps if step.step not in targets]


def _step_indexes(
    section: str, steps: list[Step], seen: dict[str, str], errors: list[PlaybookError]
) -> dict[str, int]:
    index_of: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.step in seen:
            errors.append(
                PlaybookError(
                    join_path(section, i, "step"),
                    f"duplicate step name {step.step!r} (first at {seen[step.step]})",
                )
            )
        else:
            index_of[step.step] = i
            seen[step.step] = join_path(section, i)
    return index_of


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
    if tool == "approval":
        errors += _check_approval(step, path)
    if tool == "container":
        errors += _check_container(step.args, join_path(path, "args"))
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


def _check_approval(step: Step, path: str) -> list[PlaybookError]:
    """An approval waits once for a person: no items to loop over, nothing to retry."""
    errors = [
        PlaybookError(join_path(path, field), f"an approval step takes no {field}")
        for field in ("loop", "retry")
        if getattr(step, field) is not None
    ]
    errors += [
        PlaybookError(join_path(path, "args", key), "unknown approval argument (known: message)")
        for key in step.args
        if key != "message"
    ]
    return errors


CONTAINER_ARGS = ("image", "command", "args", "env", "workingDir", "secretRef")


def _check_container(args: dict[str, Any], path: str) -> list[PlaybookError]:
    """A container step's arguments; a template may stand for any of them (checked once run)."""
    errors = [
        PlaybookError(
            join_path(path, key),
            f"unknown container argument (known: {', '.join(CONTAINER_ARGS)})",
        )
        for key in args
        if key not in CONTAINER_ARGS
    ]
    if not isinstance(args.get("image"), str) or not args["image"]:
        errors.append(
            PlaybookError(join_path(path, "image"), "a container step needs the image to run")
        )
    for key in ("command", "args"):
        value = args.get(key)
        is_list = isinstance(value, list) and all(isinstance(item, str) for item in value)
        if value is not None and not is_list and not _is_template_text(value):
            errors.append(PlaybookError(join_path(path, key), "expected a list of strings"))
    env = args.get("env")
    if env is not None and not isinstance(env, dict) and not _is_template_text(env):
        errors.append(
            PlaybookError(join_path(path, "env"), "expected a mapping of names to values")
        )
    return errors


def _is_template_text(value: Any) -> bool:
    return isinstance(value, str) and is_template(value)


def _target_paths(step: Step) -> Iterator[tuple[tuple[str | int, ...], str]]:
    for j, entry in enumerate(step.next):
        for where, target in entry.edges():
            yield ("next", j, *where), target


def _check_targets(
    section: str, step: Step, i: int, index_of: dict[str, int]
) -> list[PlaybookError]:
    # Each section is a graph of its own: a workflow step never routes into `finally`.
    where_else = " (finally steps route only to finally steps)" if section == FINALLY else ""
    return [
        PlaybookError(
            join_path(section, i, *where), f"no step named {target!r} in {section}{where_else}"
        )
        for where, target in _target_paths(step)
        if target not in index_of
    ]


def _check_graph(
    section: str, steps: list[Step], index_of: dict[str, int], roots: list[str]
) -> list[PlaybookError]:
    """Cycles (each reported once, at the edge that closes it) and steps the roots never reach."""
    errors: list[PlaybookError] = []
    edges = {
        step.step: [(where, t) for where, t in _target_paths(step) if t in index_of]
        for step in steps
    }
    state: dict[str, str] = {}  # "open" while on the DFS stack, "done" after
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, Iterator[tuple[tuple[str | int, ...], str]]]] = [
            (root, iter(edges[root]))
        ]
        state[root] = "open"
        while stack:
            name, pending = stack[-1]
            for where, target in pending:
                if state.get(target) == "open":
                    names = [entry[0] for entry in stack]
                    cycle = names[names.index(target) :]
                    errors.append(
                        PlaybookError(
                            join_path(section, index_of[name], *where),
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
    for i, step in enumerate(steps):
        if step.step not in state and index_of.get(step.step) == i:
            errors.append(
                PlaybookError(
                    join_path(section, i, "step"),
                    f"step {step.step!r} is not reachable from {START!r}",
                )
            )
    return errors


def _check_templates(value: Any, path: str) -> list[PlaybookError]:
    errors = []
    for where, text in template_strings(value):
        problem = check_syntax(text)
        if problem:
            errors.append(PlaybookError(join_path(path, *where), f"{problem} in {text!r}"))
    return errors
