"""Local shell: `noetl run` reads playbooks, `--workload-file`, `--set` and `--set-string` values
as users mean them (YAML 1.2 core schema), and a python step receives them as JSON."""

from __future__ import annotations

import json

from tests.local.test_cli import noetl, write

ECHO_WORKLOAD = """\
    kind: Playbook
    name: values
    workload:
      day: 2024-05-01
      answer: NO
    workflow:
      - step: start
        next: [{step: echo}]
      - step: echo
        tool: python
        code: |
          def main(workload):
              return workload
        args: {workload: "{{ workload }}"}
    """


def run_json(*args: str, cwd) -> dict:
    result = noetl("run", "--json", *args, cwd=cwd)
    summary = json.loads(result.stdout)
    assert summary["phase"] == "Succeeded", summary
    return summary["result"]


def test_dates_and_words_reach_a_python_step_as_the_strings_written(tmp_path):
    path = write(tmp_path, ECHO_WORKLOAD)
    assert run_json(str(path), cwd=tmp_path) == {"day": "2024-05-01", "answer": "NO"}


def test_set_and_workload_file_values_follow_the_same_rules(tmp_path):
    path = write(tmp_path, ECHO_WORKLOAD)
    values = write(tmp_path, "at: 12:30\nzip: 02134\nflag: on\n", "values.yaml")
    result = run_json(
        str(path),
        "--workload-file",
        str(values),
        "--set",
        "day=2025-01-02",
        "--set",
        "n=0o10",
        "--set",
        "ok=true",
        cwd=tmp_path,
    )
    assert result == {
        "day": "2025-01-02",
        "answer": "NO",
        "at": "12:30",
        "zip": 2134,
        "flag": "on",
        "n": 8,
        "ok": True,
    }


def test_set_string_takes_the_value_verbatim_and_wins_over_set(tmp_path):
    path = write(tmp_path, ECHO_WORKLOAD)
    result = run_json(
        str(path),
        "--set",
        "zip=1",
        "--set-string",
        "zip=02134",
        "--set-string",
        "list=[a, b]",
        cwd=tmp_path,
    )
    assert result == {"day": "2024-05-01", "answer": "NO", "zip": "02134", "list": "[a, b]"}


def test_a_workload_file_with_a_duplicate_key_is_refused_with_its_line(tmp_path):
    path = write(tmp_path, ECHO_WORKLOAD)
    values = write(tmp_path, "a: 1\na: 2\n", "values.yaml")
    result = noetl("run", str(path), "--workload-file", str(values), cwd=tmp_path)
    assert result.returncode == 2
    assert "not valid YAML: line 2, column 1: duplicate key 'a' (first on line 1)" in result.stderr
