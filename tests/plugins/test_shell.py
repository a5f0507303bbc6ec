"""The shell plugin against real `sh` processes."""

from __future__ import annotations

import pytest

from noetl.plugins import shell
from noetl.plugins.runtime import Outcome, execute
from tests.plugins import step
from tests.processes import still_running


def run_shell(args: dict[str, object], env: dict[str, str] | None = None) -> Outcome:
    return execute(shell.run, step("shell", args, env=env))


def test_stdout_stderr_and_exit_code() -> None:
    outcome = run_shell({"command": "echo hello; echo oops >&2"})
    assert outcome == Outcome(
        ok=True, result={"stdout": "hello", "stderr": "oops", "exitCode": 0}, log="hello\noops"
    )


def test_only_one_trailing_newline_is_dropped() -> None:
    assert run_shell({"command": "printf 'a\\n\\n'"}).result["stdout"] == "a\n"


def test_non_zero_exit_fails_with_the_last_stderr_line_and_keeps_the_result() -> None:
    outcome = run_shell({"command": "echo partial; echo first >&2; echo 'last words' >&2; exit 3"})
    assert not outcome.ok
    assert outcome.error == "command exited with code 3: last words"
    assert outcome.result == {"stdout": "partial", "stderr": "first\nlast words", "exitCode": 3}


def test_non_zero_exit_without_stderr() -> None:
    assert run_shell({"command": "exit 7"}).error == "command exited with code 7"


def test_killed_by_a_signal() -> None:
    outcome = run_shell({"command": "kill -9 $$"})
    assert outcome.error == "command was killed by signal SIGKILL"
    assert outcome.result["exitCode"] == -9


def test_args_env_is_laid_over_the_step_env() -> None:
    outcome = run_shell(
        {
            "command": 'echo "$BASE $OVER $NUM $FLAG"',
            "env": {"OVER": "new", "NUM": 5, "FLAG": True},
        },
        env={"PATH": "/usr/bin:/bin", "BASE": "base", "OVER": "old"},
    )
    assert outcome.result["stdout"] == "base new 5 true"


def test_the_step_env_replaces_the_process_env() -> None:
    outcome = run_shell({"command": 'echo "[$HOME]"'}, env={"PATH": "/usr/bin:/bin"})
    assert outcome.result["stdout"] == "[]"


def test_cwd(tmp_path: object) -> None:
    assert run_shell({"command": "pwd", "cwd": str(tmp_path)}).result["stdout"] == str(tmp_path)


def test_invalid_utf8_is_replaced() -> None:
    assert run_shell({"command": "printf 'a\\377b'"}).result["stdout"] == "a\ufffdb"


@pytest.mark.parametrize("args", [{}, {"command": ""}, {"command": ["echo", "hi"]}])
def test_a_command_string_is_required(args: dict[str, object]) -> None:
    assert run_shell(args).error == "a shell step needs args.command, a string"


def test_shell_outcome_from_raw_output() -> None:
    outcome = shell.shell_outcome(1, b"out\n", b"warn\nfatal: no\n")
    assert outcome == Outcome(
        ok=False,
        result={"stdout": "out", "stderr": "warn\nfatal: no", "exitCode": 1},
        error="command exited with code 1: fatal: no",
    )


def test_command_argv() -> None:
    assert shell.command_argv({"command": "echo hi"}) == ["sh", "-c", "echo hi"]


def test_the_step_ends_with_its_shell_and_what_it_left_running_is_killed() -> None:
    # The shell plugin, as the images and the local runner run it.
    outcome = run_shell({"command": "sleep 400 & echo $!"})
    assert outcome.ok
    assert still_running({int(outcome.result["stdout"])}) == set()  # killed, not left to run


def test_a_command_that_cannot_start_is_one_line() -> None:
    outcome = run_shell({"command": "true", "cwd": "/no/such/dir"})
    assert outcome.error == "cannot start the command: No such file or directory: /no/such/dir"
