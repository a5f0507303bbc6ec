"""Reading a playbook: YAML text -> validated `Playbook`, or `PlaybookInvalid` with every error.

A playbook file is either a bare NoETL document (`kind: Playbook` with the spec at the top level)
or the Kubernetes resource (`apiVersion: noetl.io/v1alpha1`, spec under `spec`). Error paths are
given as they stand in the file the user wrote: `spec.workflow[2].tool` for the resource,
`workflow[2].tool` for the bare document. The YAML is read with the 1.2 core schema
(`noetl.playbook.yaml_core`): `2024-05-01` and `NO` stay strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from noetl.playbook.errors import PlaybookError, PlaybookInvalid, join_path
from noetl.playbook.models import API_GROUP, API_VERSION, PlaybookSpec, Step
from noetl.playbook.reading import parse_spec
from noetl.playbook.validation import (
    Resolver,
    check_children,
    check_name,
    drop_shadowed,
    validate_spec,
)
from noetl.playbook.yaml_core import YamlError, load_yaml
from noetl.templating import template_name

_ENVELOPE_KEYS = {"apiVersion", "kind", "metadata", "name"}


@dataclass(frozen=True)
class Playbook:
    """A valid playbook, with workbook tasks already folded into the steps that use them.

    `steps` holds the workflow's steps and the `finally` steps alike (their names are unique
    across both)."""

    name: str
    spec: PlaybookSpec
    steps: dict[str, Step] = field(repr=False)

    @cached_property
    def template_names(self) -> dict[str, str]:
        """Step by the name templates use for it (`fetch_data` for the step `fetch-data`)."""
        return {template_name(name): name for name in self.steps}


def _resolve_task(spec: PlaybookSpec, step: Step) -> Step:
    if step.task is None:
        return step
    task = next(t for t in spec.workbook if t.name == step.task)
    return step.model_copy(
        update={
            "tool": task.tool,
            "args": {**task.args, **step.args},
            "code": step.code if step.code is not None else task.code,
        }
    )


def parse_playbook(document: Any, source: str = "", resolve: Resolver | None = None) -> Playbook:
    """Validate a parsed YAML/JSON document as a playbook, reporting every problem at once.

    With `resolve`, the child playbooks it names are looked up too (missing ones, cycles).
    """
    if not isinstance(document, dict):
        raise PlaybookInvalid([PlaybookError("", "a playbook is a mapping (YAML object)")], source)
    errors: list[PlaybookError] = []
    kind = document.get("kind", "Playbook")
    if kind != "Playbook":
        errors.append(PlaybookError("kind", f"expected Playbook, got {kind!r}"))
    api_version = document.get("apiVersion")
    if api_version is not None and not str(api_version).startswith(f"{API_GROUP}/"):
        errors.append(PlaybookError("apiVersion", f"expected {API_VERSION}, got {api_version!r}"))
    metadata = document.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if name:
        errors += check_name(str(name), "metadata.name")
    elif document.get("name"):
        errors += check_name(str(document["name"]), "name")
    name = name or document.get("name") or (Path(source).stem if source else "playbook")

    if "spec" in document:
        prefix, body = "spec", document["spec"]
        extra = set(document) - _ENVELOPE_KEYS - {"spec", "status"}
        errors += [
            PlaybookError(key, "unknown field (the resource form keeps the playbook under spec)")
            for key in sorted(extra)
        ]
    else:
        prefix, body = "", {k: v for k, v in document.items() if k not in _ENVELOPE_KEYS}
    spec, model_errors = parse_spec(body)
    problems = model_errors
    if spec is not None:
        problems += drop_shadowed(validate_spec(spec), model_errors)
    errors += [PlaybookError(join_path(prefix, e.path), e.message) for e in problems]
    if errors or spec is None:
        raise PlaybookInvalid(errors, source)
    # The workflow's steps and the finally steps alike (their names are unique across both).
    steps = {step.step: _resolve_task(spec, step) for step in [*spec.workflow, *spec.finally_]}
    playbook = Playbook(str(name), spec, steps)
    if resolve is not None:
        children = check_children(playbook, resolve)
        if children:
            raise PlaybookInvalid(
                [PlaybookError(join_path(prefix, e.path), e.message) for e in children], source
            )
    return playbook


def load_playbook(path: str | Path, resolve: Resolver | None = None) -> Playbook:
    """Read and validate a playbook file (and, with `resolve`, find its child playbooks)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise PlaybookInvalid(
            [PlaybookError("", f"cannot read file: {error.strerror}")], str(path)
        ) from None
    try:
        document = load_yaml(text)
    except YamlError as error:
        raise PlaybookInvalid([PlaybookError("", f"not valid YAML: {error}")], str(path)) from None
    return parse_playbook(document, str(path), resolve)
