"""The plugin runtime: run one step's plugin and report how it went, in a container or a worker.

A plugin is a module `noetl.plugins.<kind>` with `run(request) -> result` (JSON). `execute`
turns every way a run can end into an Outcome; the local worker pool calls it directly. `main` is
the container entry point: it reads the request from the environment or a file, executes, and
reports through the termination message and the log (the envelope, see envelope.py). The
termination message is the file Kubernetes reads it from, the container's terminationMessagePath
(/dev/termination-log, which step Jobs name); NOETL_TERMINATION_LOG names another file, for runs
outside a pod. This module is the one the rest of NoETL imports: it re-exports the request and
outcome types and `read_outcome`, the operator's way back from a finished container to an Outcome.

In a container the step's Secret is a mounted directory (SECRET_DIR, one file per key): `main`
exports its files as env vars to the step and masks their values in the outcome (masking.py),
the end of its output (`Outcome.log`, logtail.py) included.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from noetl.plugins import logtail
from noetl.plugins.envelope import dumps, encode, log_block, read_outcome
from noetl.plugins.logtail import OutputTail
from noetl.plugins.masking import Mask
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
    "read_secrets",
]

INPUT_JSON_VAR = "NOETL_INPUT_JSON"
INPUT_VAR = "NOETL_INPUT"
DEFAULT_INPUT = "/var/run/noetl/input.json"
DEFAULT_TERMINATION = "/dev/termination-log"  # Kubernetes' default terminationMessagePath
TERMINATION_VAR = "NOETL_TERMINATION_LOG"  # another file instead, outside a pod
SECRET_DIR_VAR = "NOETL_SECRET_DIR"
SECRET_DIR = "/var/run/secrets/noetl/step"

Plugin = Callable[[StepRequest], Any]


def execute(run: Plugin, request: StepRequest) -> Outcome:
    """Run a plugin on a request; whatever happens, come back with an Outcome, secrets masked,
    and the end of what it printed (its `log`)."""
    mask = Mask.of(request)
    with OutputTail() as output:
        outcome = _outcome(run, request, mask)
    tail = logtail.bounded(mask.text(output.text()))
    return dataclasses.replace(outcome, log=tail or None)


def _outcome(run: Plugin, request: StepRequest, mask: Mask) -> Outcome:
    try:
        result = run(request)
    except PluginError as exc:
        return _failure(mask, exc.message, exc.result)
    except Exception as exc:
        # The traceback is for the log; the error itself stays one line.
        sys.stderr.write(mask.text(traceback.format_exc()))
        return _failure(mask, f"{type(exc).__name__}: {exc}")
    problem = _not_json(result)
    if problem is not None:
        return _failure(mask, f"the step's result is not JSON-serialisable: {problem}")
    return Outcome(ok=True, result=mask.json(result))


def _failure(mask: Mask, error: str, result: Any = None) -> Outcome:
    problem = _not_json(result)
    if problem is not None:
        error, result = f"{error} (its result is dropped: {problem})", None
    return Outcome(ok=False, result=mask.json(result), error=mask.text(error))


def _not_json(result: Any) -> str | None:
    try:
        dumps(result)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def read_request(env: Mapping[str, str], secrets: Mapping[str, str] | None = None) -> StepRequest:
    """The container's request: JSON in NOETL_INPUT_JSON, else in the file NOETL_INPUT names."""
    text = env.get(INPUT_JSON_VAR)
    if text is None:
        text = Path(env.get(INPUT_VAR, DEFAULT_INPUT)).read_text(encoding="utf-8")
    return StepRequest.from_json(json.loads(text), env=env, secrets=secrets)


def read_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The step's Secret as mounted in the pod: a file per key (none mounted: no secrets)."""
    directory = Path(env.get(SECRET_DIR_VAR, SECRET_DIR))
    if not directory.is_dir():
        return {}
    # The kubelet keeps the data under `..data` and links each key to it: skip its `..` entries.
    return {
        path.name: path.read_bytes().decode("utf-8", errors="surrogateescape")
        for path in sorted(directory.iterdir())
        if not path.name.startswith("..") and path.is_file()
    }


def main(run: Plugin) -> int:
    """Container entry point: read, execute, report; the exit code is 0 exactly on success."""
    if os.getpid() == 1:
        # As a container's first process, the kernel ignores signals it has no handler for: a
        # cancelled or deleted step would sit out the pod's whole grace period. Stop at once;
        # ending PID 1 ends every process the step started in the container with it.
        signal.signal(signal.SIGTERM, lambda *_: os._exit(128 + signal.SIGTERM))
    try:
        secrets = read_secrets(os.environ)
        os.environ.update(secrets)  # the step and its subprocesses see them as env vars
        request = read_request(os.environ, secrets)
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
