"""The step graph as an SVG drawing, with each step's state as a colour, a symbol and a word.

Every step is a link (to its page, so it works without script and by keyboard: Tab reaches each
one, Enter opens it) carrying `data-step`, so that live updates can restyle it in place. Colour is
never the only cue: the state is written in the box and in the link's accessible name.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from noetl.ui.layout import NODE_HEIGHT, NODE_WIDTH, Layout, layout
from noetl.ui.model import GraphModel, StepView

SYMBOLS = {
    "Waiting": "○",
    "Pending": "○",
    "Running": "▶",
    "Retrying": "↻",
    "Succeeded": "✓",
    "Failed": "✗",
    "Skipped": "\u2013",
    "Cancelled": "■",
    "Suspended": "‖",
    "Interrupted": "✗",
    "Not run": "·",
    "Invalid": "!",
    "Valid": "✓",
}
NAME_CHARACTERS = 14  # the tool's name shares the line


def state_label(step: StepView | None) -> str:
    """The words shown under a step's name: state, items of a loop, attempts past the first."""
    if step is None:
        return "Waiting"
    label = step.state
    if step.items_total is not None:
        label += f" {step.items_done or 0}/{step.items_total} items"
    if step.attempts > 1:
        label += f" (try {step.attempts})"
    return label


def state_class(state: str) -> str:
    return "s-" + state.lower().replace(" ", "-")


def render_graph(
    graph: GraphModel,
    steps: dict[str, StepView] | None,
    link_base: str,
    drawn: Layout | None = None,
) -> str:
    """`steps` None draws the playbook alone (no run): errors, if any, mark their steps."""
    drawn = drawn or layout(graph)
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" role="group" '
        f'aria-label="step graph" width="{drawn.width:.0f}" height="{drawn.height:.0f}" '
        f'viewBox="0 0 {drawn.width:.0f} {drawn.height:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L8,4 L0,8 z"/></marker></defs>',
    ]
    for _source, _target, label, points in drawn.routes:
        css = "edge" + (" routed" if label else "")
        title = f"<title>{escape(label)}</title>" if label else ""
        parts.append(f'<path class="{css}" d="{_path(points)}" marker-end="url(#arrow)">{title}')
        parts.append("</path>")
    for name, node in graph.nodes.items():
        x, y = drawn.positions[name]
        if steps is None:
            state = "Invalid" if node.errors else "Valid"
            count = len(node.errors)
            label = f"{count} error{'s' * (count > 1)}" if count else (node.tool or "routing")
        else:
            step = steps.get(name)
            state = step.state if step is not None else "Waiting"
            label = state_label(step)
        tool = node.tool or "routing"
        kind = f"{tool}, loop" if node.loop else tool
        shown = name if len(name) <= NAME_CHARACTERS else name[: NAME_CHARACTERS - 1] + "…"
        href = f"{link_base}{quote(name)}"
        dashed = ' stroke-dasharray="5 3"' if node.loop else ""
        parts.append(
            f'<a class="node {state_class(state)}" href="{escape(href)}" data-step="{escape(name)}"'
            f' aria-label="{escape(name)}: {escape(label)} ({escape(kind)})">'
            f"<title>{escape(name)} ({escape(kind)})</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="8"'
            f"{dashed}/>"
            f'<text x="{x + 10:.1f}" y="{y + 19:.1f}" class="name">{escape(shown)}</text>'
            f'<text x="{x + NODE_WIDTH - 8:.1f}" y="{y + 19:.1f}" class="tool" '
            f'text-anchor="end">{escape(kind)}</text>'
            f'<text x="{x + 10:.1f}" y="{y + 36:.1f}" class="state">'
            f'<tspan class="symbol">{SYMBOLS.get(state, "")}</tspan> '
            f'<tspan class="label">{escape(label)}</tspan></text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _path(points: list[tuple[float, float]]) -> str:
    """A smooth curve through the points: vertical tangents at every bend."""
    (x, y), *rest = points
    path = f"M{x:.1f},{y:.1f}"
    for nx, ny in rest:
        middle = (y + ny) / 2
        path += f" C{x:.1f},{middle:.1f} {nx:.1f},{middle:.1f} {nx:.1f},{ny:.1f}"
        x, y = nx, ny
    return path
