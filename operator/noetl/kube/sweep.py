"""Stopping an execution's runs without the engine: its unfinished Jobs and child Executions.

The engine cancels the runs it knows of. Two ends happen where it cannot: a driver that cannot
go on (`faults.end_run`), and an execution cancelled before its start was saved, whose earlier
driver may have started runs the saved state does not show (`driver`). Then what belongs to the
execution is found by label, checked by owner, and deleted (propagation Background: the pods
go with their Jobs). Two lists, only on those rare paths.
"""

from __future__ import annotations

import logging
from typing import Any

from noetl.engine.state import FINISHED_PHASES
from noetl.kube.api import KubeApi
from noetl.kube.manifests import execution_selector, owned_by
from noetl.kube.outcomes import job_finished

log = logging.getLogger(__name__)


async def stop_runs(api: KubeApi, execution: dict[str, Any]) -> None:
    """Delete the execution's unfinished Jobs and child Executions (best effort)."""
    metadata = execution["metadata"]
    namespace, selector = metadata["namespace"], execution_selector(metadata["name"])
    try:
        jobs = await api.list_jobs(namespace, selector)
        children = await api.list_custom("executions", namespace, selector)
        for job in jobs:
            if owned_by(job, metadata["uid"]) and not job_finished(job):
                await api.delete("Job", namespace, job["metadata"]["name"])
        for child in children:
            phase = (child.get("status") or {}).get("phase")
            if owned_by(child, metadata["uid"]) and phase not in FINISHED_PHASES:
                await api.delete("Execution", namespace, child["metadata"]["name"])
    except Exception as error:  # the end is written even when its runs cannot be stopped
        log.warning("execution %s: cannot stop its runs: %s", metadata["name"], error)
