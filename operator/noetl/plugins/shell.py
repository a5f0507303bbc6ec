"""The shell plugin: `args.command` run by `sh -c`, its output and exit code as the result.

Result: `{"stdout": str, "stderr": str, "exitCode": int}`. Output is decoded as UTF-8 (bad bytes
replaced) and loses exactly one trailing newline, so `echo hi` gives "hi". A non-zero exit is a
failure that still carries the result. `args.env` (values that are not strings become JSON text)
is laid over the step's environment; `args.cwd` sets the working directory.

The pieces are public so the local runner can spawn the command itself under asyncio and still
build the same outcome: `command_argv`, `command_env`, `shell_outcome`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from noetl.plugins import runtime
from noetl.plugins.runtime import Outcome, PluginError, StepRequest


def command_argv(args: Mapping[str, Any]) -> list[str]:
    """The argv that runs the step's command."""
    command = args.get("command")
    if not isinstance(command, str) or not command.strip():
        raise PluginError("a shell step needs args.command, a string")
    return ["sh", "-c", command]


def command_env(request: StepRequest) -> dict[str, str]:
    """The command's environment: the step's, with `args.env` laid over it."""
    extra = request.args.get("env") or {}
    if not isinstance(extra, Mapping):
        raise PluginError("args.env must be a mapping of names to values")
    return {
        **request.env,
        **{str(k): v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()},
    }


def shell_outcome(exit_code: int, stdout: bytes, stderr: bytes) -> Outcome:
    """The outcome of a finished command, from its exit code and raw output."""
    out, err = _text(stdout), _text(stderr)
    result = {"stdout": out, "stderr": err, "exitCode": exit_code}
    if exit_code == 0:
        return Outcome(ok=True, result=result)
    if exit_code < 0:
        error = f"command was killed by signal {_signal_name(-exit_code)}"
    else:
        error = f"command exited with code {exit_code}"
    last_line = err.strip().rpartition("\n")[2].strip()
    return Outcome(ok=False, result=result, error=f"{error}: {last_line}" if last_line else error)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _text(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace")
    return text.removesuffix("\n")


def run(request: StepRequest) -> Any:
    completed = subprocess.run(
        command_argv(request.args),
        env=command_env(request),
        cwd=request.args.get("cwd"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    # The output is the result, and also the container's log, where `noetl logs` finds it.
    sys.stdout.buffer.write(completed.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(completed.stderr)
    sys.stderr.flush()
    outcome = shell_outcome(completed.returncode, completed.stdout, completed.stderr)
    if not outcome.ok:
        raise PluginError(outcome.error or "command failed", outcome.result)
    return outcome.result


if __name__ == "__main__":
    raise SystemExit(runtime.main(run))
