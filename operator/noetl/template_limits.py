"""What a template may compute: the Jinja2 sandbox, bounded in size and in work.

Jinja's sandbox keeps a template from reaching outside (private attributes, mutation), not from
exhausting the process that renders it: `9 ** 9 ** 8` is minutes of CPU and `'x' * 600000000`
is 600 MB, in the operator's event loop as much as on a laptop. `BoundedSandbox` checks, before
doing it, every operation that can build a value much larger than the template itself:

- `**` and `*` on integers (the size of the result in bits), `*` and `+` on strings and lists,
  `%` and `str.format` (field widths), the `~` operator, list and mapping literals, and the
  filters and string methods that take a size (`center`, `indent`, `join`, `replace`...);
- every loop iteration (of a `for`, nested or recursive, over a list or a `range`), every call,
  every item of a list or mapping a filter is given (`sort`, `select`, `unique`...), and every
  item of a list (kilobyte of a string) that `in` searches counts against one budget of work
  per render, so nested loops, recursive macros or a filter run
  once per item of a 10,000-item result cannot spin for minutes without building anything;
- what every filter, call and operator returns counts against one budget of what a render
  builds, so that many values each within bounds (`map`, `dict.fromkeys`, a loop) cannot add
  up to gigabytes; a value printed (`{{ x }}`) or handed back is at most `MAX_OUTPUT` in size,
  nested values counted in full (a list naming one large string a thousand times is large).

Jinja's compile-time optimiser would fold constant expressions (`{{ 9 ** 9 ** 8 }}`) while the
template compiles, outside any check; the environment is built with `optimized=False`, so every
expression is computed at render time, through the checks.

A limit reached raises `LimitExceeded`, a template error naming the limit.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_SIZE = 1_000_000
"""Characters of a string, or items of a list or mapping, that one template operation may build."""
MAX_INT_BITS = 4096
"""Bits of an integer a template may compute (about 1,230 decimal digits)."""
MAX_OUTPUT = 10 * MAX_SIZE
"""Characters a template may render to (data it only passes along is not counted elsewhere)."""
MAX_BUILT = 2 * MAX_OUTPUT
"""Characters and items that the filters, calls and operators of one render may return in all."""
MAX_OPERATIONS = 1_000_000
"""Work in one render: a loop iteration counts 1, a call (function, method, macro) `CALL_COST`,
a filter 1 per item of the list or mapping it reads, `in` 1 per item (or per `SEARCHED_CHARS`
characters) of the list (or string) it searches."""
SEARCHED_CHARS = 1000
CALL_COST = 25  # a macro call costs some fifty times a loop iteration; other calls less
_CONSTANT_TIME_FILTERS = frozenset({"length", "count", "first", "last", "default", "d"})
"""Filters that do not read their list's items: a loop may ask `x | length` on every turn."""

_SIZED_STR_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_PERCENT_FIELD = re.compile(
    r"%(?:\([^)]*\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?[hlL]?[a-zA-Z%]"
)


class LimitExceeded(TemplateRuntimeError):
    """A template tried to build too large a value or to do too much work."""


class RenderBudget:
    """The work done and the values built by one render (a context manager around it)."""

    _current: ContextVar[RenderBudget] = ContextVar("template_render_budget")

    def __init__(self) -> None:
        self.work = 0
        self.built = 0

    def __enter__(self) -> RenderBudget:
        self._token = self._current.set(self)
        return self

    def __exit__(self, *_: object) -> None:
        self._current.reset(self._token)

    @classmethod
    def current(cls) -> RenderBudget | None:
        return cls._current.get(None)


def _spend(work: int = 1) -> None:
    budget = RenderBudget.current()
    if budget is None:
        return
    budget.work += work
    if budget.work > MAX_OPERATIONS:
        raise LimitExceeded(
            f"more than {MAX_OPERATIONS:,} units of work (a loop iteration is 1, a call"
            f" {CALL_COST}, a filter or `in` 1 per item it reads) in one template"
        )


def _charge(value: Any) -> Any:
    """Count a value just built against the render's budget; the value, when within it."""
    budget = RenderBudget.current()
    if budget is None or not isinstance(value, str | list | tuple | Mapping):
        return value
    budget.built += size_of(value, MAX_BUILT - budget.built)
    if budget.built > MAX_BUILT:
        raise LimitExceeded(f"more than {MAX_BUILT:,} characters and items built in one template")
    return value


def check_value(value: Any) -> Any:
    """Refuse a value too large to print or hand back (nested values counted in full)."""
    if isinstance(value, str):
        size = len(value)
    elif isinstance(value, list | tuple | Mapping):
        size = size_of(value, MAX_OUTPUT)
    else:
        return value
    if size > MAX_OUTPUT:
        raise LimitExceeded(f"a value of more than {MAX_OUTPUT:,} characters and items")
    return value


def _refuse_size(what: str, size: int) -> None:
    if size > MAX_SIZE:
        raise LimitExceeded(
            f"{what} of at least {size:,} characters or items (the limit is {MAX_SIZE:,})"
        )


def size_of(value: Any, limit: int = MAX_SIZE) -> int:
    """Characters of strings and items of containers in a value, nested ones included; stops
    counting past `limit`.

    A list may hold the same large string many times over; what it costs to print or join is
    the sum, which is what is counted (the walk itself stops once past the limit).
    """
    total = 0
    pending: list[Any] = [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, Mapping):
            total += len(item)
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            pending.extend(item)
        # anything else is a number or the like: its slot in a container is counted already
    return total


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | list | tuple)


def _multiply(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise LimitExceeded(f"an integer of more than {MAX_INT_BITS:,} bits")
    elif _is_sequence(left) and isinstance(right, int):
        _refuse_size("a repeated value", size_of(left) * max(right, 0))
    elif _is_sequence(right) and isinstance(left, int):
        _refuse_size("a repeated value", size_of(right) * max(left, 0))
    return left * right


def _power(base: Any, exponent: Any) -> Any:
    growing = isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1
    if growing and base.bit_length() * max(exponent, 0) > MAX_INT_BITS:
        raise LimitExceeded(f"an integer of more than {MAX_INT_BITS:,} bits")
    return base**exponent


def _add(left: Any, right: Any) -> Any:
    if _is_sequence(left) and _is_sequence(right):
        _refuse_size("a concatenation", size_of(left) + size_of(right))
    return left + right


def check_percent_format(text: str) -> None:
    """Refuse `%` formats whose field widths would build a huge string (`%0999999999d`)."""
    for field in _PERCENT_FIELD.finditer(text):
        for number in (field.group("width"), field.group("precision")):
            if number == "*":
                raise LimitExceeded("a '%' format with a '*' width")
            if number is not None:
                _refuse_size("a formatted field", int(number))


def check_str_format(text: str) -> None:
    """Refuse `str.format` fields whose width would build a huge string (`{:>999999999}`)."""
    for _, _, spec, _ in string.Formatter().parse(text):
        if not spec:
            continue
        if "{" in spec:
            raise LimitExceeded("a format field whose width is itself a field")
        for number in re.findall(r"\d+", spec):
            _refuse_size("a formatted field", int(number))


def _remainder(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        check_percent_format(left)
        _refuse_size("the values formatted", size_of(right))
    return left % right


def _check_join(items: Iterable[Any], separator: str) -> list[Any]:
    listed = list(items)
    _refuse_size("a joined string", size_of(listed) + len(separator) * len(listed))
    return listed


def _check_replace(text: str, old: str, new: str, count: int | None = None) -> None:
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    _refuse_size("a replaced string", len(text) + found * max(len(new) - len(old), 0))


def _check_sized_method(method: Callable[..., Any], args: tuple[Any, ...]) -> None:
    text = method.__self__  # type: ignore[attr-defined]
    name = method.__name__
    if name in _SIZED_STR_METHODS:
        numbers = [arg for arg in args if isinstance(arg, int)]
        width = max(numbers, default=0)
        if name == "expandtabs":
            width = len(text) + text.count("\t") * max(width, 8)
        _refuse_size(f"the result of {name}", width)
    elif name == "join" and args:
        _check_join(args[0], text)
    elif name == "replace" and len(args) >= 2:
        _check_replace(text, str(args[0]), str(args[1]), *args[2:3])


def _bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that take a size, each checked before it builds anything."""
    center, indent, join = filters["center"], filters["indent"], filters["join"]
    replace, batch, slice_, format_ = (
        filters["replace"],
        filters["batch"],
        filters["slice"],
        filters["format"],
    )
    total = filters["sum"]

    def bounded_center(value: Any, width: int = 80) -> str:
        _refuse_size("the result of center", width)
        return str(center(value, width))

    def bounded_indent(value: Any, width: int | str = 4, *args: Any, **kwargs: Any) -> str:
        text = str(value)
        step = len(width) if isinstance(width, str) else width
        _refuse_size("the result of indent", len(text) + (text.count("\n") + 1) * step)
        return str(indent(text, width, *args, **kwargs))

    def bounded_join(
        eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None
    ) -> str:
        return str(
            join(eval_ctx, _check_join(value, d) if attribute is None else value, d, attribute)
        )

    def bounded_replace(
        eval_ctx: Any, value: Any, old: str, new: str, count: int | None = None
    ) -> str:
        _check_replace(str(value), str(old), str(new), count)
        return str(replace(eval_ctx, value, old, new, count))

    def bounded_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
        _refuse_size("a batch", linecount)
        return batch(value, linecount, fill_with)

    def bounded_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
        _refuse_size("a slice count", slices)
        return slice_(value, slices, fill_with)

    def bounded_format(value: Any, *args: Any, **kwargs: Any) -> str:
        check_percent_format(str(value))
        _refuse_size("the values formatted", size_of([args, kwargs]))
        return str(format_(value, *args, **kwargs))

    def bounded_sum(
        environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
    ) -> Any:
        if not isinstance(start, int | float):
            raise LimitExceeded("sum adds numbers; join strings, or concatenate lists with +")
        return total(environment, iterable, attribute, start)

    # Jinja passes the context, environment or eval context according to these markers.
    bounded_join.jinja_pass_arg = join.jinja_pass_arg  # type: ignore[attr-defined]
    bounded_replace.jinja_pass_arg = replace.jinja_pass_arg  # type: ignore[attr-defined]
    bounded_sum.jinja_pass_arg = total.jinja_pass_arg  # type: ignore[attr-defined]
    return {
        "center": bounded_center,
        "indent": bounded_indent,
        "join": bounded_join,
        "replace": bounded_replace,
        "batch": bounded_batch,
        "slice": bounded_slice,
        "format": bounded_format,
        "sum": bounded_sum,
    }


def _charging(function: Callable[..., Any], reads_items: bool) -> Callable[..., Any]:
    """A filter whose result counts against the render's budget of what it builds, and, when
    it `reads_items`, the items of the list or mapping it is given against the work budget."""
    passes_first = hasattr(function, "jinja_pass_arg")  # the context or environment: not data

    def charged(*args: Any, **kwargs: Any) -> Any:
        value = args[1 if passes_first else 0] if len(args) > passes_first else None
        if reads_items and isinstance(value, list | tuple | Mapping | set | frozenset):
            _spend(len(value))
        return _charge(function(*args, **kwargs))

    if hasattr(function, "jinja_pass_arg"):  # the context or environment Jinja passes first
        charged.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return charged


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles loops to count their iterations and `~` to check the size of what it builds."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        counted = isinstance(node.iter, nodes.Call) and isinstance(
            node.iter.node, nodes.EnvironmentAttribute
        )
        if not counted:
            node.iter = nodes.Call(
                nodes.EnvironmentAttribute("count_iterations"),
                [node.iter],
                [],
                None,
                None,
                lineno=node.iter.lineno,
            )
        super().visit_For(node, frame)

    # Literals may name one large value many times (`[s, s, s, ...]`): checked when built.
    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.literal(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # `{% for a, b in ... %}`: a target, not a value
            super().visit_Tuple(node, frame)
            return
        self.write("environment.literal(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_Operand(self, node: nodes.Operand, frame: Frame) -> None:
        if node.op not in ("in", "notin"):
            super().visit_Operand(node, frame)
            return
        self.write(" not in " if node.op == "notin" else " in ")
        self.write("environment.searched(")  # what `in` searches, item by item
        self.visit(node.expr, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concatenate((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with the size and work limits described above."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(optimized=False, finalize=check_value, **options)
        self.filters.update(_bounded_filters(self.filters))
        self.add_filters(**self.filters)
        del self.globals["lipsum"]  # its sizes are arguments: nothing a playbook needs
        self._checked_binops: dict[str, Callable[[Any, Any], Any]] = {
            "*": _multiply,
            "**": _power,
            "+": _add,
            "%": _remainder,
        }

    def add_filters(self, **filters: Callable[..., Any]) -> None:
        """Add (or replace) filters, each counted against the render's budgets: the items it
        reads as work, its result as what is built."""
        self.filters.update(
            {name: _charging(f, name not in _CONSTANT_TIME_FILTERS) for name, f in filters.items()}
        )

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return _charge(self._checked_binops[operator](left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _spend(CALL_COST)
        if isinstance(obj, LoopContext) and args:  # `loop(children)` in a recursive for
            args = (self.count_iterations(args[0]), *args[1:])
        if isinstance(getattr(obj, "__self__", None), str):
            _check_sized_method(obj, args)
        check_value([args, kwargs])  # e.g. str.format of a list naming one string many times
        return _charge(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            check_str_format(value.__self__)
        return wrapped

    def count_iterations(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            _spend()
            yield item

    def searched(self, value: Any) -> Any:
        """What `in` searches, its items counted as work (a mapping's lookup costs nothing)."""
        if isinstance(value, list | tuple):
            _spend(len(value))
        elif isinstance(value, str):
            _spend(len(value) // SEARCHED_CHARS)
        return value

    def literal(self, value: Any) -> Any:
        return _charge(check_value(value))

    def concatenate(self, parts: tuple[Any, ...]) -> str:
        _refuse_size("a concatenation", sum(size_of(part) for part in parts))
        return str(_charge("".join(str(part) for part in parts)))
