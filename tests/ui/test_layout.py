"""The layered layout and the graph read from raw playbooks: pure functions, no browser."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from noetl.ui.layout import NODE_HEIGHT, NODE_WIDTH, layout
from noetl.ui.model import Edge, GraphModel, Node, graph_of, place_errors
from noetl.ui.svg import render_graph


def graph(edges: list[tuple[str, str]], extra: tuple[str, ...] = ()) -> GraphModel:
    model = GraphModel()
    for name in [name for edge in edges for name in edge] + list(extra):
        model.nodes.setdefault(name, Node(name, "shell"))
    model.edges = [Edge(source, target) for source, target in edges]
    return model


def test_steps_go_below_all_their_predecessors() -> None:
    # a -> b -> c -> join, a -> join: the join sits below c, not next to b.
    drawn = layout(graph([("a", "b"), ("b", "c"), ("c", "join"), ("a", "join")]))
    y = {name: top for name, (_, top) in drawn.positions.items()}
    assert y["a"] < y["b"] < y["c"] < y["join"]
    # The long edge bends through one point per layer it crosses.
    (route,) = [r for r in drawn.routes if (r[0], r[1]) == ("a", "join")]
    assert len(route[3]) == 4


def test_branches_share_a_layer_without_overlapping() -> None:
    drawn = layout(graph([("start", f"b{i}") for i in range(5)]))
    lefts = sorted(x for name, (x, y) in drawn.positions.items() if name != "start")
    assert all(later - earlier >= NODE_WIDTH for earlier, later in itertools.pairwise(lefts))
    assert drawn.width >= 5 * NODE_WIDTH


def test_crossings_are_untangled() -> None:
    # Two chains whose second layer starts out crossed: barycentre ordering straightens them.
    drawn = layout(graph([("a", "y"), ("b", "x"), ("y", "y2"), ("x", "x2")], ()))
    x = {name: left for name, (left, _) in drawn.positions.items()}
    assert (x["a"] < x["b"]) == (x["y"] < x["x"]) == (x["y2"] < x["x2"])


def test_a_cycle_of_an_invalid_playbook_still_lays_out() -> None:
    drawn = layout(graph([("a", "b"), ("b", "c"), ("c", "a")]))
    assert set(drawn.positions) == {"a", "b", "c"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=40))
def test_any_dag_gets_boxes_that_never_overlap_and_edges_that_point_down(
    pairs: list[tuple[int, int]],
) -> None:
    edges = sorted({(f"s{min(a, b)}", f"s{max(a, b)}") for a, b in pairs if a != b})
    drawn = layout(graph(edges, ("s0",)))
    boxes = list(drawn.positions.values())
    for i, (x1, y1) in enumerate(boxes):
        for x2, y2 in boxes[i + 1 :]:
            assert abs(x1 - x2) >= NODE_WIDTH or abs(y1 - y2) >= NODE_HEIGHT
    for source, target, _, points in drawn.routes:
        assert drawn.positions[source][1] < drawn.positions[target][1]
        assert all(a[1] < b[1] for a, b in itertools.pairwise(points))


def test_graph_of_reads_edges_of_every_kind_and_tolerates_bad_entries() -> None:
    spec = {
        "workbook": [{"name": "fetch", "tool": "http"}],
        "workflow": [
            {"step": "start", "next": [{"step": "get"}, {"step": "missing"}, "junk"]},
            {
                "step": "get",
                "task": "fetch",
                "loop": {"in": [1], "iterator": "i"},
                "next": [{"when": "{{ x }}", "then": [{"step": "a"}]}, {"else": [{"step": "b"}]}],
            },
            {"step": "a"},
            {"step": "b"},
            "not a step",
        ],
    }
    model = graph_of(spec)
    # As validation reads it: a bad entry is kept under its path, so its errors have a place.
    assert list(model.nodes) == ["start", "get", "a", "b", "workflow[4]"]
    assert model.nodes["get"].tool == "http" and model.nodes["get"].loop
    assert [(e.source, e.target, e.label) for e in model.edges] == [
        ("start", "get", ""),
        ("get", "a", "when {{ x }}"),
        ("get", "b", "else"),
    ]
    assert graph_of({"workflow": "nope"}).nodes == {}
    assert graph_of(None).nodes == {}


def test_errors_are_placed_at_their_steps() -> None:
    model = graph_of({"workflow": [{"step": "start"}, {"step": "lost"}]})
    place_errors(
        [("spec.workflow[1].step", "not reachable"), ("workflow[0].next", "bad"), ("kind", "x")],
        model,
    )
    assert model.nodes["lost"].errors == ["spec.workflow[1].step: not reachable"]
    assert model.nodes["start"].errors == ["workflow[0].next: bad"]


def test_the_drawing_escapes_names_and_labels_each_state_in_words() -> None:
    model = graph([("start", "x")])
    model.nodes["start"].name = "start"
    svg = render_graph(model, {}, "/executions/local/r/steps/")
    assert 'aria-label="start: Waiting (shell)"' in svg
    hostile = GraphModel({'<b>"': Node('<b>"')}, [])
    svg = render_graph(hostile, None, "#step-")
    assert "<b>" not in svg and "&lt;b&gt;&quot;" in svg
