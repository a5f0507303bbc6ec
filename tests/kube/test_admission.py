"""Admission under spec.concurrency, decided from the Executions alone (no cluster): limits per
playbook and per semaphore, priority then age in the queue, Forbid and Replace."""

from __future__ import annotations

from typing import Any

import pytest

from noetl.kube.admission import Gate, decide, gates_of
from noetl.playbook import parse_playbook

PLAYBOOK = Gate("playbook/etl", 2)
SEMAPHORE = Gate("semaphore/db", 1)


def ex(
    name: str,
    created: str = "2026-01-01T00:00:00Z",
    gates: tuple[str, ...] = ("playbook/etl",),
    admitted: str | None = None,
    phase: str | None = None,
    priority: int = 0,
    cancel: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {"admission": {"gates": list(gates)}}
    if admitted:
        status["admission"]["admittedAt"] = admitted
    if phase:
        status["phase"] = phase
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"playbookRef": {"name": "etl"}, "priority": priority, "cancel": cancel},
        "status": status,
    }


RUNNING = "2026-01-01T00:00:05Z"


def test_free_slots_admit():
    me = ex("c")
    assert decide(me, [PLAYBOOK], [ex("a", admitted=RUNNING, phase="Running"), me]).admit


def test_full_gate_queues_with_the_reason():
    me = ex("c")
    running = [ex(n, admitted=RUNNING, phase="Running") for n in ("a", "b")]
    decision = decide(me, [PLAYBOOK], [*running, me])
    assert not decision.admit
    assert decision.reason == "waiting for playbook etl: 2 of 2 running, 0 ahead in the queue"


def test_finished_executions_free_their_slot():
    me = ex("c")
    done = [ex(n, admitted=RUNNING, phase="Succeeded") for n in ("a", "b")]
    assert decide(me, [PLAYBOOK], [*done, me]).admit


@pytest.mark.parametrize(
    ("me", "admitted"),
    [
        (ex("late", created="2026-01-01T00:00:09Z"), False),  # two older ones are ahead
        (ex("urgent", created="2026-01-01T00:00:09Z", priority=5), True),  # priority first
        (ex("first", created="2026-01-01T00:00:01Z"), True),  # the oldest of equal priority
    ],
)
def test_priority_then_age_order_the_queue(me: dict[str, Any], admitted: bool):
    queue = [
        ex("first", created="2026-01-01T00:00:01Z"),
        ex("second", created="2026-01-01T00:00:02Z"),
        ex("third", created="2026-01-01T00:00:03Z"),
    ]
    others = [q for q in queue if q["metadata"]["name"] != me["metadata"]["name"]]
    holder = ex("running", admitted=RUNNING, phase="Running")
    assert decide(me, [PLAYBOOK], [holder, *others, me]).admit is admitted


def test_after_a_restart_exactly_the_free_slots_are_taken():
    """Every waiting one decides on the same list: as many are admitted as slots are free."""
    waiting = [ex(f"w{i}", created=f"2026-01-01T00:00:0{i}Z") for i in range(5)]
    holder = ex("running", admitted=RUNNING, phase="Running")
    admitted = [
        w["metadata"]["name"] for w in waiting if decide(w, [PLAYBOOK], [holder, *waiting]).admit
    ]
    assert admitted == ["w0"]


def test_a_semaphore_is_shared_across_playbooks():
    other_playbook = ex("report", gates=("semaphore/db",), admitted=RUNNING, phase="Running")
    me = ex("etl-1", gates=("playbook/etl", "semaphore/db"))
    decision = decide(me, [PLAYBOOK, SEMAPHORE], [other_playbook, me])
    assert not decision.admit and "semaphore db: 1 of 1 running" in decision.reason


def test_forbid_refuses_and_replace_cancels_the_oldest():
    running = [
        ex("a", admitted="2026-01-01T00:00:05Z", phase="Running"),
        ex("b", admitted="2026-01-01T00:00:03Z", phase="Running"),
    ]
    me = ex("c")
    forbid = decide(me, [Gate("playbook/etl", 2, "Forbid")], [*running, me])
    assert forbid.refuse == "playbook etl: 2 of 2 running (concurrency.policy Forbid)"
    replace = decide(me, [Gate("playbook/etl", 2, "Replace")], [*running, me])
    assert (replace.admit, replace.cancel) == (False, ("b",))
    # Once b is cancelled, it is not cancelled again while it winds down.
    running[1]["spec"]["cancel"] = True
    assert decide(me, [Gate("playbook/etl", 2, "Replace")], [*running, me]).cancel == ()


def test_gates_come_from_the_playbook():
    playbook = parse_playbook(
        {
            "kind": "Playbook",
            "metadata": {"name": "etl"},
            "spec": {
                "workflow": [{"step": "start"}],
                "concurrency": {
                    "max": 2,
                    "policy": "Replace",
                    "semaphore": {"name": "db", "max": 1},
                },
            },
        }
    )
    assert gates_of(ex("x"), playbook) == [
        Gate("playbook/etl", 2, "Replace"),
        Gate("semaphore/db", 1),
    ]
    embedded = {"metadata": {"name": "y"}, "spec": {"playbook": {}}}
    assert gates_of(embedded, playbook) == [Gate("semaphore/db", 1)]


def test_a_backlog_nobody_looked_at_yet_is_admitted_by_priority():
    """Just created, or the operator just started: no gates written yet, same playbook."""
    backlog = [ex(f"b{i}", created=f"2026-01-01T00:00:0{i}Z") for i in range(3)]
    for execution in backlog:
        execution["status"] = {}
    backlog[2]["spec"]["priority"] = 1
    admitted = [
        e["metadata"]["name"]
        for e in backlog
        if decide(e, [Gate("playbook/etl", 1)], backlog).admit
    ]
    assert admitted == ["b2"]
