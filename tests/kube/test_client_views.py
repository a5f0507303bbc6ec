"""What `noetl list` and `noetl get` print for Executions, from statuses the operator writes."""

from __future__ import annotations

from noetl.engine import ExecutionState
from noetl.kube.client import describe_long, execution_rows
from noetl.kube.status import execution_status
from noetl.tables import duration, table

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def execution(name: str, state: ExecutionState, created: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
        "spec": {"playbookRef": {"name": "hello"}},
        "status": execution_status(state, 1),
    }


def test_table_aligns_columns_and_marks_empty_cells():
    assert table(["A", "LONGER"], [["x", None], ["wide", 7]]).splitlines() == [
        "A     LONGER",
        "x     -",
        "wide  7",
    ]
    assert duration(3725.2) == "1h2m5s" and duration(42) == "42s"


def test_list_rows_give_running_executions_their_duration_so_far():
    running = execution(
        "hello-b", ExecutionState(phase="Running", started_at=T0), "2026-01-01T00:00:00Z"
    )
    done = execution(
        "hello-a",
        ExecutionState(phase="Succeeded", started_at=T0, finished_at=T0 + 65),
        "2026-01-01T00:00:00Z",
    )
    assert execution_rows([running, done], T0 + 30) == [
        ["hello-b", "hello", "Running", "2026-01-01T00:00:00Z", "30s"],
        ["hello-a", "hello", "Succeeded", "2026-01-01T00:00:00Z", "1m5s"],
    ]


def test_get_describes_the_execution_with_a_step_table():
    state = ExecutionState(phase="Failed", started_at=T0, finished_at=T0 + 9, error="step b: boom")
    described = execution("hello-c", state, "2026-01-01T00:00:00Z")
    described["status"]["steps"] = {
        "a": {
            "phase": "Succeeded",
            "startedAt": "2026-01-01T00:00:00Z",
            "finishedAt": "2026-01-01T00:00:04Z",
        },
        "b": {
            "phase": "Failed",
            "attempts": 2,
            "startedAt": "2026-01-01T00:00:04Z",
            "finishedAt": "2026-01-01T00:00:09Z",
            "message": "boom",
        },
    }
    text = describe_long(described, T0 + 60)
    assert "Phase:     Failed" in text and "Error:     step b: boom" in text
    assert "Duration:  9s" in text
    steps = text.split("Steps:\n", 1)[1].splitlines()
    assert steps[0].split() == [
        "STEP",
        "PHASE",
        "ATTEMPTS",
        "ITEMS",
        "STARTED",
        "DURATION",
        "MESSAGE",
    ]
    assert steps[1].split() == ["a", "Succeeded", "-", "-", "2026-01-01T00:00:00Z", "4s", "-"]
    assert steps[2].split() == ["b", "Failed", "2", "-", "2026-01-01T00:00:04Z", "5s", "boom"]
    conditions = text.split("Conditions:\n", 1)[1].split("Steps:")[0].splitlines()
    assert conditions[1].split()[:3] == ["Succeeded", "False", "Failed"]
