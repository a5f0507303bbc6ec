"""Sandboxed Jinja2 templates: how step args, conditions and loop lists are rendered.

Every string in a playbook may be a template. A string that is a single expression
(`"{{ fetch.results }}"`) keeps the type of its value (a list stays a list); any other string
renders to a string. Templates run in Jinja2's immutable sandbox with StrictUndefined, so a typo
or a step that has not run yet is an error, not an empty string, and attribute tricks such as
`__class__` or `__globals__` are refused.

Templates read like the data: `workload.items` is the mapping's `items` key when it has one
(a method only when it has none). `{#` is plain text, not a comment, so that a shell command such
as `echo ${#arr[@]}` reaches the shell as written. What a template may build and how much work it
may do is bounded (`noetl.template_limits`).

The render context is any `Mapping` (the engine passes a lazy one, so that rendering a step costs
the same however many steps have finished).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections import ChainMap
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError, TemplateError

from noetl.template_limits import (
    MAX_OUTPUT,
    BoundedSandbox,
    LimitExceeded,
    RenderBudget,
    check_value,
)

_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


class RenderError(Exception):
    """A template failed: says which expression and why (the caller adds the step)."""

    def __init__(self, expression: str, reason: str, where: str = "") -> None:
        self.expression = expression
        self.reason = reason
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}template {expression!r}: {reason}")


def _to_json(value: Any, indent: int | None = None) -> str:
    # Jinja's own tojson escapes <, > and & for HTML; playbooks build JSON and shell commands.
    return json.dumps(value, indent=indent, sort_keys=indent is not None)


def _b64encode(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str) -> str:
    return base64.b64decode(value).decode()


def _shell_quote(value: Any) -> str:
    # One shell word, whatever the value holds; values that are not text are quoted as JSON.
    return shlex.quote(value if isinstance(value, str) else json.dumps(value))


class PlaybookEnvironment(BoundedSandbox):
    """The bounded sandbox, where a mapping's keys come before its methods."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)


def _make_environment() -> PlaybookEnvironment:
    env = PlaybookEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        # No comment syntax: `{#` is text (bash's `${#arr[@]}`). NUL never occurs in YAML.
        comment_start_string="\x00{#",
        comment_end_string="#}\x00",
    )
    env.add_filters(
        tojson=_to_json,
        fromjson=json.loads,
        b64encode=_b64encode,
        b64decode=_b64decode,
        shquote=_shell_quote,
    )
    return env


ENVIRONMENT = _make_environment()

CONTEXT_NAMES = frozenset({"workload", "execution", "attempt", "loop", "error", "result"})
"""Names the engine puts in render contexts (docs/dsl.md says where each is seen)."""
RESERVED_NAMES = (
    CONTEXT_NAMES
    | set(ENVIRONMENT.globals)
    | {"true", "false", "none", "True", "False", "None"}  # Jinja's constants
    | {"and", "or", "not", "in", "is", "if", "else"}  # Jinja's operators
    | {"self"}  # Jinja's reference to the template itself
)
"""Names a step or a loop iterator may not take: templates could not reach it by that name."""


def template_name(step: str) -> str:
    """The name templates reach a step's result by: `fetch-data` is `fetch_data`."""
    return step.replace("-", "_")


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


@lru_cache(maxsize=4096)
def _compile(source: str) -> Template:
    single = _SINGLE_EXPRESSION.match(source)
    if single and single.group("expr").strip() and "{{" not in single.group("expr"):
        # `{% set %}` keeps the value's type; reading it back beats rendering to text.
        return ENVIRONMENT.from_string("{% set __value__ = (" + single.group("expr") + ") %}")
    return ENVIRONMENT.from_string(source)


def check_template(source: str) -> str | None:
    """What is wrong with a template that can be known before it runs, or None.

    A syntax error; and for a template that reads nothing of the render context (only constants
    and Jinja's globals), any error its rendering raises: `{{ 9 ** 9 ** 8 }}` is refused here,
    within the template limits, rather than when the step runs.
    """
    try:
        _compile(source)
    except TemplateSyntaxError as error:
        return f"template syntax error: {error.message}"
    if referenced_names(source) <= set(ENVIRONMENT.globals):
        try:
            render_string(source, {})
        except RenderError as error:
            return f"template error: {error.reason}"
    return None


def _evaluate(template: Template, context: Mapping[str, Any]) -> Any:
    # shared=True hands the mapping to Jinja as is: no copy of the whole context per render.
    jinja_context = template.new_context(ChainMap(context, ENVIRONMENT.globals), shared=True)  # type: ignore[arg-type]
    parts, length = [], 0
    with RenderBudget():
        for part in template.root_render_func(jinja_context):
            length += len(part)
            if length > MAX_OUTPUT:
                raise LimitExceeded(f"renders to more than {MAX_OUTPUT:,} characters")
            parts.append(part)
    text = "".join(parts)
    if "__value__" not in jinja_context.vars:
        return text
    value = jinja_context.vars["__value__"]
    if isinstance(value, Undefined):
        str(value)  # raises the undefined (or sandbox) error it stands for
    return check_value(value)


def render_string(source: str, context: Mapping[str, Any]) -> Any:
    """Render one template string; a single-expression template keeps its value's type."""
    if not is_template(source):
        return source
    try:
        return _evaluate(_compile(source), context)
    except TemplateSyntaxError as error:
        raise RenderError(source, f"syntax error: {error.message}") from None
    except LimitExceeded as error:
        raise RenderError(source, f"over the template limits: {error}") from None
    except SecurityError as error:
        raise RenderError(source, f"refused by the sandbox: {error}") from None
    except UndefinedError as error:
        raise RenderError(source, str(error.message)) from None
    except TemplateError as error:
        raise RenderError(source, str(error)) from None
    except Exception as error:  # a filter or test raised: still the template's fault
        raise RenderError(source, f"{type(error).__name__}: {error}") from None


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON-like value (dict keys included)."""
    if isinstance(value, str):
        return render_string(value, context)
    if isinstance(value, dict):
        return {render(key, context): render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def render_workload(workload: Mapping[str, Any], execution: Mapping[str, Any]) -> dict[str, Any]:
    """The workload with its templates rendered once, seeing `execution` (and no step result).

    Raises RenderError naming where the template that failed is (`workload.run.id`).
    """
    context = {"execution": execution}

    def walk(value: Any, where: str) -> Any:
        if isinstance(value, str):
            try:
                return render_string(value, context)
            except RenderError as error:
                raise RenderError(error.expression, error.reason, where) from None
        if isinstance(value, dict):
            return {key: walk(item, f"{where}.{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, f"{where}[{index}]") for index, item in enumerate(value)]
        return value

    return {key: walk(value, f"workload.{key}") for key, value in workload.items()}


def truthy(value: Any) -> bool:
    """How a rendered condition reads: the strings 'false', '0', 'no' and '' are false too."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0", "no", "none", "null")
    return bool(value)


def template_strings(value: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Each template string inside a JSON-like value, with its relative path."""
    if isinstance(value, str):
        if is_template(value):
            yield (), value
    elif isinstance(value, dict):
        for key, item in value.items():
            for path, text in template_strings(item):
                yield (str(key), *path), text
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for path, text in template_strings(item):
                yield (index, *path), text


def referenced_names(source: str) -> set[str]:
    """Top-level names a template reads (e.g. the steps whose results it needs)."""
    try:
        tree = ENVIRONMENT.parse(source)
    except TemplateSyntaxError:
        return set()
    return {node.name for node in tree.find_all(nodes.Name) if node.ctx == "load"}
