"""The plugin runtime: execute, the request's JSON, and the container protocol end to end.

The protocol tests run `python -m noetl.plugins.<kind>` as a real subprocess, as a pod would,
and read its outcome back with `read_outcome`, as the operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from noetl.plugins.envelope import BEGIN, END, ERROR_LIMIT, MESSAGE_LIMIT, clip
from noetl.plugins.runtime import (
    Outcome,
    PluginError,
    StepRequest,
    execute,
    read_outcome,
)
from tests.plugins import step

# execute ---------------------------------------------------------------------------------------


def test_a_plugin_error_keeps_its_result() -> None:
    def fail(request: StepRequest) -> Any:
        raise PluginError("no good", result={"partial": True})

    assert execute(fail, step("x")) == Outcome(ok=False, result={"partial": True}, error="no good")


def test_an_unexpected_exception_is_one_line_with_its_type(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def crash(request: StepRequest) -> Any:
        raise LookupError("where is it")

    outcome = execute(crash, step("x"))
    assert replace(outcome, log=None) == Outcome(ok=False, error="LookupError: where is it")
    assert outcome.log is not None and outcome.log.startswith("Traceback")  # kept in the tail
    assert "Traceback" in capsys.readouterr().err


def test_a_result_that_is_not_json_is_a_failure() -> None:
    assert execute(lambda r: float("nan"), step("x")).error == (
        "the step's result is not JSON-serialisable:"
        " Out of range float values are not JSON compliant"
    )


def test_a_failures_result_that_is_not_json_is_dropped() -> None:
    def fail(request: StepRequest) -> Any:
        raise PluginError("no good", result=object())

    outcome = execute(fail, step("x"))
    assert outcome.result is None
    assert outcome.error is not None
    assert outcome.error.startswith("no good (its result is dropped: Object of type object")


def test_secret_values_are_masked_by_value_whatever_their_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The plugin runtime, in the images and locally alike.
    secrets = {"DB_PW": "pw-hunter22", "X": "xylophone-77", "API_TOKEN": "tok-0123456789"}

    def leak(request: StepRequest) -> Any:
        raise PluginError(
            "login as xylophone-77 with pw-hunter22 failed",
            result={"stdout": "tok-0123456789", "nested": [{"pw-hunter22": "xylophone-77 ok"}]},
        )

    outcome = execute(leak, StepRequest("s", "x", {}, env=secrets, secrets=secrets))
    assert outcome == Outcome(
        ok=False,
        error="login as *** with *** failed",
        result={"stdout": "***", "nested": [{"***": "*** ok"}]},
    )
    succeeded = execute(lambda r: ["tok-0123456789"], StepRequest("s", "x", {}, secrets=secrets))
    assert succeeded.result == ["***"]


def test_secret_env_values_never_show_in_errors(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"API_TOKEN": "tok-12345", "PGPASSWORD": "hunter22", "HOME": "/root"}

    def leak(request: StepRequest) -> Any:
        raise ValueError("login with tok-12345 / hunter22 failed in /root")

    outcome = execute(leak, step("x", env=env))
    assert outcome.error == "ValueError: login with *** / *** failed in /root"
    assert "hunter22" not in capsys.readouterr().err


def test_request_json_round_trip_leaves_env_out() -> None:
    request = StepRequest(
        step="s", tool="python", args={"a": [1]}, code="x", attempt=2, index=3,
        execution={"id": "e", "name": "n"}, env={"SECRET": "v"},
    )  # fmt: skip
    data = request.to_json()
    assert "env" not in data
    assert StepRequest.from_json(json.loads(json.dumps(data)), env=request.env) == request


@pytest.mark.parametrize(
    ("data", "field"),
    [({"tool": "shell"}, "step"), ({"step": "s", "tool": "shell", "args": []}, "args"),
     ({"step": "s", "tool": "shell", "attempt": True}, "attempt")],
)  # fmt: skip
def test_request_from_bad_json_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"field '{field}'"):
        StepRequest.from_json(data)


# the envelope ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["x" * 10_000, "é" * 5_000, "\n" * 5_000, "\x00" * 3_000])
def test_clipped_errors_fit_in_chars_and_json_bytes(text: str) -> None:
    clipped = clip(text, ERROR_LIMIT)
    assert clipped.endswith("(truncated)")
    assert len(clipped) <= ERROR_LIMIT
    assert len(json.dumps(clipped, ensure_ascii=False).encode()) <= ERROR_LIMIT + 2


@pytest.mark.parametrize(
    ("message", "log", "why"),
    [
        (None, None, "the termination message is empty"),
        ("  \n", None, "the termination message is empty"),
        ("Error: OOMKilled", None, "the termination message is not JSON: 'Error: OOMKilled'"),
        ("[1, 2]", None, "the termination message is not an outcome: '[1, 2]'"),
        ('{"ok": "yes"}', None, "the termination message is not an outcome"),
        (
            '{"ok": true, "resultInLog": true}',
            None,
            "the result is in the log, and no log was given",
        ),
        ('{"ok": true, "resultInLog": true}', "no markers", "the result markers are missing"),
        (
            '{"ok": true, "resultInLog": true}',
            f"{END}\n1\n{BEGIN}",
            "the result markers are missing",
        ),
        ('{"ok": true, "resultInLog": true}', f"{BEGIN}\n{{oops\n{END}", "is not JSON"),
    ],
)
def test_read_outcome_of_garbage(message: str | None, log: str | None, why: str) -> None:
    outcome = read_outcome(message, log)
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.startswith("step finished without a readable result: ")
    assert why in outcome.error


# the container protocol, end to end -------------------------------------------------------------


@dataclass
class Finished:
    exit_code: int
    termination: str
    stdout: str
    stderr: str


def run_container(
    kind: str, request: dict[str, Any], tmp_path: Path, env: dict[str, str] | None = None
) -> Finished:
    termination = tmp_path / "termination-log"
    completed = subprocess.run(
        [sys.executable, "-m", f"noetl.plugins.{kind}"],
        env={**os.environ, **(env or {}), "NOETL_INPUT_JSON": json.dumps(request),
             "NOETL_TERMINATION_LOG": str(termination)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return Finished(
        completed.returncode, termination.read_text(), completed.stdout, completed.stderr
    )


def python_request(code: str, **args: Any) -> dict[str, Any]:
    return {"step": "s", "tool": "python", "args": args, "code": code, "attempt": 1,
            "index": None, "execution": {"id": "e1", "name": "demo"}}  # fmt: skip


def test_a_small_result_goes_in_the_termination_message(tmp_path: Path) -> None:
    done = run_container("python", python_request("def main(n): return {'n': n}", n=7), tmp_path)
    assert done.exit_code == 0
    assert json.loads(done.termination) == {"ok": True, "result": {"n": 7}}
    assert BEGIN not in done.stdout
    assert read_outcome(done.termination) == Outcome(ok=True, result={"n": 7})


def test_a_large_result_goes_to_the_log_between_markers(tmp_path: Path) -> None:
    # The step prints fake markers of its own, and its result quotes them: the last pair counts.
    code = (
        f"print('{BEGIN}'); print('[\"fake\"]'); print('{END}', end='')\n"
        f"result = {{'text': 'é' * 4000, 'quote': '{BEGIN} {END}'}}\n"
    )
    done = run_container("python", python_request(code), tmp_path)
    assert done.exit_code == 0
    envelope = json.loads(done.termination)
    assert envelope["ok"] is True and envelope["resultInLog"] is True
    assert "result" not in envelope
    assert len(done.termination.encode()) <= MESSAGE_LIMIT
    payload = done.stdout.rsplit(BEGIN, 1)[1].split(END)[0].strip()
    assert "\n" not in payload
    assert envelope["bytes"] == len(payload.encode())
    expected = {"text": "é" * 4000, "quote": f"{BEGIN} {END}"}
    printed = f'{BEGIN}\n["fake"]\n{END}'  # what the step printed is its log's tail
    assert read_outcome(done.termination, done.stdout) == Outcome(
        ok=True, result=expected, log=printed
    )


def test_a_failure_exits_1_with_its_error(tmp_path: Path) -> None:
    done = run_container(
        "python", python_request("def main():\n    raise RuntimeError('boom')"), tmp_path
    )
    assert done.exit_code == 1
    outcome = read_outcome(done.termination)
    assert replace(outcome, log=None) == Outcome(ok=False, error="RuntimeError: boom (line 2)")
    assert outcome.log is not None and outcome.log.endswith("RuntimeError: boom")


def test_a_failure_with_a_large_result_and_a_long_error(tmp_path: Path) -> None:
    command = (
        "head -c 5000 /dev/zero | tr '\\0' 'o'; yes 'e' | head -c 6000 | tr -d '\\n' >&2; exit 2"
    )
    request = {"step": "s", "tool": "shell", "args": {"command": command}}
    done = run_container("shell", request, tmp_path)
    assert done.exit_code == 1
    assert len(done.termination.encode()) <= MESSAGE_LIMIT
    outcome = read_outcome(done.termination, done.stdout)
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.startswith("command exited with code 2: eeee")
    assert outcome.error.endswith("(truncated)")
    assert outcome.result["stdout"] == "o" * 5000
    assert outcome.result["exitCode"] == 2


def test_the_request_can_come_from_a_file(tmp_path: Path) -> None:
    request = tmp_path / "input.json"
    request.write_text(
        json.dumps({"step": "s", "tool": "shell", "args": {"command": "echo $GREETING"}})
    )
    termination = tmp_path / "termination-log"
    env = {**os.environ, "GREETING": "hi", "NOETL_INPUT": str(request),
           "NOETL_TERMINATION_LOG": str(termination)}  # fmt: skip
    subprocess.run([sys.executable, "-m", "noetl.plugins.shell"], env=env, check=True, timeout=60)
    assert read_outcome(termination.read_text()).result == {
        "stdout": "hi",
        "stderr": "",
        "exitCode": 0,
    }


def test_an_unreadable_request_fails_the_step(tmp_path: Path) -> None:
    termination = tmp_path / "termination-log"
    env = {**os.environ, "NOETL_INPUT_JSON": "{not json", "NOETL_TERMINATION_LOG": str(termination)}
    completed = subprocess.run([sys.executable, "-m", "noetl.plugins.shell"], env=env, timeout=60)
    assert completed.returncode == 1
    error = read_outcome(termination.read_text()).error
    assert error is not None and error.startswith("cannot read the step request: ")


def secret_dir(tmp_path: Path) -> Path:
    """A Secret mounted as the kubelet does: files linked into a `..data` directory."""
    mounted = tmp_path / "secret"
    data = mounted / "..2026_11_29_00_00_00.000000001"
    data.mkdir(parents=True)
    values = {"DB_PW": "pw-hunter22", "X": "xylophone-77\n", "API_TOKEN": "tok-0123456789"}
    for key, value in values.items():
        (data / key).write_text(value)
        (mounted / key).symlink_to(Path("..data") / key)
    (mounted / "..data").symlink_to(data.name)
    return mounted


def test_a_mounted_secret_is_env_for_the_step_and_masked_everywhere(tmp_path: Path) -> None:
    # The plugin runtime as the images run it, a failing shell step printing its Secret.
    show = 'echo "$DB_PW $X $API_TOKEN"; echo "$DB_PW $X $API_TOKEN" >&2; exit 3'
    request = {"step": "s", "tool": "shell", "args": {"command": show}}
    done = run_container(
        "shell", request, tmp_path, env={"NOETL_SECRET_DIR": str(secret_dir(tmp_path))}
    )
    assert done.exit_code == 1
    assert json.loads(done.termination) == {
        "ok": False,
        "error": "command exited with code 3: ***",  # the last line, after X's newline
        "result": {"stdout": "*** *** ***", "stderr": "*** *** ***", "exitCode": 3},
        "log": "*** *** ***\n*** *** ***",  # what it printed, masked as well
    }
    for secret in ("pw-hunter22", "xylophone-77", "tok-0123456789"):
        assert secret not in done.stdout + done.stderr
    assert "*** *** ***" in done.stdout


def test_a_python_step_sees_its_mounted_secret_as_env_vars(tmp_path: Path) -> None:
    code = "import os\ndef main(n):\n    return [n, os.environ['API_TOKEN'] == 'tok-0123456789']"
    request = python_request(code, n=1, secretRef="api")
    done = run_container(
        "python", request, tmp_path, env={"NOETL_SECRET_DIR": str(secret_dir(tmp_path))}
    )
    assert json.loads(done.termination) == {"ok": True, "result": [1, True]}
