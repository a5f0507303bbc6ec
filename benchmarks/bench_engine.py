"""Engine cost per event and size of the recorded state, as playbooks grow.

    python benchmarks/bench_engine.py

Shapes: a chain of N tool steps, a fan-out of N parallel steps into one join, and one loop over
N items (parallel, 100 in flight). Each run drives the engine alone (no processes): every started
step succeeds at once. Prints µs per event and the JSON size of the state at the end (results
live in the result store, not in the state).
"""

from __future__ import annotations

import json
import time
from typing import Any

from noetl.engine import (
    Engine,
    ExecutionStarted,
    ExecutionState,
    StartStep,
    StepSucceeded,
)
from noetl.playbook import Playbook, parse_playbook


def chain(n: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"step": "start", "next": [{"step": "s1"}]}]
    for i in range(1, n + 1):
        following = f"s{i + 1}" if i < n else "end"
        steps.append(
            {
                "step": f"s{i}",
                "tool": "shell",
                "args": {"command": "echo {{ workload.x }}"},
                "next": [{"step": following}],
            }
        )
    steps.append({"step": "end"})
    return {"kind": "Playbook", "name": "chain", "workload": {"x": 1}, "workflow": steps}


def fan_out(n: int) -> dict[str, Any]:
    branches = [f"b{i}" for i in range(n)]
    steps: list[dict[str, Any]] = [{"step": "start", "next": [{"step": b} for b in branches]}]
    steps += [
        {"step": b, "tool": "shell", "args": {"command": "echo"}, "next": [{"step": "join"}]}
        for b in branches
    ]
    steps.append({"step": "join"})
    return {"kind": "Playbook", "name": "fan", "workflow": steps}


def loop(n: int) -> dict[str, Any]:
    return {
        "kind": "Playbook",
        "name": "loop",
        "workload": {"items": list(range(n))},
        "workflow": [
            {"step": "start", "next": [{"step": "each"}]},
            {
                "step": "each",
                "tool": "shell",
                "loop": {
                    "in": "{{ workload['items'] }}",
                    "iterator": "item",
                    "mode": "parallel",
                    "maxInFlight": 100,
                },
                "args": {"command": "echo {{ item }}"},
                "next": [{"step": "end"}],
            },
            {"step": "end"},
        ],
    }


def drive(playbook: Playbook) -> tuple[int, float, int]:
    """Run to the end; return (events, seconds spent in the engine, state bytes)."""
    engine = Engine(playbook)
    state, results = ExecutionState(), {}
    pending: list[StartStep] = []
    spent, events, clock = 0.0, 0, 0.0

    def handle(event: Any) -> None:
        nonlocal spent, events
        begin = time.perf_counter()
        commands = engine.handle(state, results, event)
        spent += time.perf_counter() - begin
        events += 1
        pending.extend(c for c in commands if isinstance(c, StartStep))

    handle(ExecutionStarted(at=clock))
    while pending:
        command = pending.pop(0)
        clock += 0.001
        handle(
            StepSucceeded(
                command.step,
                command.index,
                command.attempt,
                at=clock,
                result={"stdout": "ok\n", "stderr": "", "exitCode": 0},
            )
        )
    assert state.phase == "Succeeded", state.error
    return events, spent, len(json.dumps(state.to_dict()))


def main() -> None:
    print(f"{'shape':<10} {'size':>7} {'events':>7} {'us/event':>9} {'state bytes':>12}")
    for shape, build in (("chain", chain), ("fan-out", fan_out), ("loop", loop)):
        for n in (10, 100, 1_000, 10_000):
            playbook = parse_playbook(build(n))
            events, spent, size = drive(playbook)
            print(f"{shape:<10} {n:>7} {events:>7} {spent / events * 1e6:>9.1f} {size:>12}")


if __name__ == "__main__":
    main()
