"""Whole-document rules a playbook must keep, beyond what the models check field by field.

`validate_spec` returns every problem at once, each with the path of the field (relative to the
spec) and why. It runs on what `noetl.playbook.reading.parse_spec` could read, so the models'
errors do not hide these. The rules: unique step and task names; step names and loop iterators
not reserved in templates, and no two steps with the same name in templates (`a-b` and `a_b`);
a `start` step; every `next` target exists; no cycles (every step runs at most once per
execution); every step reachable from `start`; workbook references resolve; tools are known, fit
the fields given and get the args they need (`noetl.playbook.tools`); Python code compiles;
templates compile (and those that read no data render within the limits); names are ones a
cluster accepts. `check_children` follows `tool: playbook` steps through a resolver: children
that cannot be found, and playbooks that call themselves. `finally` steps keep the same rules
as a small graph of their own: their names are unique across both sections, they route only
among themselves, and they begin at the steps nothing routes to.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from noetl.playbook.errors import PlaybookError, PlaybookInvalid, join_path
from noetl.playbook.models import (
    DNS_SUBDOMAIN_MAX,
    DNS_SUBDOMAIN_PATTERN,
    TOOLS,
    PlaybookSpec,
    Step,
    Task,
)
from noetl.playbook.tools import check_args
from noetl.templating import (
    RESERVED_NAMES,
    check_template,
    is_template,
    template_name,
    template_strings,
)

if TYPE_CHECKING:
    from noetl.playbook.loader import Playbook

START = "start"
WORKFLOW = "workflow"
FINALLY = "finally"
_DNS_SUBDOMAIN = re.compile(DNS_SUBDOMAIN_PATTERN)


def check_name(name: str, path: str, what: str = "a playbook name") -> list[PlaybookError]:
    """A name a Kubernetes API server accepts as an object's name (a DNS-1123 subdomain)."""
    if len(name) <= DNS_SUBDOMAIN_MAX and _DNS_SUBDOMAIN.match(name):
        return []
    return [
        PlaybookError(
            path,
            f"{name!r} cannot be {what}: use lowercase letters, digits, '-' and '.', starting "
            f"and ending with a letter or digit, at most {DNS_SUBDOMAIN_MAX} characters",
        )
    ]


def drop_shadowed(
    errors: list[PlaybookError], reported: list[PlaybookError]
) -> list[PlaybookError]:
    """`errors` without those about a field already `reported` (or inside one): no echoes."""
    places = {e.path for e in reported}

    def shadowed(path: str) -> bool:
        return any(path == place or path.startswith((place + ".", place + "[")) for place in places)

    return [error for error in errors if not shadowed(error.path)]


def validate_spec(spec: PlaybookSpec) -> list[PlaybookError]:
    errors: list[PlaybookError] = []
    sections = {WORKFLOW: spec.workflow, FINALLY: spec.finally_}
    seen: dict[str, str] = {}  # step name -> path of its first definition, across sections
    errors += _check_template_names(sections)
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


def _check_template_names(sections: dict[str, list[Step]]) -> list[PlaybookError]:
    """Step names and loop iterators templates can reach: none reserved, no two alike (across
    the workflow and `finally`)."""
    errors = []
    reserved = ", ".join(sorted(RESERVED_NAMES, key=str.lower))
    taken: dict[str, str] = {}
    steps = [
        (join_path(section, i), step)
        for section in sections
        for i, step in enumerate(sections[section])
    ]
    for path, step in steps:
        name = template_name(step.step)
        if name in RESERVED_NAMES:
            errors.append(
                PlaybookError(
                    join_path(path, "step"),
                    f"{step.step!r} is reserved in templates (reserved: {reserved})",
                )
            )
        elif taken.setdefault(name, step.step) != step.step:
            errors.append(
                PlaybookError(
                    join_path(path, "step"),
                    f"{step.step!r} and {taken[name]!r} are both {name!r} in templates",
                )
            )
        if step.loop is not None and step.loop.iterator in RESERVED_NAMES:
            errors.append(
                PlaybookError(
                    join_path(path, "loop", "iterator"),
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
        if task.tool in TOOLS:
            errors += [
                problem
                for problem in check_args(task.tool, task.args, join_path(path, "args"), False)
                if not problem.message.startswith(f"{task.tool} steps need")
            ]  # a step that uses the task may give what the task leaves out
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
    return _check_python(code, join_path(path, "code")) if code is not None else []


def _check_python(code: str, path: str) -> list[PlaybookError]:
    try:
        compile(code, "<code>", "exec", dont_inherit=True)
    except SyntaxError as error:
        where = f" (line {error.lineno})" if error.lineno else ""
        return [PlaybookError(path, f"Python syntax error: {error.msg}{where}")]
    except ValueError as error:  # e.g. a NUL byte in the source
        return [PlaybookError(path, f"not Python source: {error}")]
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
    if tool in TOOLS:
        errors += _check_step_args(tool, step, tasks.get(step.task or ""), path)
    if tool == "approval":
        errors += [
            PlaybookError(join_path(path, field), f"an approval waits once: it takes no {field}")
            for field in ("loop", "retry")
            if getattr(step, field) is not None
        ]
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


def _check_step_args(tool: str, step: Step, task: Task | None, path: str) -> list[PlaybookError]:
    """The step's args (laid over its task's) as its tool wants them; the task's own are its own."""
    args_path = join_path(path, "args")
    from_task = set(task.args) - set(step.args) if task is not None else set()
    args = {**task.args, **step.args} if task is not None else step.args
    errors = [
        problem
        for problem in check_args(tool, args, args_path, rendered=False)
        if problem.path not in {join_path(args_path, key) for key in from_task}
    ]
    name = args.get("name")
    if tool == "playbook" and isinstance(name, str) and not is_template(name):
        errors += check_name(name, join_path(args_path, "name"), "the name of a playbook")
    return errors


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
        problem = check_template(text)
        if problem:
            errors.append(PlaybookError(join_path(path, *where), f"{problem} in {text!r}"))
    return errors


Resolver = Callable[[str], "Playbook"]
"""Finds a child playbook by name; raises LookupError (or PlaybookInvalid) when it cannot."""


def check_children(playbook: Playbook, resolve: Resolver) -> list[PlaybookError]:
    """Children that cannot be found, and children through which the playbook calls itself.

    Paths are relative to the spec. A child that is found but invalid is reported by name only:
    its own validation says why.
    """
    errors = []
    sections = {WORKFLOW: playbook.spec.workflow, FINALLY: playbook.spec.finally_}
    steps = [
        (section, i, step) for section, listed in sections.items() for i, step in enumerate(listed)
    ]
    for section, i, step in steps:
        child_name = _child_name(playbook.steps[step.step])
        if child_name is None:
            continue
        path = join_path(section, i, "args", "name")
        try:
            child = resolve(child_name)
        except LookupError as missing:
            errors.append(PlaybookError(path, str(missing).strip("'\"")))
            continue
        except PlaybookInvalid:
            errors.append(PlaybookError(path, f"playbook {child_name!r} is not valid"))
            continue
        cycle = _cycle_back(child, playbook.name, resolve, [playbook.name, child.name])
        if cycle is not None:
            errors.append(
                PlaybookError(
                    path,
                    "the playbook calls itself (" + " -> ".join(cycle) + "): it would nest "
                    "until the depth limit stops it; repeat work with loop or retry",
                )
            )
    return errors


def _child_name(step: Step) -> str | None:
    name = step.args.get("name") if step.tool == "playbook" else None
    return name if isinstance(name, str) and not is_template(name) else None


def _cycle_back(
    playbook: Playbook, root: str, resolve: Resolver, chain: list[str], seen: set[str] | None = None
) -> list[str] | None:
    """The chain of playbook names from `root` back to itself through `playbook`, if any."""
    if playbook.name == root:
        return chain
    seen = set() if seen is None else seen
    if playbook.name in seen:
        return None  # explored already, from another path
    seen.add(playbook.name)
    for step in playbook.steps.values():
        name = _child_name(step)
        if name is None:
            continue
        try:
            child = resolve(name)
        except (LookupError, PlaybookInvalid):
            continue  # reported when that playbook is validated itself
        found = _cycle_back(child, root, resolve, [*chain, child.name], seen)
        if found is not None:
            return found
    return None
