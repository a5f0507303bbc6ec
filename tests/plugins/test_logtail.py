"""The end of a step's output: kept while it runs, passed through, bounded, masked, and sent in
the termination message with the room the result leaves."""

from __future__ import annotations

import json
import sys

import pytest

from noetl.plugins import logtail, shell
from noetl.plugins.envelope import ENVELOPE_LIMIT, MESSAGE_LIMIT, encode, read_outcome
from noetl.plugins.logtail import TAIL_BYTES, TAIL_LINES, WINDOW_CHARS, OutputTail, bounded
from noetl.plugins.runtime import Outcome, StepRequest, execute
from tests.plugins import step

SECRET = "s3cret-value"


def test_bounded_keeps_the_last_lines_then_the_last_bytes():
    lines = [f"line {i}" for i in range(200)]
    assert bounded("\n".join(lines) + "\n") == "\n".join(lines[-TAIL_LINES:])
    long_line = "é" * TAIL_BYTES  # two bytes each: cut in the middle of a character
    kept = bounded(f"first\n{long_line}")
    assert kept == "é" * (TAIL_BYTES // 2)
    assert len(kept.encode()) <= TAIL_BYTES
    assert bounded("") == ""


def test_prints_pass_through_and_are_kept(capsys: pytest.CaptureFixture[str]):
    with OutputTail() as output:
        print("to stdout")
        sys.stderr.write("to stderr\n")
        logtail.record("recorded, not printed")
    assert output.text() == "to stdout\nto stderr\nrecorded, not printed\n"
    assert capsys.readouterr() == ("to stdout\n", "to stderr\n")
    logtail.record("after the end: kept nowhere")
    assert "after" not in output.text()


def test_a_write_the_stream_refuses_is_not_kept(capsys: pytest.CaptureFixture[str]):
    with OutputTail() as output:
        with pytest.raises(TypeError):
            sys.stdout.write(b"bytes")  # type: ignore[arg-type]
        print("then text")
    assert output.text() == "then text\n"


def test_the_window_is_bounded_whatever_is_printed(capsys: pytest.CaptureFixture[str]):
    with OutputTail() as output:
        for i in range(20_000):
            print(f"line {i:08}")
    assert len(output.text()) == WINDOW_CHARS
    assert output.text().endswith("line 00019999\n")


def secret_request(tool: str, **fields: object) -> StepRequest:
    request = step(tool, **fields)  # type: ignore[arg-type]
    return StepRequest(**{**vars(request), "secrets": {"PW": SECRET}})


def test_a_step_tail_has_its_secrets_masked_and_is_bounded(capsys: pytest.CaptureFixture[str]):
    code = f"for i in range(100):\n    print('row', i)\nprint('pw is', {SECRET!r})\n"
    outcome = execute(lambda request: exec(request.code or ""), secret_request("python", code=code))
    assert outcome.log is not None
    lines = outcome.log.split("\n")
    assert len(lines) == TAIL_LINES
    assert lines[0] == "row 51" and lines[-1] == "pw is ***"
    assert SECRET not in outcome.log


def test_a_shell_steps_output_is_its_tail_masked(capsys: pytest.CaptureFixture[str]):
    command = f"echo out {SECRET}; echo err >&2; exit 4"
    outcome = execute(shell.run, secret_request("shell", args={"command": command}))
    assert not outcome.ok
    assert outcome.log == "out ***\nerr"
    assert capsys.readouterr() == ("", "")  # locally the command's output is not printed


def test_the_tail_takes_the_room_the_result_leaves_in_the_termination_message():
    log = "\n".join(f"log line {i:>30}" for i in range(TAIL_LINES))  # 2 KiB
    small = Outcome(ok=True, result={"n": 1}, log=log)
    message, payload = encode(small)
    assert payload is None and read_outcome(message) == small  # all of it fits

    # A result that fills the envelope: the tail is cut from its start, the result kept whole.
    result = "r" * (ENVELOPE_LIMIT - 40)
    message, payload = encode(Outcome(ok=True, result=result, log=log))
    assert payload is None
    assert len(message.encode()) <= MESSAGE_LIMIT
    back = read_outcome(message)
    assert back.result == result
    assert back.log is not None and back.log.startswith("(truncated) ... ")
    assert back.log.endswith(f"log line {TAIL_LINES - 1:>30}")
    assert len(back.log) < len(log)

    # A result sent in the log: the tail rides in the envelope, which says so.
    message, payload = encode(Outcome(ok=False, error="bad", result="x" * 5000, log=log))
    assert payload is not None and json.loads(message)["resultInLog"] is True
    assert read_outcome(message, f"::noetl-result-begin::\n{payload}\n::noetl-result-end::") == (
        Outcome(ok=False, error="bad", result="x" * 5000, log=log)
    )
