"""The container tool: any image as a step. No plugin code runs in it; this module says how its
environment is made and how its end is read, for both shells (the operator runs it as a Job's
container, the local runner through podman or docker).

Result: the JSON the container wrote to its termination-message file (/dev/termination-log);
text there that is not JSON is kept as a string; with nothing there, `{"stdout": ...}`. A non-zero
exit fails the step, naming the code and the last line the container wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from noetl.plugins.messages import Outcome

TERMINATION_LOG = "/dev/termination-log"
NON_ROOT_USER = 65532


def environment(args: Mapping[str, Any]) -> dict[str, str]:
    """The container's environment variables: values that are not strings as JSON."""
    env = args.get("env") or {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in env.items()}


def outcome(exit_code: int | None, message: str, stdout: str, stderr: str = "") -> Outcome:
    """What an ended container says, from its exit code, termination message and output."""
    if exit_code not in (0, None):
        last = (stderr or message or stdout).strip().rpartition("\n")[2].strip()
        error = f"container exited with code {exit_code}" + (f": {last}" if last else "")
        return Outcome(ok=False, error=error)
    if not message.strip():
        return Outcome(ok=True, result={"stdout": stdout.removesuffix("\n")})
    try:
        return Outcome(ok=True, result=json.loads(message))
    except ValueError:
        return Outcome(ok=True, result=message)
