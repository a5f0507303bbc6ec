"""The neutral model the web view renders: executions, steps, attempts, events and playbooks.

Sources (`noetl.ui.sources.local` over event logs, `noetl.ui.sources.cluster` over the API
server) fill these plain records; the pages know nothing of where they came from. The graph of a
playbook is read leniently, as validation reads it (`noetl.playbook.reading`), so that an
invalid playbook still shows the steps it has and where its errors are.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from noetl.engine.state import FINISHED_PHASES
from noetl.plan import edges
from noetl.playbook import PlaybookSpec
from noetl.playbook.reading import parse_spec

LOCAL = "local"
"""The namespace shown for runs on this machine."""
ACTIONS = ("cancel", "suspend", "resume", "retry")
"""What people may do to an execution from its page: the commands `noetl cancel`, `suspend`,
`resume` and `retry` do."""
RETRYABLE_PHASES = ("Failed", "Cancelled", "Interrupted")


@dataclass
class Attempt:
    """One run of a step (or of one loop item)."""

    attempt: int
    index: int | None = None
    state: str = "Running"
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    args: Any = None


@dataclass
class StepView:
    name: str
    state: str = "Waiting"
    attempts: int = 0
    items_done: int | None = None
    items_total: int | None = None
    started: float | None = None
    finished: float | None = None
    message: str | None = None


@dataclass
class LogText:
    title: str
    text: str


@dataclass
class StepDetail:
    step: StepView
    attempts: list[Attempt] = field(default_factory=list)
    result: Any = None
    has_result: bool = False
    logs: list[LogText] = field(default_factory=list)


@dataclass
class EventView:
    time: float | None
    kind: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Node:
    name: str
    tool: str | None = None
    loop: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class Edge:
    source: str
    target: str
    label: str = ""  # "" for unconditional edges, "when ..." or "else" for routed ones


@dataclass
class GraphModel:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)  # step names in `workflow` order


@dataclass
class ExecutionSummary:
    name: str
    namespace: str
    playbook: str
    phase: str
    started: float | None = None
    finished: float | None = None

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


@dataclass
class ExecutionView(ExecutionSummary):
    error: str | None = None
    steps: dict[str, StepView] = field(default_factory=dict)
    graph: GraphModel = field(default_factory=GraphModel)
    actions: tuple[str, ...] = ()  # those of ACTIONS that apply now (see `applicable_actions`)
    note: str | None = None  # why something is missing, for people

    @property
    def finished_run(self) -> bool:
        return self.phase in FINISHED_PHASES


def applicable_actions(
    phase: str, reachable: bool, awaiting_approval: bool = False, retryable: bool = True
) -> tuple[str, ...]:
    """The actions that apply to an execution in `phase`: cancel while it has not finished,
    suspend while it runs, resume while it is suspended or an approval step waits, retry once it
    failed, was cancelled or was interrupted. `reachable`: whatever runs it can be told (a local
    run's process is there); `retryable`: what it ran can be read back (a local run's log holds
    its playbook)."""
    if phase in RETRYABLE_PHASES:
        return ("retry",) if retryable else ()
    if phase in FINISHED_PHASES or not reachable:
        return ()
    found = ["cancel"]
    if phase in ("Pending", "Running"):
        found.append("suspend")
    if phase == "Suspended" or awaiting_approval:
        found.append("resume")
    return tuple(found)


@dataclass
class PlaybookView:
    name: str
    namespace: str
    source: str  # a file path, or "cluster"
    valid: bool | None  # None: not validated (yet)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    graph: GraphModel = field(default_factory=GraphModel)
    description: str | None = None


_ENVELOPE = ("apiVersion", "kind", "metadata", "name")
_STEP_PATH = re.compile(r"^(?:spec\.)?workflow\[(\d+)\]")


def graph_of(spec: Any) -> GraphModel:
    """The steps and edges of a playbook spec: a parsed one, or one as written (the `spec` part,
    or a bare document).

    Read leniently (`noetl.playbook.reading`), as validation reads it: an invalid playbook still
    shows the steps it has. Never raises; edges to unknown steps are dropped.
    """
    graph = GraphModel()
    if isinstance(spec, PlaybookSpec):
        readable: PlaybookSpec | None = spec
    else:
        body = spec
        if isinstance(spec, dict):
            body = {k: v for k, v in spec.items() if k not in _ENVELOPE}
        readable, _ = parse_spec(body)
    if readable is None:
        return graph
    tools = {task.name: task.tool for task in readable.workbook}
    for step in readable.workflow:
        tool = step.tool or (tools.get(step.task) if step.task else None)
        graph.nodes[step.step] = Node(step.step, tool, step.loop is not None)
        graph.listed.append(step.step)
    for step in readable.workflow:
        for label, target in edges(step):
            if target in graph.nodes:
                graph.edges.append(Edge(step.step, target, label))
    return graph


def place_errors(errors: list[tuple[str, str]], graph: GraphModel) -> None:
    """Attach each validation error whose path is inside a step (`workflow[3]...`) to that step."""
    for path, message in errors:
        match = _STEP_PATH.match(path)
        if match and int(match[1]) < len(graph.listed):
            graph.nodes[graph.listed[int(match[1])]].errors.append(f"{path}: {message}")


def with_unknown_steps(graph: GraphModel, steps: dict[str, StepView]) -> GraphModel:
    """Add nodes for steps the run knows and the graph does not (e.g. the playbook was edited)."""
    for name in steps:
        graph.nodes.setdefault(name, Node(name))
    return graph


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or hours else "") + f"{secs}s"


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
