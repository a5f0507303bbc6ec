"""The shell plugin: `args.command` run by `sh -c`, its output and exit code as the result.

Result: `{"stdout": str, "stderr": str, "exitCode": int}`. Output is decoded as UTF-8 (bad bytes
replaced) and loses exactly one trailing newline, so `echo hi` gives "hi". A non-zero exit is a
failure that still carries the result. `args.env` (values that are not strings become JSON text)
is laid over the step's environment; `args.cwd` sets the working directory.

The step ends when its shell exits: whatever the command left running in its session (`sleep
400 &`) is killed then, and the output is what was written by that time. In a container the
output is also printed, for the pod's log; run locally (noetl.plugins.worker) it is not. Either
way it is the end of the step's log the runtime keeps (logtail.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from noetl.plugins import logtail, runtime
from noetl.plugins.masking import Mask
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
    """Run the command to its shell's end; what it left running in its session is killed."""
    outcome = execute_command(request)
    # Not printed (the local runner's terminal is not the step's), but kept as its log's tail.
    for name in ("stdout", "stderr"):
        logtail.record(outcome.result[name])
    if not outcome.ok:
        raise PluginError(outcome.error or "command failed", outcome.result)
    return outcome.result


def execute_command(request: StepRequest) -> Outcome:
    """The command's outcome. Its output goes to files, not pipes: a process it left in the
    background (`sleep 400 &`) would hold a pipe open, and the step with it."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                command_argv(request.args),
                env=command_env(request),
                cwd=request.args.get("cwd"),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError as error:  # e.g. args.cwd does not exist
            raise PluginError(
                f"cannot start the command: {error.strerror}: {error.filename}"
            ) from None
        try:
            # WNOWAIT: until reaped, the shell's pid names its session and nothing else.
            os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        stdout.seek(0)
        stderr.seek(0)
        return shell_outcome(process.returncode, stdout.read(), stderr.read())


def _run_in_container(request: StepRequest) -> Any:
    # The output is the result, and also the container's log, where `noetl logs` finds it.
    outcome = execute_command(request)
    mask = Mask.of(request)
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        if outcome.result[name]:
            stream.write(mask.text(outcome.result[name]) + "\n")
            stream.flush()
    if not outcome.ok:
        raise PluginError(outcome.error or "command failed", outcome.result)
    return outcome.result


if __name__ == "__main__":
    raise SystemExit(runtime.main(_run_in_container))
