"""`noetl retry` and `noetl resubmit` of a local run, from its event log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.local.test_cli import noetl

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def _summary(completed: Any) -> dict[str, Any]:
    assert completed.stdout, completed.stderr
    return dict(json.loads(completed.stdout))


def _started(tmp_path: Path, summary: dict[str, Any]) -> list[str]:
    lines = (tmp_path / summary["eventLog"]).read_text().splitlines()
    return [
        f"{r['step']}[{r['index']}]" if r["index"] is not None else r["step"]
        for r in map(json.loads, lines)
        if r["type"] == "StartStep"
    ]


def test_a_retry_runs_only_the_failed_item_with_the_override(tmp_path):
    failed = noetl(
        "run", "--json", str(PLAYBOOKS / "rerun.yaml"), "--set", "broken=2", cwd=tmp_path
    )
    first = _summary(failed)
    assert (failed.returncode, first["phase"]) == (1, "Failed")
    assert (
        first["error"]
        == "step 'each' failed: item 1 failed: command exited with code 1: item 2 is broken"
    )
    retried = noetl("retry", "--json", first["eventLog"], "--set", "broken=0", cwd=tmp_path)
    second = _summary(retried)
    assert (retried.returncode, second["phase"], second["result"]) == (0, "Succeeded", {"total": 6})
    assert _started(tmp_path, second) == ["each[1]"]
    header = json.loads((tmp_path / second["eventLog"]).read_text().splitlines()[0])
    assert (header["retryOf"], header["workload"]) == (first["execution"], {"broken": 0})


def test_a_retry_without_override_fails_the_same_way_and_keeps_the_same_items(tmp_path):
    first = _summary(
        noetl("run", "--json", str(PLAYBOOKS / "rerun.yaml"), "--set", "broken=3", cwd=tmp_path)
    )
    second = _summary(noetl("retry", "--json", first["eventLog"], cwd=tmp_path))
    assert (second["phase"], second["error"]) == ("Failed", first["error"])
    assert _started(tmp_path, second) == ["each[2]"]


def test_a_retry_of_a_retry_keeps_what_both_runs_did(tmp_path):
    first = _summary(
        noetl("run", "--json", str(PLAYBOOKS / "rerun.yaml"), "--set", "broken=2", cwd=tmp_path)
    )
    second = _summary(noetl("retry", "--json", first["eventLog"], cwd=tmp_path))
    assert _started(tmp_path, second) == ["each[1]"]
    (tmp_path / "elsewhere").mkdir()  # --event-log names a directory: the log goes in it
    retried = noetl(
        "retry",
        "--json",
        second["eventLog"],
        "--set",
        "broken=0",
        "--event-log",
        "elsewhere",
        cwd=tmp_path,
    )
    third = _summary(retried)
    assert third["eventLog"] == f"elsewhere/{third['execution']}.jsonl"
    assert (third["phase"], third["result"]) == ("Succeeded", {"total": 6})
    assert _started(tmp_path, third) == ["each[1]"]  # items 0 and 2: kept from the first run


def test_resubmit_runs_everything_again(tmp_path):
    first = _summary(noetl("run", "--json", str(PLAYBOOKS / "rerun.yaml"), cwd=tmp_path))
    again = noetl("resubmit", "--json", first["eventLog"], "--set", "numbers=[4, 5]", cwd=tmp_path)
    second = _summary(again)
    assert (second["phase"], second["result"]) == ("Succeeded", {"total": 9})
    assert _started(tmp_path, second) == ["each[0]", "each[1]"]
    assert second["execution"] != first["execution"]


def test_retry_of_a_file_that_is_no_run_log_is_refused(tmp_path):
    (tmp_path / "notes.jsonl").write_text('{"type": "Other"}\n')
    refused = noetl("retry", str(tmp_path / "notes.jsonl"), cwd=tmp_path)
    assert refused.returncode == 1
    assert "no run header" in refused.stderr
