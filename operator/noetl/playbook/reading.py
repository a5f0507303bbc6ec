"""Reading a spec leniently: the models' errors in an author's words, and what could be read.

`parse_spec` returns the models' errors and, with them, a spec made of what could be read: a step
with a bad field is kept without that field (its name, tool and the targets of its `next` kept
in any case), so that the whole-document rules (`noetl.playbook.validation`) still run and one
report holds every problem. Fields are read by their playbook spellings only (`onError`); a
Python-style spelling (`on_error`) is refused with the right one, since a cluster would drop it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from noetl.playbook.errors import PlaybookError, join_path
from noetl.playbook.models import (
    DURATION_PATTERN,
    POSITIVE_DURATION_PATTERN,
    ExecutionSpec,
    NextEntry,
    PlaybookSpec,
    Step,
    Target,
    Task,
)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models a field's type names, inside lists and optionals too."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for inner in getattr(annotation, "__args__", ()):
        yield from _models_in(inner)


def _playbook_spellings() -> dict[str, str]:
    """Python-style names of fields (`on_error`) -> how a playbook spells them (`onError`)."""
    spellings: dict[str, str] = {}
    pending: list[type[BaseModel]] = [PlaybookSpec, ExecutionSpec]
    while pending:
        model = pending.pop()
        for name, field in model.model_fields.items():
            if field.alias and field.alias != name:
                spellings[name] = field.alias
            pending += _models_in(field.annotation)
    return spellings


_SPELLINGS = _playbook_spellings()


def pydantic_errors(error: ValidationError, prefix: str) -> list[PlaybookError]:
    """Turn pydantic's errors into path + message, in the words a playbook author needs."""
    result = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
            spelling = _SPELLINGS.get(str(item["loc"][-1]))
            if spelling is not None:
                message += f": did you mean {spelling}? (a cluster drops fields it does not know)"
        elif item["type"] == "string_pattern_mismatch":
            pattern = (item.get("ctx") or {}).get("pattern", "")
            message = f"{item['input']!r} does not match the pattern {pattern}"
            if pattern == DURATION_PATTERN:
                message = f"{item['input']!r} is not a duration (write e.g. 500ms, 30s, 5m or 1h)"
            elif pattern == POSITIVE_DURATION_PATTERN:
                message = f"{item['input']!r} is not a duration above zero (e.g. 500ms, 30s, 5m)"
        result.append(PlaybookError(join_path(prefix, *item["loc"]), message))
    return result


def parse_spec(body: Any) -> tuple[PlaybookSpec | None, list[PlaybookError]]:
    """The spec and the models' errors; with errors, a spec of what could be read (or None)."""
    try:
        return PlaybookSpec.model_validate(body), []
    except ValidationError as invalid:
        errors = pydantic_errors(invalid, "")
    if not isinstance(body, dict):
        return None, errors
    bad_fields = {path for path in (e.path.partition("[")[0] for e in errors) if "." not in path}
    readable = {key: value for key, value in body.items() if key not in bad_fields}
    for key, model in (("workflow", Step), ("finally", Step), ("workbook", Task)):
        items = body.get(key)
        if isinstance(items, list) and key not in {e.path for e in errors}:
            readable[key] = [
                _readable_item(model, item, join_path(key, i), errors)
                for i, item in enumerate(items)
            ]
    try:
        return PlaybookSpec.model_validate(readable), errors
    except ValidationError:
        return None, errors


def _readable_item(
    model: type[Step] | type[Task], item: Any, path: str, errors: list[PlaybookError]
) -> Step | Task:
    """A step or task without its bad fields, keeping what the graph needs.

    Its name and tool stay even when bad (placeholders when they are not text), so that edges to
    it resolve and it is not taken for a routing step; a `next` entry that is bad still leads to
    the steps it names. What is wrong is reported already; the checks that follow skip it.
    """
    raw = item if isinstance(item, dict) else {}
    bad = {
        e.path[len(path) + 1 :].partition(".")[0].partition("[")[0]
        for e in errors
        if e.path.startswith(path + ".")
    }
    kept = {key: value for key, value in raw.items() if key not in bad}
    identity = [
        key
        for key in ("step", "name", "tool")
        if key in model.model_fields
        and (key in bad or (model.model_fields[key].is_required() and key not in kept))
    ]
    placeholders = {"step": "placeholder", "name": "placeholder", "tool": "shell"}
    try:
        readable = model.model_validate({**kept, **{key: placeholders[key] for key in identity}})
    except ValidationError:  # fields that are wrong only together: keep the identity alone
        readable = model.model_validate({key: placeholders[key] for key in identity})
    restored: dict[str, Any] = {}
    for key in identity:
        value = raw.get(key)
        restored[key] = value if isinstance(value, str) else ("" if key == "tool" else path)
    if isinstance(readable, Step) and "next" in bad and isinstance(raw.get("next"), list):
        restored["next"] = [_readable_entry(entry) for entry in raw["next"]]
    return readable.model_copy(update=restored)


def _readable_entry(entry: Any) -> NextEntry:
    """A `next` entry as read, or, when bad, one that leads to every step it names."""
    try:
        return NextEntry.model_validate(entry)
    except ValidationError:
        pass
    found: dict[str, Any] = entry if isinstance(entry, dict) else {}
    names = [found.get("step")]
    for key in ("then", "else"):
        listed = found.get(key)
        for target in listed if isinstance(listed, list) else []:
            names.append(target.get("step") if isinstance(target, dict) else None)
    targets = [Target.model_construct(step=name) for name in names if isinstance(name, str)]
    return NextEntry.model_construct(step=None, when=None, then=targets, else_=None)
