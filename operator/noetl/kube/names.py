"""Deterministic, valid Kubernetes names and label values for what the operator creates.

The same execution, step, item and attempt always give the same name, so a restarted operator
that issues a command again meets AlreadyExists instead of starting a step twice. Label values
are cut at 63 characters while an Execution's name may have 253: a longer name is cut and given a
hash of the whole, so the label stays valid and still tells executions apart.
"""

from __future__ import annotations

import hashlib
import re

_INVALID = re.compile(r"[^a-z0-9-]+")
LABEL_LIMIT = 63


def dns_label(*parts: object, limit: int = 63) -> str:
    """Join parts into a DNS-1123 label; too long a name is cut and given a hash of the whole."""
    text = "-".join(str(part) for part in parts if part is not None and part != "")
    name = _INVALID.sub("-", text.lower()).strip("-")
    if len(name) <= limit and name == text:
        return name
    return _hashed(text, name, limit)


def label_value(name: str) -> str:
    """A Kubernetes object name as a label value: itself up to 63 characters, else cut and hashed.

    Every label the operator writes with a name, and every selector that reads one, goes through
    here, so both sides agree.
    """
    if len(name) <= LABEL_LIMIT:
        return name
    return _hashed(name, name, LABEL_LIMIT)


def _hashed(whole: str, name: str, limit: int) -> str:
    """`name` cut to leave room for a hash of `whole`, ending with that hash."""
    digest = hashlib.sha256(whole.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-.')}-{digest}"


def run_name(execution: str, step: str, index: int | None, attempt: int) -> str:
    """The name of the Job (or child Execution) of one attempt of one step or loop item."""
    return dns_label(execution, step, index, f"a{attempt}")


def results_config_map(execution: str, number: int) -> str:
    return dns_label(execution, "results", number, limit=253)


def snapshot_config_map(execution: str) -> str:
    return dns_label(execution, "playbook", limit=253)


RESULTS_PURPOSE = "results"  # the purpose label of an execution's results ConfigMaps


def to_data_key(key: str) -> str:
    """A result store key made a ConfigMap data key: `step[3]` -> `step.3`, `step#log` ->
    `step.log` (step names hold no dot, so the first one splits the step from the rest)."""
    return key.replace("[", ".").replace("]", "").replace("#", ".")


def from_data_key(data_key: str) -> str:
    step, dot, rest = data_key.partition(".")
    if not dot:
        return step
    return f"{step}[{rest}]" if rest.isdigit() else f"{step}#{rest}"
