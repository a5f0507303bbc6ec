"""The CustomResourceDefinitions (Playbook, Execution, CronPlaybook), generated from the models.

`noetl crds` writes them to crds/ (checked in; a test fails when they drift from the models).
Pydantic's JSON schema is turned into a structural OpenAPI schema as the API server wants it:
references inlined, `Optional` as `nullable`, free-form values as preserve-unknown-fields.
The API server itself then rejects what it can check alone: types, patterns and ranges from the
models (timeouts above zero included), unique step and task names (list-map keys), a `start`
step and code for python steps (CEL rules). The rest of validation (edges, cycles, templates, the
args each tool needs and their types, Python syntax, names) is reported by the operator in the
Playbook's status.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from noetl.playbook.models import (
    API_GROUP,
    GROUP_VERSION,
    CronPlaybookSpec,
    ExecutionSpec,
    PlaybookSpec,
)

MAX_STEPS = 5000

_DROPPED_KEYWORDS = ("title", "default")


def _structural(node: Any, definitions: dict[str, Any]) -> Any:
    """Rewrite one JSON-schema node (recursively) into the structural form."""
    if isinstance(node, list):
        return [_structural(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, definitions)
    node = {k: v for k, v in node.items() if k not in _DROPPED_KEYWORDS}
    if node.get("additionalProperties") is False:
        # Not allowed in structural schemas; the API server prunes (or, strict, rejects) unknowns.
        del node["additionalProperties"]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        # Free-form values (args, workload, output, loop.in): any JSON is fine.
        kept = {
            k: node[k] for k in ("description", "x-kubernetes-preserve-unknown-fields") if k in node
        }
        if node.get("type") == "object" or "additionalProperties" in node:
            kept["type"] = "object"
        return kept
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("x-kubernetes-int-or-string"):
            # A quantity: the one anyOf that a structural schema allows (a pattern checks strings).
            return {**rest, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        if len(variants) == 1:
            return _structural({**variants[0], **rest, "nullable": True}, definitions)
        return {**rest, "x-kubernetes-preserve-unknown-fields": True}
    if node.get("type") == "object" and node.get("additionalProperties") in (True, {}):
        node = {k: v for k, v in node.items() if k != "additionalProperties"}
        node["x-kubernetes-preserve-unknown-fields"] = True
    return {key: _structural(value, definitions) for key, value in node.items()}


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    result = _structural(schema, definitions)
    assert isinstance(result, dict)
    return result


def _playbook_rules(spec: dict[str, Any]) -> dict[str, Any]:
    """What the API server checks of a playbook spec by itself."""
    workflow = spec["properties"]["workflow"]
    workflow["maxItems"] = MAX_STEPS
    workflow["x-kubernetes-list-type"] = "map"
    workflow["x-kubernetes-list-map-keys"] = ["step"]
    workbook = spec["properties"]["workbook"]
    workbook["maxItems"] = MAX_STEPS  # CEL rules on the items are costed by the list's bound
    workbook["x-kubernetes-list-type"] = "map"
    workbook["x-kubernetes-list-map-keys"] = ["name"]
    _python_rule(workflow["items"])
    _python_rule(workbook["items"])
    spec["x-kubernetes-validations"] = [
        {
            "rule": "self.workflow.exists(s, s.step == 'start')",
            "message": "spec.workflow needs a step named 'start': the workflow begins there",
        }
    ]
    return spec


def _python_rule(item: dict[str, Any]) -> None:
    """A CEL rule on a step or task: a python one has its code.

    The args a tool needs are checked by the operator, not here: CEL cannot see inside a
    free-form object, and declaring `args.command` etc. would impose a type on python args too.
    """
    item["x-kubernetes-validations"] = [
        {
            "rule": "!has(self.tool) || self.tool != 'python' || has(self.code)",
            "message": "a python step needs `code` (its source)",
        }
    ]


_ONE_PLAYBOOK = {
    "rule": "has(self.playbookRef) != has(self.playbook)",
    "message": "exactly one of spec.playbookRef or spec.playbook is needed",
}


def _crd(
    kind: str,
    plural: str,
    short: str,
    spec: dict[str, Any],
    columns: list[dict[str, Any]],
    description: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["noetl"],
            },
            "versions": [
                {
                    "name": GROUP_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": {
                                    "type": "object",
                                    "description": "Written by the operator.",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def playbook_crd() -> dict[str, Any]:
    spec = _playbook_rules(openapi_schema(PlaybookSpec))
    columns = [
        {
            "name": "Valid",
            "type": "string",
            "jsonPath": ".status.conditions[?(@.type=='Ready')].status",
        },
        {"name": "Steps", "type": "integer", "jsonPath": ".status.steps"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd(
        "Playbook",
        "playbooks",
        "pb",
        spec,
        columns,
        "A NoETL workflow: steps, their tools and the edges between them.",
    )


def execution_crd() -> dict[str, Any]:
    spec = openapi_schema(ExecutionSpec)
    _playbook_rules(spec["properties"]["playbook"])
    spec["x-kubernetes-validations"] = [
        _ONE_PLAYBOOK,
        {
            "rule": (
                "!has(oldSelf.playbookRef)"
                " || (has(self.playbookRef) && self.playbookRef == oldSelf.playbookRef)"
            ),
            "message": "spec.playbookRef cannot change once the execution exists",
        },
    ]
    columns = [
        {"name": "Playbook", "type": "string", "jsonPath": ".spec.playbookRef.name"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Current step", "type": "string", "jsonPath": ".status.currentStep"},
        {"name": "Started", "type": "date", "jsonPath": ".status.startedAt"},
        {"name": "Duration", "type": "string", "jsonPath": ".status.duration"},
    ]
    return _crd(
        "Execution",
        "executions",
        "ex",
        spec,
        columns,
        "One run of a NoETL playbook, with its inputs.",
    )


def cronplaybook_crd() -> dict[str, Any]:
    spec = openapi_schema(CronPlaybookSpec)
    _playbook_rules(spec["properties"]["playbook"])
    spec["x-kubernetes-validations"] = [_ONE_PLAYBOOK]
    columns: list[dict[str, Any]] = [
        {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
        {"name": "Time zone", "type": "string", "jsonPath": ".spec.timeZone", "priority": 1},
        {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
        {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount"},
        {"name": "Last schedule", "type": "date", "jsonPath": ".status.lastScheduleTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    return _crd(
        "CronPlaybook",
        "cronplaybooks",
        "cpb",
        spec,
        columns,
        "Executions of a NoETL playbook started on a schedule.",
    )


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, as checked in under crds/."""
    return {
        f"{API_GROUP}_playbooks.yaml": playbook_crd(),
        f"{API_GROUP}_executions.yaml": execution_crd(),
        f"{API_GROUP}_cronplaybooks.yaml": cronplaybook_crd(),
    }
