"""YAML read as users mean it: the YAML 1.2 core schema, JSON values only, bounded aliases.

PyYAML implements YAML 1.1, where `2024-05-01` is a date (which JSON cannot carry), `02134` is
octal 1116, `NO`, `yes`, `on` and `off` are booleans and `12:30` is 750 (base 60). Playbooks,
workload files and `--set` values are read here instead, with the rules of YAML 1.2's core schema:

- booleans are `true` and `false` only (also `True`, `TRUE`...); `yes`, `no`, `on`, `off`, `y`,
  `n` are strings;
- integers are decimal (`02134` is 2134), `0o17` octal or `0x1F` hexadecimal; no `_`, no base 60;
- floats as 1.2 writes them (`1.5`, `1e3`, `.inf`, `.nan`); nulls `null`, `~` or nothing;
- everything else is a string: dates and times included.

Values are JSON's (explicit tags such as `!!timestamp`, `!!binary` or `!!set` are refused); a
key given twice in one mapping is an error naming its line; and aliases may not expand the
document past `MAX_ALIAS_EXPANSION` nodes ("billion laughs"). The libyaml parser does the
parsing when PyYAML has it (the rules above are applied to its events, in Python).
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_ALIAS_EXPANSION = 100_000
"""Nodes that aliases (`*name`) may add to a document, counted as if each were written out."""

_PARSER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in: faster

_CORE_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    (
        "tag:yaml.org,2002:int",
        r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+",
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
        r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"<<", "<"),
]


class YamlError(ValueError):
    """Text that is not YAML, or not YAML a playbook may hold; says where."""


def _construct_int(loader: yaml.BaseLoader, node: ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.BaseLoader, node: ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".nan"):
        return math.nan
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    return float(text)


def _refuse_tag(loader: yaml.BaseLoader, node: Node) -> Any:
    raise ConstructorError(
        None,
        None,
        f"the tag {node.tag} is not a JSON value (a playbook holds JSON)",
        node.start_mark,
    )


class CoreLoader(_PARSER):
    """PyYAML's safe loader (libyaml's parser when built in) with the YAML 1.2 core schema."""

    # Its own table, filled below: none of YAML 1.1's resolvers are inherited.
    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, re.Pattern[str]]]]] = {}

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: the constructor says so below
                if first is not None:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first on line {first + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line
        return dict(super().construct_mapping(node, deep=deep))


for _tag, _pattern, _first in _CORE_RESOLVERS:
    CoreLoader.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), list(_first))
CoreLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
CoreLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    CoreLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)


def _check_aliases(root: Node) -> None:
    """Refuse a document whose aliases would write out more than MAX_ALIAS_EXPANSION nodes."""
    expanded: dict[int, int] = {}  # node id -> nodes under it, aliases written out

    def size(node: Node) -> int:
        known = expanded.get(id(node))
        if known is not None:
            return known
        expanded[id(node)] = 1  # a recursive alias counts once, then its construction fails
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1 + sum(size(child) for child in children)
        expanded[id(node)] = total
        return total

    added = size(root) - len(expanded)
    if added > MAX_ALIAS_EXPANSION:
        raise YamlError(
            f"aliases expand the document by {added:,} nodes (at most {MAX_ALIAS_EXPANSION:,})"
        )


def _where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


def load_yaml(text: str) -> Any:
    """One YAML document, read with the rules above."""
    loader = CoreLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_aliases(root)
        return loader.construct_document(root)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error)
        raise YamlError(f"{_where(error)}{problem}") from None
    except RecursionError:
        raise YamlError("nested too deeply") from None
    finally:
        loader.dispose()
