"""`noetl plan`: a playbook's graph as text for people, or as Graphviz dot."""

from __future__ import annotations

import json

from noetl.engine.graph import Graph
from noetl.playbook import Playbook, Step


def _what_runs(step: Step) -> str:
    if step.tool is None:
        return "routing (no pod)"
    what = f"{step.tool}" + (f" (task {step.task})" if step.task else "")
    if step.tool == "playbook":
        what += f" -> child execution of {step.args.get('name')!r}"
    if step.loop is not None:
        items = step.loop.in_ if isinstance(step.loop.in_, str) else f"{len(step.loop.in_)} items"
        limit = (
            f", at most {step.loop.max_in_flight} at once" if step.loop.mode == "parallel" else ""
        )
        what += f", for each {step.loop.iterator} in {items} ({step.loop.mode}{limit})"
    if step.retry is not None:
        retry = step.retry
        what += (
            f", up to {retry.max_attempts} attempts ({retry.backoff} from {retry.initial_delay})"
        )
    if step.timeout:
        what += f", timeout {step.timeout}"
    return what


def edges(step: Step) -> list[tuple[str, str]]:
    """(label, target) for each edge: '' for unconditional ones."""
    edges: list[tuple[str, str]] = []
    for entry in step.next:
        label = (
            "" if entry.step is not None else "else" if entry.when is None else f"when {entry.when}"
        )
        edges += [(label, target) for target in entry.targets()]
    return edges


def describe(playbook: Playbook) -> str:
    graph = Graph(playbook)
    ordered = sorted(playbook.steps, key=graph.order.__getitem__)
    lines = [f"playbook {playbook.name}: {len(ordered)} steps"]
    for name in ordered:
        step = playbook.steps[name]
        join = (
            f"  [join of {', '.join(sorted(graph.predecessors[name]))}]"
            if graph.is_join(name)
            else ""
        )
        if graph.finally_roots and name == graph.finally_roots[0]:  # the first in the order
            lines.append("  finally (after the workflow, whatever its outcome):")
        lines.append(f"  {name}: {_what_runs(step)}{join}")
        for label, target in edges(step):
            lines.append(f"      -> {target}" + (f"  ({label})" if label else ""))
    if playbook.spec.output is not None:
        lines.append(f"  output: {json.dumps(playbook.spec.output)}")
    return "\n".join(lines)


def to_dot(playbook: Playbook) -> str:
    lines = [
        f"digraph {json.dumps(playbook.name)} {{",
        "  rankdir=TB;",
        "  node [shape=box, style=rounded];",
    ]
    for name, step in playbook.steps.items():
        shape = ", shape=ellipse" if step.tool is None else ""
        label = (
            name
            if step.tool is None
            else f"{name}\\n{step.tool}" + (" (loop)" if step.loop else "")
        )
        lines.append(f'  {json.dumps(name)} [label="{label}"{shape}];')
        for edge_label, target in edges(step):
            attributes = f" [label={json.dumps(edge_label)}]" if edge_label else ""
            lines.append(f"  {json.dumps(name)} -> {json.dumps(target)}{attributes};")
    lines.append("}")
    return "\n".join(lines)
