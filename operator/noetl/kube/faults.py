"""When driving an Execution fails: which errors pass, how long to wait, and how the run ends.

A driver that raises is started again by the registry, which first asks `classify` what kind of
trouble it met:
- a conflict (409: someone wrote the object meanwhile) is retried at once;
- transient trouble (429, 5xx, timeouts, lost connections, and anything not known to be
  permanent) is retried after an exponential backoff with jitter (`Backoff`);
- permanent trouble (any other 4xx: forbidden, exceeded quota, invalid, too large, not found;
  etcd's "request is too large"; a `PermanentFault` of the operator's own) is not retried.
A permanent error, or too many transient ones in a row, ends the Execution through `end_run`:
phase Failed, reason ReconcileError, the API server's own words as the error, a Warning Event,
and the metrics. Nothing is left `Running` for ever.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from noetl.kube import events, metrics
from noetl.kube.api import KubeApi
from noetl.kube.refusals import error_text
from noetl.kube.sweep import stop_runs
from noetl.kube.times import timestamp

log = logging.getLogger(__name__)
Trouble = Literal["conflict", "transient", "permanent"]
RECONCILE_ERROR = "ReconcileError"
_TOO_LARGE = ("request is too large", "request entity too large", "too long")


class PermanentFault(Exception):
    """Trouble the operator itself knows will not pass by retrying (lost results, say)."""


def classify(error: BaseException) -> Trouble:
    if isinstance(error, PermanentFault):
        return "permanent"
    if not isinstance(error, ApiException):
        return "transient"  # timeouts, connection errors, and what cannot be told: counted
    if error.status == 409:
        return "conflict"
    if any(words in describe(error).lower() for words in _TOO_LARGE):
        return "permanent"
    if error.status is None or error.status in (408, 410, 429) or error.status >= 500:
        return "transient"
    return "permanent"


def describe(error: BaseException) -> str:
    """The error in words a user can act on: the API server's message where there is one."""
    if isinstance(error, ApiException):
        return error_text(error)
    return str(error) or type(error).__name__


@dataclass
class Backoff:
    """Exponential delays with full jitter between half and all of the step, up to a cap."""

    base: float
    cap: float
    random: random.Random

    def delay(self, failures: int) -> float:
        step = min(self.cap, self.base * 2.0 ** max(0, failures - 1))
        return step * (0.5 + self.random.random() / 2)


async def end_run(
    api: KubeApi, execution: dict[str, Any], phase: str, reason: str, message: str
) -> float:
    """End an execution whose driver cannot go on: stop its runs, write why, tell; its end time.

    The status written is minimal (phase, error, end time, condition), so that even an execution
    whose full status the API server refused can be ended; if that is refused too, the in-flight
    summaries that made it large are dropped.
    """
    now = time.time()
    metadata = execution["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    await stop_runs(api, execution)
    status: dict[str, Any] = {
        "phase": phase,
        "error": message,
        "finishedAt": timestamp(now),
        "observedGeneration": metadata.get("generation"),
        "conditions": [
            {
                "type": "Succeeded",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": timestamp(now),
            }
        ],
    }
    for attempt in (status, {**status, "steps": None, "currentSteps": None, "engine": None}):
        try:
            await api.patch_status("executions", namespace, name, attempt)
            break
        except ApiException as error:
            log.warning("execution %s/%s: cannot write its end: %s", namespace, name, error)
    await events.record(api, execution, reason, message, warning=True)
    metrics.EXECUTIONS_FINISHED.labels(phase=phase).inc()
    return now
