"""Operator shell: playbooks validated in a worker process, within a time and memory budget.

The operator's event loop drives every Execution; these tests show that validating a hostile
playbook leaves it running (a heartbeat task keeps ticking) and ends in a clear Invalid.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest

from noetl.playbook import PlaybookInvalid
from noetl.playbook.budget import BudgetedValidator


def playbook(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Playbook",
        "metadata": {"name": "p"},
        "spec": {
            "workflow": [
                {"step": "start", "next": [{"step": "work"}]},
                {"step": "work", "tool": "shell", "args": args},
            ]
        },
    }


# Each template spins through the whole per-render loop budget: bounded, but many are slow.
SPIN = "{% for i in range(900) %}{% for j in range(990) %}{% endfor %}{% endfor %}"


@pytest.fixture
async def validator() -> AsyncIterator[BudgetedValidator]:
    validator = BudgetedValidator(timeout=0.5)
    yield validator
    validator.close()


async def ticks_while(awaitable: Awaitable[Any]) -> tuple[int, Any]:
    """How often a heartbeat task ran while `awaitable` was awaited, and its outcome."""
    ticks = 0

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    beating = asyncio.create_task(heartbeat())
    try:
        outcome: Any = await awaitable
    except PlaybookInvalid as invalid:
        outcome = invalid
    finally:
        beating.cancel()
    return ticks, outcome


async def test_a_hostile_template_is_invalid_and_the_loop_keeps_running(validator):
    hostile = playbook({"command": "echo {{ (9 ** (9 ** 8)) % 7 }}"})
    ticks, outcome = await ticks_while(validator.parse(hostile, "hostile"))
    assert isinstance(outcome, PlaybookInvalid)
    [error] = outcome.errors
    assert error.path == "spec.workflow[1].args.command"
    assert "over the template limits" in error.message
    assert ticks > 0


async def test_a_playbook_over_the_time_budget_is_invalid_and_the_worker_replaced(validator):
    slow = playbook({f"a{i}": SPIN for i in range(100)})
    ticks, outcome = await ticks_while(validator.parse(slow, "slow"))
    assert isinstance(outcome, PlaybookInvalid)
    assert [(e.path, e.message) for e in outcome.errors] == [
        ("spec", "validation took longer than its 0.5 s")
    ]
    assert ticks > 0
    valid = await validator.parse(playbook({"command": "echo {{ workload.n * 2 }}"}), "valid")
    assert list(valid.steps) == ["start", "work"]


async def test_a_playbook_over_the_memory_budget_is_invalid_and_the_worker_replaced():
    # 80 MB of text: more than a worker capped at 128 MiB can receive and validate.
    huge = playbook({f"a{i}": "x" * 40_000 for i in range(2_000)})
    validator = BudgetedValidator(memory_bytes=128 * 2**20)
    try:
        ticks, outcome = await ticks_while(validator.parse(huge, "huge"))
        assert isinstance(outcome, PlaybookInvalid)
        [error] = outcome.errors
        assert error.path == "spec"
        assert "memory" in error.message
        assert ticks > 0
        valid = await validator.parse(playbook({"command": "echo ok"}), "valid")
        assert list(valid.steps) == ["start", "work"]
    finally:
        validator.close()
