"""A layered drawing of a step graph, computed here so that no graph library is needed.

The classic recipe (Sugiyama's), cut to what playbooks need: each step goes on the layer of its
longest path from a root; an edge longer than one layer is routed through placeholder points, one
per layer it crosses, so that it bends around the steps between; within a layer, steps are
ordered by the mean position of their neighbours (barycentre), sweeping down and up a few times
to untangle crossings. It is linear in the size of the graph per sweep, so a 2,000-step playbook
lays out in milliseconds. Cycles (only an invalid playbook has them) are broken by ignoring the
edges that close them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

from noetl.ui.model import GraphModel

NODE_WIDTH = 196
NODE_HEIGHT = 46
PLACEHOLDER_WIDTH = 16
GAP_X = 28
LAYER_GAP = 44
MARGIN = 16
SWEEPS = 4


@dataclass
class Layout:
    width: float
    height: float
    positions: dict[str, tuple[float, float]]  # top-left corner of each step
    routes: list[tuple[str, str, str, list[tuple[float, float]]]] = field(default_factory=list)
    """(source, target, label, points from the source's bottom to the target's top)."""


def layout(graph: GraphModel) -> Layout:
    names = list(graph.nodes)
    successors: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for edge in graph.edges:
        successors[edge.source].append((edge.target, edge.label))
    layer = _layers(names, successors)

    # Placeholders for long edges: each edge becomes a chain of hops one layer long.
    rows: dict[int, list[str]] = defaultdict(list)
    for name in names:
        rows[layer[name]].append(name)
    ups: dict[str, list[str]] = defaultdict(list)
    downs: dict[str, list[str]] = defaultdict(list)
    chains: list[tuple[str, str, str, list[str]]] = []
    for source in names:
        for target, label in successors[source]:
            if layer[target] <= layer[source]:
                continue  # closes a cycle: drawn nowhere
            chain = [source]
            for depth in range(layer[source] + 1, layer[target]):
                point = f"\0{len(chains)}:{depth}"
                rows[depth].append(point)
                chain.append(point)
            chain.append(target)
            for upper, lower in pairwise(chain):
                downs[upper].append(lower)
                ups[lower].append(upper)
            chains.append((source, target, label, chain))

    order = [rows[depth] for depth in range(len(rows))]
    _untangle(order, ups, downs)

    widths = [_row_width(row) for row in order]
    width = max(widths, default=0) + 2 * MARGIN
    centres: dict[str, float] = {}
    tops: dict[str, float] = {}
    for depth, row in enumerate(order):
        x = MARGIN + (width - 2 * MARGIN - widths[depth]) / 2
        y = MARGIN + depth * (NODE_HEIGHT + LAYER_GAP)
        for item in row:
            item_width = _item_width(item)
            centres[item] = x + item_width / 2
            tops[item] = y
            x += item_width + GAP_X
    positions = {name: (centres[name] - NODE_WIDTH / 2, tops[name]) for name in names}
    routes = []
    for source, target, label, chain in chains:
        points = [(centres[source], tops[source] + NODE_HEIGHT)]
        points += [(centres[p], tops[p] + NODE_HEIGHT / 2) for p in chain[1:-1]]
        points.append((centres[target], tops[target]))
        routes.append((source, target, label, points))
    height = MARGIN * 2 + len(order) * (NODE_HEIGHT + LAYER_GAP) - LAYER_GAP if order else 0
    return Layout(width, max(height, 0), positions, routes)


def _layers(names: list[str], successors: dict[str, list[tuple[str, str]]]) -> dict[str, int]:
    """Longest path from a root, over the edges that keep the graph acyclic (Kahn's order)."""
    indegree = dict.fromkeys(names, 0)
    for source in names:
        for target, _ in successors[source]:
            indegree[target] += 1
    layer = dict.fromkeys(names, 0)
    placed: set[str] = set()
    pending = list(names)
    while pending:
        ready = [name for name in pending if indegree[name] == 0] or pending[:1]  # a cycle: cut it
        queue = list(ready)
        while queue:
            name = queue.pop()
            if name in placed:
                continue
            placed.add(name)
            for target, _ in successors[name]:
                if target in placed:
                    continue
                layer[target] = max(layer[target], layer[name] + 1)
                indegree[target] -= 1
                if indegree[target] == 0:
                    queue.append(target)
        pending = [name for name in pending if name not in placed]
    return layer


def _untangle(
    order: list[list[str]], ups: dict[str, list[str]], downs: dict[str, list[str]]
) -> None:
    """Reorder each layer by its neighbours' mean position, sweeping down then up."""
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        layers = range(1, len(order)) if downward else range(len(order) - 2, -1, -1)
        for depth in layers:
            neighbours = ups if downward else downs
            fixed = order[depth - 1] if downward else order[depth + 1]
            position = {item: i for i, item in enumerate(fixed)}
            keyed = [
                (_barycentre(neighbours[item], position, i), i, item)
                for i, item in enumerate(order[depth])
            ]
            order[depth] = [item for _, _, item in sorted(keyed)]


def _barycentre(neighbours: list[str], position: dict[str, int], here: int) -> float:
    """Mean position of the neighbours on the fixed layer; a lone item keeps its place."""
    found = [position[n] for n in neighbours if n in position]
    return sum(found) / len(found) if found else float(here)


def _item_width(item: str) -> float:
    return PLACEHOLDER_WIDTH if item.startswith("\0") else NODE_WIDTH


def _row_width(row: list[str]) -> float:
    return sum(_item_width(item) for item in row) + GAP_X * max(0, len(row) - 1)
