"""Property-based tests on random DAGs: whatever the shape and the order in which steps finish."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from noetl.engine import ResumeRequested, StartStep, SuspendRequested
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


@st.composite
def with_finally(draw: st.DrawFn) -> tuple[str, dict[str, set[str]], dict[str, set[str]]]:
    """A random DAG as above, and a random `finally` graph of 1-5 steps f0..fN beside it."""
    source, predecessors = draw(dags())
    names = [f"f{i}" for i in range(draw(st.integers(min_value=1, max_value=5)))]
    finally_predecessors: dict[str, set[str]] = {}
    for i, name in enumerate(names):
        picks = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True)) if i else []
        finally_predecessors[name] = {names[p] for p in picks}
    lines = ["finally:"]
    for name in names:
        targets = [t for t in names if name in finally_predecessors[t]]
        lines += [f"  - step: {name}", "    tool: shell", "    args: {command: run}"]
        if targets:
            lines.append("    next: [" + ", ".join(f"{{step: {t}}}" for t in targets) + "]")
    return source + "\n" + "\n".join(lines), predecessors, finally_predecessors


@settings(max_examples=150, deadline=None)
@given(
    with_finally(),
    st.randoms(use_true_random=False),
    st.floats(0, 0.4),
    st.one_of(st.none(), st.integers(0, 20)),
)
def test_finally_runs_once_after_the_workflow_and_never_hides_its_outcome(
    dag, rng: random.Random, failure_rate: float, cancel_after: int | None
):
    source, predecessors, finally_predecessors = dag
    world = Checked(source, {**predecessors, **finally_predecessors})
    world.roundtrip = True  # the state read back from JSON before every event, as after a crash
    finally_steps = set(finally_predecessors)
    overlap: list[str] = []

    def decide(command):
        if command.step in finally_steps:
            busy = [name for name in world.state.active if name not in finally_steps]
            overlap.extend(busy)  # a finally step running beside a workflow step
        return rng.random() >= failure_rate, "x"

    world.start()
    cancelled = False
    for _ in range(cancel_after if cancel_after is not None else 0):
        if world.finished or not world.running or world.state.ending is not None:
            break
        key = rng.choice(list(world.running))
        ok, value = decide(world.running[key])
        world.succeed(key) if ok else world.fail(key, str(value))
    else:
        if cancel_after is not None and world.state.ending is None and not world.finished:
            world.cancel()
            cancelled = True
    finished = world.run_to_end(decide, rng=rng)

    starts = world.started_steps()
    assert len(starts) == len(set(starts))
    assert world.violations == []
    assert overlap == []
    finally_failed = [name for name in world.state.failed if name in finally_steps]
    workflow_failed = [name for name in world.state.failed if name not in finally_steps]
    if not finally_failed:
        assert finally_steps <= set(starts)  # all of them ran, whatever the workflow did
    if cancelled:
        assert finished.phase == "Cancelled"
    elif workflow_failed:
        assert finished.phase == "Failed"
        assert finished.error.startswith(f"step {workflow_failed[0]!r} failed")
    else:
        assert finished.phase == ("Failed" if finally_failed else "Succeeded")


@settings(max_examples=150, deadline=None)
@given(with_finally(), st.integers(0, 2**32), st.floats(0, 0.3))
def test_nothing_starts_while_suspended_and_resuming_loses_nothing(
    dag, seed: int, failure_rate: float
):
    rng = random.Random(seed)  # many draws: a seed keeps hypothesis' examples small
    source, predecessors, finally_predecessors = dag
    world = Checked(source, {**predecessors, **finally_predecessors})
    world.roundtrip = True
    started_while_suspended: list[str] = []
    world.start()
    for _ in range(10_000):
        if world.finished:
            break
        if rng.random() < 0.3:
            suspended = world.state.suspended is not None
            event = ResumeRequested if suspended else SuspendRequested
            commands = world.send(event(at=world.tick()))
            if not suspended:
                assert commands == []
        elif world.running:
            key = rng.choice(list(world.running))
            commands = world.succeed(key) if rng.random() >= failure_rate else world.fail(key, "x")
        elif world.timers:
            commands = world.fire(min(world.timers, key=world.timers.__getitem__))
        else:
            assert world.state.suspended is not None, "stuck while not suspended"
            commands = world.send(ResumeRequested(at=world.tick()))
            continue
        if world.state.suspended is not None:
            started_while_suspended += [c.key for c in commands if isinstance(c, StartStep)]
    assert world.finished is not None
    assert started_while_suspended == []
    starts = world.started_steps()
    assert len(starts) == len(set(starts))
    assert world.violations == []
    assert (world.finished.phase == "Failed") == bool(world.state.failed)
