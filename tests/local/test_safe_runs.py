"""`noetl run` when playbooks misbehave: clean failures instead of tracebacks, recursion that
stops, loops that keep what succeeded, and values that reach shell commands intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noetl.local.eventlog import run_log_path
from noetl.local.resolver import DirectoryResolver
from tests.local.test_cli import events, noetl, write


def run_json(tmp_path: Path, file: Path, *args: str) -> dict[str, Any]:
    result = noetl("run", "--json", str(file), *args, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    return dict(json.loads(result.stdout))


OUROBOROS = """
name: ouroboros
workflow:
  - step: start
    next: [{step: again}]
  - step: again
    tool: playbook
    args: {name: ouroboros}
"""


def test_a_playbook_that_calls_itself_stops_at_the_depth_limit(tmp_path):
    file = write(
        tmp_path,
        OUROBOROS,
        "ouroboros.yaml",
    )
    summary = run_json(tmp_path, file, "--max-depth", "3")
    assert summary["phase"] == "Failed"
    assert summary["error"].endswith(
        "child playbook 'ouroboros' not started: it would be nested 4 deep, over the limit of 3"
        " (does a playbook call itself?)"
    )
    children = [e for e in events(tmp_path, summary) if e["type"] == "StartChildExecution"]
    assert len(children) == 3
    assert noetl("validate", str(file), cwd=tmp_path).returncode == 2  # found before running


def test_the_default_depth_limit_is_ten(tmp_path):
    file = write(
        tmp_path,
        OUROBOROS,
        "ouroboros.yaml",
    )
    summary = run_json(tmp_path, file)
    assert "over the limit of 10" in summary["error"]
    assert len(summary["error"]) < 2100  # nested errors are cut at each level


def test_args_that_render_to_the_wrong_type_fail_the_step_naming_the_field(tmp_path):
    file = write(
        tmp_path,
        """
        name: wrong-types
        workload: {s: abc}
        workflow:
          - step: start
            next: [{step: fetch}, {step: child}]
          - step: fetch
            tool: http
            args: {url: "http://127.0.0.1:9/", timeout: "{{ workload.s }}"}
            onError: continue
          - step: child
            tool: playbook
            args: {name: wrong-types, workload: "{{ workload.s }}"}
            onError: continue
        output: {fetch: "{{ fetch.error }}", child: "{{ child.error }}"}
        """,
    )
    summary = run_json(tmp_path, file)
    assert summary["result"] == {
        "fetch": "args.timeout rendered wrong: expected a valid number,"
        " unable to parse string as a number, got 'abc'",
        "child": "args.workload rendered wrong: expected a valid dictionary, got 'abc'",
    }


NESTED = "{% for a in items %}{% for b in items %}{% for c in items %}"


def test_nested_loops_over_a_large_result_fail_the_step_naming_the_expression(tmp_path):
    command = f"echo {NESTED}{{% endfor %}}{{% endfor %}}{{% endfor %}}"
    file = write(
        tmp_path,
        f"""
        name: nested
        workflow:
          - step: start
            next: [{{step: items}}]
          - step: items
            tool: python
            code: "result = list(range(10000))"
            next: [{{step: cube}}]
          - step: cube
            tool: shell
            args: {{command: {json.dumps(command)}}}
        """,
    )
    summary = run_json(tmp_path, file)
    assert summary["phase"] == "Failed"
    assert summary["error"].startswith(
        f"step 'cube' failed: args: template {command!r}: over the template limits:"
        " more than 1,000,000 units of work"
    )


def test_a_loop_that_continues_on_error_keeps_the_items_that_succeeded(tmp_path):
    file = write(
        tmp_path,
        """
        name: keep
        workflow:
          - step: start
            next: [{step: each}]
          - step: each
            tool: shell
            loop: {in: [1, 2, 3, 4], maxFailures: 1}
            args: {command: "test {{ item }} != 2 && echo {{ item }}"}
            next: [{step: strict}]
          - step: strict
            tool: shell
            loop: {in: [1, 2, 3]}
            args: {command: "test {{ item }} != 2 && echo {{ item }}"}
            onError: continue
        output: {each: "{{ each }}", strict: "{{ strict.result }}"}
        """,
    )
    summary = run_json(tmp_path, file)
    each, strict = summary["result"]["each"], summary["result"]["strict"]
    assert [r and r["stdout"] for r in each["results"]] == ["1", None, "3", "4"]
    assert [e["index"] for e in each["errors"]] == [1]
    assert [r and r["stdout"] for r in strict["results"]] == ["1", None, None]
    assert strict["errors"] == [{"index": 1, "error": "command exited with code 1"}]


def test_values_reach_the_shell_intact_by_env_or_by_shquote(tmp_path):
    nasty = 'it\'s $HOME; `touch pwned` "q" \\ \n end'
    file = write(
        tmp_path,
        """
        name: quoting
        workflow:
          - step: start
            next: [{step: by_env}, {step: by_quote}]
          - step: by_env
            tool: shell
            args:
              env: {VALUE: "{{ workload.value }}"}
              command: printf '%s' "$VALUE"
          - step: by_quote
            tool: shell
            args: {command: "printf '%s' {{ workload.value | shquote }}"}
        output: ["{{ by_env.stdout }}", "{{ by_quote.stdout }}"]
        """,
    )
    (tmp_path / "workload.json").write_text(json.dumps({"value": nasty}))
    summary = run_json(tmp_path, file, "--workload-file", "workload.json")
    assert summary["result"] == [nasty.removesuffix("\n"), nasty.removesuffix("\n")]
    assert not (tmp_path / "pwned").exists()


def test_a_secret_file_is_read_as_dotenv(tmp_path):
    (tmp_path / "api.env").write_text(
        "# the API's credentials\n"
        'export API_USER="ada lovelace"  # who\n'
        "API_TOKEN='s3cr#t'\n"
        'API_NOTE="line one\\nline two"\n'
    )
    file = write(
        tmp_path,
        """
        name: secrets
        workflow:
          - step: start
            next: [{step: show}]
          - step: show
            tool: shell
            args:
              secretRef: api
              command: |
                [ "$API_USER" = "ada lovelace" ] && [ "$API_TOKEN" = 's3cr#t' ] &&
                  [ "$API_NOTE" = "$(printf 'line one\\nline two')" ] && echo parsed as dotenv
        """,
    )
    # The values themselves would show masked (***) in the result: the shell compares them.
    summary = run_json(tmp_path, file, "--secret", "api=api.env")
    assert summary["result"]["stdout"] == "parsed as dotenv"


def test_a_run_log_is_named_inside_its_directory_whatever_the_playbook_is_called(tmp_path):
    runs = tmp_path / ".noetl" / "runs"
    for hostile in ("../../x-1234abcd", "/etc/passwd", "..", "a/../../b", ""):
        path = run_log_path(runs, hostile)
        assert path.parent == runs
        assert not path.name.startswith(".")


def test_children_found_by_metadata_name_are_indexed_once(tmp_path):
    for i in range(5):
        (tmp_path / f"file-{i}.yaml").write_text(f"name: child-{i}\nworkflow:\n  - step: start\n")
    (tmp_path / "broken.yaml").write_text("workflow: 7\n")
    resolve = DirectoryResolver(tmp_path)
    assert resolve("child-3").name == "child-3"
    for path in tmp_path.glob("*.yaml"):
        path.unlink()  # what was read stays known for the rest of the run
    assert [resolve(f"child-{i}").name for i in range(5)] == [f"child-{i}" for i in range(5)]
    try:
        resolve("../file-1")
    except LookupError as error:
        assert "a name is not a path" in str(error)
    else:
        raise AssertionError("a path was taken for a name")
