"""Property-based tests on random DAGs: whatever the shape and the order in which steps finish."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from noetl.engine import StartStep
from tests.engine.world import World


@st.composite
def dags(draw: st.DrawFn) -> tuple[str, dict[str, set[str]]]:
    """A playbook whose steps s1..sN each have 1-3 predecessors among earlier steps (start = s0)."""
    count = draw(st.integers(min_value=1, max_value=14))
    names = ["start"] + [f"s{i}" for i in range(1, count + 1)]
    predecessors: dict[str, set[str]] = {name: set() for name in names}
    for i in range(1, len(names)):
        picks = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=3, unique=True))
        predecessors[names[i]] = {names[p] for p in picks}
    lines = ["kind: Playbook", "name: random", "workflow:"]
    for name in names:
        targets = [t for t in names if name in predecessors[t]]
        lines.append(f"  - step: {name}")
        if name != "start":
            lines += ["    tool: shell", "    args: {command: run}"]
        if targets:
            lines.append("    next: [" + ", ".join(f"{{step: {t}}}" for t in targets) + "]")
    return "\n".join(lines), predecessors


class Checked(World):
    """A world that checks, at every start, that the step's predecessors are all done."""

    def __init__(self, source: str, predecessors: dict[str, set[str]]):
        super().__init__(source)
        self.predecessors = predecessors
        self.violations: list[str] = []

    def send(self, event):
        commands = super().send(event)
        for command in commands:
            if isinstance(command, StartStep):
                for pred in self.predecessors[command.step]:
                    phase = self.step(pred)
                    if phase is not None and phase.phase not in ("Succeeded", "Failed", "Skipped"):
                        self.violations.append(
                            f"{command.step} started while {pred} was {phase.phase}"
                        )
                if any(self.engine.graph.reaches(f, command.step) for f in self.state.failed):
                    self.violations.append(f"{command.step} started downstream of a failure")
        return commands


@settings(max_examples=150, deadline=None)
@given(dags(), st.randoms(use_true_random=False))
def test_every_step_runs_exactly_once_and_joins_wait(dag, rng: random.Random):
    source, predecessors = dag
    world = Checked(source, predecessors)
    finished = world.run_to_end(rng=rng)
    assert finished.phase == "Succeeded"
    assert sorted(world.started_steps()) == sorted(name for name in predecessors if name != "start")
    assert world.violations == []


@settings(max_examples=150, deadline=None)
@given(dags(), st.randoms(use_true_random=False), st.floats(0, 0.4))
def test_failures_stay_local_and_nothing_runs_below_them(
    dag, rng: random.Random, failure_rate: float
):
    source, predecessors = dag
    world = Checked(source, predecessors)
    finished = world.run_to_end(lambda command: (rng.random() >= failure_rate, "x"), rng=rng)
    starts = world.started_steps()
    assert len(starts) == len(set(starts))
    assert world.violations == []
    assert (finished.phase == "Failed") == bool(world.state.failed)


@settings(max_examples=100, deadline=None)
@given(dags(), st.randoms(use_true_random=False), st.integers(0, 20))
def test_cancel_stops_everything(dag, rng: random.Random, cancel_after: int):
    source, _ = dag
    world = World(source)
    world.start()
    for _ in range(cancel_after):
        if world.finished or not world.running:
            break
        world.succeed(rng.choice(list(world.running)))
    if world.finished:
        return
    running = set(world.running)
    started = len(world.started)
    world.cancel()
    assert world.finished.phase == "Cancelled"
    assert {c.key for c in world.cancelled} == running
    assert len(world.started) == started
