"""Status conditions in the Kubernetes shape: every field present, and a transition time that
moves only when the condition's status flips (Playbook, Execution, CronPlaybook alike)."""

from __future__ import annotations

from noetl.engine import ExecutionState
from noetl.kube.conditions import condition
from noetl.kube.playbooks import playbook_document, playbook_status
from noetl.kube.status import execution_status
from noetl.playbook import PlaybookInvalid, parse_playbook

FIELDS = {"type", "status", "observedGeneration", "reason", "message", "lastTransitionTime"}


def test_a_condition_has_every_field_and_keeps_its_time_while_its_status_holds():
    first = condition("Ready", "True", "Valid", "3 steps", 1, 1_000.0)
    assert set(first) == FIELDS and first["lastTransitionTime"] == "1970-01-01T00:16:40Z"
    same = condition("Ready", "True", "Valid", "4 steps", 2, 2_000.0, [first])
    assert same["lastTransitionTime"] == first["lastTransitionTime"]
    assert (same["observedGeneration"], same["message"]) == (2, "4 steps")
    flipped = condition("Ready", "False", "Invalid", "bad", 3, 3_000.0, [same])
    assert flipped["lastTransitionTime"] == "1970-01-01T00:50:00Z"


def checked(body: dict) -> dict:
    """The status the controller writes for `body`."""
    try:
        result = parse_playbook(playbook_document(body))
    except PlaybookInvalid as invalid:
        return playbook_status(body, invalid)
    return playbook_status(body, result)


def playbook(spec: dict, generation: int, status: dict | None = None) -> dict:
    body = {"metadata": {"name": "p", "generation": generation}, "spec": spec}
    if status is not None:
        body["status"] = status
    return body


def test_a_playbook_edited_but_still_valid_keeps_its_ready_time():
    valid = {"workflow": [{"step": "start"}]}
    first = checked(playbook(valid, 1))
    (ready,) = first["conditions"]
    assert set(ready) == FIELDS and ready["observedGeneration"] == 1
    first["conditions"][0]["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    edited = {"workflow": [{"step": "start", "next": [{"step": "end"}]}, {"step": "end"}]}
    second = checked(playbook(edited, 2, first))["conditions"][0]
    assert (second["lastTransitionTime"], second["observedGeneration"]) == (
        "2026-01-01T00:00:00Z",
        2,
    )
    broken = {"workflow": [{"step": "start", "next": [{"step": "nowhere"}]}]}
    third = checked(playbook(broken, 3, first))["conditions"][0]
    assert third["status"] == "False" and third["lastTransitionTime"] != "2026-01-01T00:00:00Z"


def test_an_executions_condition_moves_at_its_start_and_at_its_end():
    running = execution_status(ExecutionState(phase="Running", started_at=100.0), 4)
    (succeeded,) = running["conditions"]
    assert set(succeeded) == FIELDS and succeeded["observedGeneration"] == 4
    assert succeeded["lastTransitionTime"] == "1970-01-01T00:01:40Z"
    later = execution_status(
        ExecutionState(phase="Running", started_at=100.0, active={"a": None}), 4
    )
    assert later["conditions"][0]["lastTransitionTime"] == succeeded["lastTransitionTime"]
    done = execution_status(
        ExecutionState(phase="Succeeded", started_at=100.0, finished_at=160.0), 4
    )
    assert done["conditions"][0]["lastTransitionTime"] == "1970-01-01T00:02:40Z"
