"""The plugin runtime: run one step's plugin and report how it went, in a container or a worker.

A plugin is a module `noetl.plugins.<kind>` with `run(request) -> result` (JSON). `execute`
turns every way a run can end into an Outcome; the local worker pool calls it directly. `main` is
the container entry point: it reads the request from the environment or a file, executes, and
reports through the termination message and the log (the envelope, see envelope.py). The
termination message is the file Kubernetes reads it from, the container's terminationMessagePath
(/dev/termination-log, which step Jobs name); NOETL_TERMINATION_LOG names another file, for runs
outside a pod. This module is the one the rest of NoETL imports: it re-exports the request and
outcome types and `read_outcome`, the operator's way back from a finished container to an Outcome.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from noetl.plugins.envelope import dumps, encode, log_block, read_outcome
from noetl.plugins.messages import Outcome, PluginError, StepRequest

__all__ = [
    "Outcome",
    "Plugin",
    "PluginError",
    "StepRequest",
    "execute",
    "main",
    "read_outcome",
    "read_request",
    "redact",
]

INPUT_JSON_VAR = "NOETL_INPUT_JSON"
INPUT_VAR = "NOETL_INPUT"
DEFAULT_INPUT = "/var/run/noetl/input.json"
DEFAULT_TERMINATION = "/dev/termination-log"  # Kubernetes' default terminationMessagePath
TERMINATION_VAR = "NOETL_TERMINATION_LOG"  # another file instead, outside a pod

Plugin = Callable[[StepRequest], Any]

# Secrets reach a step as env vars; a value under a name like these never shows in an error.
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|PRIVATE|DSN", re.IGNORECASE)


def execute(run: Plugin, request: StepRequest) -> Outcome:
    """Run a plugin on a request; whatever happens, come back with an Outcome."""
    try:
        result = run(request)
    except PluginError as exc:
        return _failure(request, exc.message, exc.result)
    except Exception as exc:
        # The traceback is for the log; the error itself stays one line.
        sys.stderr.write(redact(traceback.format_exc(), request.env))
        return _failure(request, f"{type(exc).__name__}: {exc}")
    problem = _not_json(result)
    if problem is not None:
        return _failure(request, f"the step's result is not JSON-serialisable: {problem}")
    return Outcome(ok=True, result=result)


def _failure(request: StepRequest, error: str, result: Any = None) -> Outcome:
    problem = _not_json(result)
    if problem is not None:
        error, result = f"{error} (its result is dropped: {problem})", None
    return Outcome(ok=False, result=result, error=redact(error, request.env))


def redact(text: str, env: Mapping[str, str]) -> str:
    """`text` with the value of every secret-looking env var replaced by `***`."""
    for name, value in env.items():
        if len(value) >= 4 and value in text and _SECRET_NAME.search(name):
            text = text.replace(value, "***")
    return text


def _not_json(result: Any) -> str | None:
    try:
        dumps(result)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def read_request(env: Mapping[str, str]) -> StepRequest:
    """The container's request: JSON in NOETL_INPUT_JSON, else in the file NOETL_INPUT names."""
    text = env.get(INPUT_JSON_VAR)
    if text is None:
        text = Path(env.get(INPUT_VAR, DEFAULT_INPUT)).read_text(encoding="utf-8")
    return StepRequest.from_json(json.loads(text), env=env)


def main(run: Plugin) -> int:
    """Container entry point: read, execute, report; the exit code is 0 exactly on success."""
    try:
        request = read_request(os.environ)
    except (OSError, ValueError) as exc:
        outcome = Outcome(ok=False, error=f"cannot read the step request: {exc}")
    else:
        outcome = execute(run, request)
    report(outcome, os.environ)
    return 0 if outcome.ok else 1


def report(outcome: Outcome, env: Mapping[str, str]) -> None:
    """Write the outcome's envelope to the termination file, a large result to stdout."""
    message, payload = encode(outcome)
    if payload is not None:
        sys.stdout.flush()  # whatever the step printed comes first
        sys.stdout.buffer.write(log_block(payload).encode())
        sys.stdout.buffer.flush()
    path = env.get(TERMINATION_VAR)
    if path is None and not os.path.exists(DEFAULT_TERMINATION):
        # Neither in a pod nor told where: the envelope goes to stdout, for a person or a script.
        print(message, flush=True)
    else:
        Path(path or DEFAULT_TERMINATION).write_text(message, encoding="utf-8")
