"""Plugin and worker-pool tests, against real processes and servers; `step` builds a request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from noetl.plugins.runtime import StepRequest


def step(
    tool: str,
    args: dict[str, Any] | None = None,
    code: str | None = None,
    env: Mapping[str, str] | None = None,
) -> StepRequest:
    """A request for one step, seeing this process's environment unless told otherwise."""
    return StepRequest(
        step="under_test",
        tool=tool,
        args=args or {},
        code=code,
        execution={"id": "exec-1", "name": "tests"},
        env=dict(os.environ) if env is None else env,
    )
