"""Where the web view gets its data: one source per place runs live, behind one interface.

`local.LocalRuns` reads the event logs of `noetl run`; `cluster.ClusterRuns` reads Executions,
Playbooks, Events, pods and ConfigMaps through the API server. Each answers in the neutral model
of `noetl.ui.model`, so all that knows where a cluster keeps what is in one file. Each acts
(cancel, suspend, resume, retry) through the functions the `noetl` commands use for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol

from noetl.engine import ExecutionState, step_record
from noetl.ui.model import (
    EventView,
    ExecutionSummary,
    ExecutionView,
    PlaybookView,
    StepDetail,
    StepView,
    with_unknown_steps,
)


class ActionRefused(Exception):
    """An action (cancel, suspend, resume, retry) that cannot be carried out; the message says
    why, for people."""


class Source(Protocol):
    name: str  # "local" or "cluster"

    def owns(self, namespace: str) -> bool: ...

    async def executions(self) -> list[ExecutionSummary]: ...

    async def execution(self, namespace: str, name: str) -> ExecutionView | None: ...

    async def step(self, namespace: str, name: str, step: str) -> StepDetail | None: ...

    async def events(self, namespace: str, name: str) -> list[EventView]: ...

    def changes(self, namespace: str, name: str) -> AsyncIterator[None]:
        """Yields each time the execution may have changed; ends when it cannot change more."""
        ...

    def every_change(self) -> AsyncIterator[None]:
        """Yields each time an execution may have appeared or changed; never ends by itself."""
        ...

    async def cancel(self, namespace: str, name: str) -> None: ...

    async def suspend(self, namespace: str, name: str) -> None: ...

    async def resume(self, namespace: str, name: str) -> None: ...

    async def retry(self, namespace: str, name: str) -> str:
        """Start a retry of the execution (its failed steps again); the name of the new one."""
        ...

    async def playbooks(self) -> list[PlaybookView]: ...

    async def close(self) -> None: ...


def step_views(
    state: ExecutionState, results: Mapping[str, Any], names: Iterable[str]
) -> dict[str, StepView]:
    """What the engine's records say of each step, in the words of the view: an unfinished
    step's record is in the state, a finished one's in the result store (`step_record`)."""
    views = {}
    for name in dict.fromkeys([*state.steps, *names]):
        step = step_record(state, results, name)
        if step is None:
            continue
        view = StepView(
            name,
            step.phase,
            attempts=step.attempt,
            started=step.started_at,
            finished=step.finished_at,
            message=step.message,
        )
        if step.loop is not None:
            view.items_done, view.items_total = step.loop.done, step.loop.total
        views[name] = view
    return views


def fill_steps(view: ExecutionView) -> ExecutionView:
    """Give every step of the graph a state, and the graph every step the run knows. A step
    still waiting when the run has finished is one that was never reached: "Not run"."""
    with_unknown_steps(view.graph, view.steps)
    for name in view.graph.nodes:
        view.steps.setdefault(name, StepView(name))
    if view.finished_run:
        for step in view.steps.values():
            if step.state == "Waiting":
                step.state = "Not run"
    return view
