"""Checkpoint and resume: what an Execution's driver saves after each turn, and reads back.

Stored where (docs/architecture.md has the table):
- what the run runs, fixed at its start: ConfigMap `<execution>-playbook`, written once, with the
  playbook and the workload (`Snapshot`);
- results, loop items, and the records of finished steps: ConfigMaps `<execution>-results-<n>`;
- what is in flight (the engine state, which keeps no finished step) and the summary people read:
  the Execution's status, written as a merge patch of what changed.

Each turn writes new results first, then the status, then removes the results it no longer needs
(a finished loop's item results). Jobs (and child Executions) were created before all of them,
while the turn's commands were carried out. A crash between any two writes loses nothing: the
status still says the runs are in flight and everything it needs is still stored, the restarted
driver feeds their ends again, and the engine re-issues the same commands, whose deterministic
names meet AlreadyExists. (A crash just before the removals leaves those keys behind, unused.)

A turn whose only news is steps that succeeded, and the runs they started, may put its save off
(`SavePacing`) for up to `SAVE_INTERVAL`: until then its ends are still in the cluster (the
Jobs that ended keep their pods and termination messages for a day), so a restarted driver that
resumes from the older save feeds them again, round after round, and meets the Jobs it had
started as AlreadyExists (an execution not yet saved Running starts again, the same way).
Anything the cluster could not tell again is saved in its own turn: the end of the execution, a
failure (its retry's due time, a refused run), a cancel (a deleted Job says nothing). A
1,000-item loop thus costs a save a second, not a save per turn.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from noetl.engine import ExecutionState, FinishExecution
from noetl.engine.graph import Graph
from noetl.engine.retry import kept_results
from noetl.engine.state import ExecutionPhase
from noetl.kube import events, metrics
from noetl.kube.api import KubeApi
from noetl.kube.manifests import execution_config_map, owned_by
from noetl.kube.names import snapshot_config_map
from noetl.kube.playbooks import run_problems, snapshot_text
from noetl.kube.results import ResultStore
from noetl.kube.settings import OperatorSettings
from noetl.kube.status import FinishedSteps, execution_status, fits_inline, merge_patch
from noetl.loop import Clock
from noetl.playbook import Playbook, PlaybookInvalid
from noetl.playbook.budget import parse_within_budget

OUTPUT_KEY = "__output"
SAVE_INTERVAL = 1.0  # seconds a save may wait: far below the Jobs' TTL (a day by default)


@dataclass(frozen=True)
class Snapshot:
    """What an execution runs, as it was at its start: later edits of either do not reach it."""

    playbook: Playbook
    workload: dict[str, Any]
    frozen_before: bool  # by an earlier driver, which may have started runs


async def snapshot_of(
    api: KubeApi, execution: dict[str, Any], settings: OperatorSettings
) -> Snapshot:
    """The playbook and workload this execution runs, frozen at its start (written then).

    Raises PlaybookInvalid or LookupError when there is none to run, or it may not run here.
    """
    metadata = execution["metadata"]
    namespace, name = metadata["namespace"], snapshot_config_map(metadata["name"])
    stored = await api.read_config_map(namespace, name)
    spec = execution["spec"]
    if stored is not None and owned_by(stored, metadata["uid"]):
        data = stored["data"]
        source = f"execution {metadata['name']}"
        playbook = await parse_within_budget(json.loads(data["playbook.json"]), source)
        if "workload.json" not in data:  # a snapshot written before workloads were kept in it
            return Snapshot(playbook, spec.get("workload") or {}, True)
        return Snapshot(playbook, json.loads(data["workload.json"]), True)
    if spec.get("playbook") is not None:
        document = {
            "kind": "Playbook",
            "metadata": {"name": metadata["name"]},
            "spec": spec["playbook"],
        }
    else:
        ref = spec["playbookRef"]["name"]
        found = await api.get_custom("playbooks", namespace, ref)
        if found is None:
            where = f"in namespace {namespace}"
            raise LookupError(f"spec.playbookRef.name: no Playbook named {ref!r} {where}")
        document = {"kind": "Playbook", "metadata": {"name": ref}, "spec": found["spec"]}
    source = f"playbook {document['metadata']['name']}"
    playbook = await parse_within_budget(document, source)
    text = snapshot_text(document)
    problems = run_problems(playbook, text, namespace, settings)
    if problems:
        raise PlaybookInvalid(problems, source)
    snapshot = Snapshot(playbook, spec.get("workload") or {}, False)
    data = {
        "playbook.json": text,
        "workload.json": json.dumps(snapshot.workload, separators=(",", ":")),
    }
    await api.create(execution_config_map(execution, name, "playbook", data))
    return snapshot


class Checkpoint:
    """The saved form of one execution: its result store and its status, written in that order."""

    def __init__(
        self,
        api: KubeApi,
        execution: dict[str, Any],
        state: ExecutionState,
        results: ResultStore,
    ) -> None:
        self.api = api
        self.execution = execution
        self.state = state
        self.results = results
        self.finished_steps = FinishedSteps.from_results(results, state.steps)
        self._written: dict[str, Any] = dict(execution.get("status") or {})
        self.saves = 0

    @classmethod
    async def load(cls, api: KubeApi, execution: dict[str, Any]) -> Checkpoint:
        saved = (execution.get("status") or {}).get("engine")
        state = ExecutionState.from_dict(json.loads(saved)) if saved else ExecutionState()
        return cls(api, execution, state, await ResultStore.load(api, execution))

    async def save(
        self, finish: FinishExecution | None, waiting: Mapping[str, str] | None = None
    ) -> None:
        """Results first, then the status that refers to them, then removals of spent results."""
        result, result_ref = None, None
        if self.state.phase == "Succeeded" and finish is not None:
            result = finish.result
            if not fits_inline(result):
                self.results[OUTPUT_KEY] = result
        self.finished_steps.add_from(self.results, self.results.unsaved())
        await self.results.flush(self.api)
        if self.state.phase == "Succeeded" and not fits_inline(result):
            result_ref, result = self.results.location(OUTPUT_KEY), None
        generation = self.execution["metadata"].get("generation")
        status = execution_status(self.state, generation, self.finished_steps, result, result_ref)
        for step, cause in (waiting or {}).items():
            if step in status["steps"]:
                status["steps"][step] = {**status["steps"][step], "waiting": cause}
        if "admission" in self._written:  # the slot it holds under spec.concurrency (admission.py)
            status["admission"] = self._written["admission"]
        await self._write_status(status)
        await self.results.flush_removals(self.api)
        self.saves += 1

    async def _write_status(self, status: dict[str, Any]) -> None:
        patch = merge_patch(self._written, status)
        if not patch:
            return
        metadata = self.execution["metadata"]
        await self.api.patch_status("executions", metadata["namespace"], metadata["name"], patch)
        self._written = status


class SavePacing:
    """Whether a turn's save may wait: see the module's docstring for when it may."""

    def __init__(self, clock: Clock, interval: float = SAVE_INTERVAL) -> None:
        self.clock = clock
        self.interval = interval
        self.saved_at = clock.now()  # a driver's first save is due a second after its start
        self.urgent = False  # the turn did something the cluster could not tell again

    def may_wait(self, state: ExecutionState) -> bool:
        return not (self.urgent or state.finished or self.remaining() <= 0)

    def remaining(self) -> float:
        """Seconds until a save put off now is due."""
        return self.interval - (self.clock.now() - self.saved_at)

    def saved(self) -> None:
        self.saved_at = self.clock.now()
        self.urgent = False


async def retried_results(api: KubeApi, execution: dict[str, Any], graph: Graph) -> dict[str, Any]:
    """What this execution keeps of the one its spec.retryOf names (read from that one's results).

    Raises LookupError when that Execution is gone (deleted, or collected after its TTL).
    """
    namespace, name = execution["metadata"]["namespace"], execution["spec"]["retryOf"]
    earlier = await api.get_custom("executions", namespace, name)
    if earlier is None:
        where = f"in namespace {namespace}"
        raise LookupError(f"spec.retryOf: no Execution named {name!r} {where} to retry")
    return kept_results(graph, await ResultStore.load(api, earlier))


async def refuse(
    api: KubeApi,
    execution: dict[str, Any],
    error: Exception | str,
    reason: str = "InvalidPlaybook",
    phase: ExecutionPhase = "Failed",
) -> float:
    """End an execution that never started (no playbook to run, nothing to retry, or refused
    admission); its end time. There is no engine to ask, so the status is written here."""
    if isinstance(error, PlaybookInvalid):
        message = "invalid playbook: " + "; ".join(str(e) for e in error.errors[:20])
    else:
        message = str(error)
    now = time.time()
    state = ExecutionState(phase=phase, started_at=now, finished_at=now, error=message)
    status = execution_status(state, execution["metadata"].get("generation"))
    status["conditions"][0]["reason"] = reason
    status["message"] = None  # what a queued execution was waiting for
    metadata = execution["metadata"]
    await api.patch_status("executions", metadata["namespace"], metadata["name"], status)
    await events.record(api, execution, reason, message, warning=phase == "Failed")
    metrics.EXECUTIONS_FINISHED.labels(phase=phase).inc()
    return now
