"""Checkpoint and resume: what an Execution's driver saves after each turn, and reads back.

Stored where (docs/architecture.md has the table):
- results, loop items, and the records of finished steps: ConfigMaps `<execution>-results-<n>`;
- what the run runs, fixed at its start (`Snapshot`): the playbook and the workload, in the first
  of those ConfigMaps, created with them at the first save;
- what is in flight (the engine state, which keeps no finished step) and the summary people read:
  the Execution's status, written as a merge patch of what changed.

Each turn writes new results first, then the status, then removes the results it no longer needs
(a finished loop's item results). Jobs (and child Executions) were created before all of them,
while the turn's commands were carried out. A crash between any two writes loses nothing: the
status still says the runs are in flight and everything it needs is still stored, the restarted
driver feeds their ends again, and the engine re-issues the same commands, whose deterministic
names meet AlreadyExists. (A crash just before the removals leaves those keys behind, unused.)

A turn whose only news is steps that succeeded, and the runs they started, may put its save off
(`SavePacing`) for up to `SAVE_INTERVAL` (`BUSY_SAVE_INTERVAL` while calls wait for tokens):
until then its ends are still in the cluster (the Jobs that ended keep their pods and
termination messages for a day), so a restarted driver that resumes from the older save lists
them, feeds them again, round after round, and does not create again the Jobs it had started
(an execution not yet saved Running starts again, the same way).
Anything the cluster could not tell again is saved in its own turn: the end of the execution, a
failure (its retry's due time, a refused run), a cancel (a deleted Job says nothing). A
1,000-item loop thus costs a save a second, not a save per turn.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from noetl.engine import ExecutionState, FinishExecution
from noetl.engine.graph import Graph
from noetl.engine.retry import kept_results
from noetl.engine.state import ExecutionPhase
from noetl.kube import events, metrics
from noetl.kube.api import KubeApi
from noetl.kube.manifests import owned_by
from noetl.kube.names import PLAYBOOK_KEY, WORKLOAD_KEY, snapshot_config_map
from noetl.kube.playbooks import run_problems, snapshot_text
from noetl.kube.results import ResultStore
from noetl.kube.settings import OperatorSettings
from noetl.kube.status import FinishedSteps, execution_status, fits_inline, merge_patch
from noetl.loop import Clock
from noetl.playbook import Playbook, PlaybookInvalid
from noetl.playbook.budget import parse_within_budget

OUTPUT_KEY = "__output"
SAVE_INTERVAL = 1.0  # seconds a save may wait: far below the Jobs' TTL (a day by default)
BUSY_SAVE_INTERVAL = 3.0  # while calls wait for tokens: a save then delays other runs' Jobs


@dataclass(frozen=True)
class Snapshot:
    """What an execution runs, as it was at its start: later edits of either do not reach it."""

    playbook: Playbook
    workload: dict[str, Any]
    digest: str  # of the playbook and the workload: what each Job says it was made from


async def snapshot_of(
    api: KubeApi, execution: dict[str, Any], settings: OperatorSettings, results: ResultStore
) -> Snapshot:
    """The playbook and workload this execution runs, frozen at its start.

    Read from the results (`results.snapshot`); else built from the Playbook (or the embedded
    playbook) and `spec.workload`, and handed to the results to be written with their first
    ConfigMap, at the first save. Jobs may be created before that save: each carries the
    snapshot's digest, so that a driver that builds the snapshot again after a crash knows
    whether it built the same (`Inbox`). Raises PlaybookInvalid or LookupError when there is none
    to run, or it may not run here.
    """
    metadata, spec = execution["metadata"], execution["spec"]
    stored = results.snapshot or await _legacy_snapshot(api, execution)
    if stored:
        source = f"execution {metadata['name']}"
        document = json.loads(stored[PLAYBOOK_KEY])
        playbook = await parse_within_budget(document, source)
        kept = stored.get(WORKLOAD_KEY)  # not in a snapshot from before workloads were kept
        workload = json.loads(kept) if kept else spec.get("workload") or {}
        return Snapshot(playbook, workload, _digest(document, workload))
    namespace = metadata["namespace"]
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
    workload = spec.get("workload") or {}
    results.carry({PLAYBOOK_KEY: text, WORKLOAD_KEY: json.dumps(workload, separators=(",", ":"))})
    return Snapshot(playbook, workload, _digest(document, workload))


async def _legacy_snapshot(api: KubeApi, execution: dict[str, Any]) -> dict[str, str]:
    """The snapshot of an execution started by an operator that kept it in a ConfigMap of its
    own (`<execution>-playbook`), in the keys it has now; empty for any other execution."""
    metadata = execution["metadata"]
    if not (execution.get("status") or {}).get("engine"):
        return {}  # not started, or started by an operator that keeps it with the results
    stored = await api.read_config_map(metadata["namespace"], snapshot_config_map(metadata["name"]))
    if stored is None or not owned_by(stored, metadata["uid"]):
        return {}
    data = stored.get("data") or {}
    return {PLAYBOOK_KEY: data["playbook.json"], WORKLOAD_KEY: data.get("workload.json", "")}


def _digest(document: dict[str, Any], workload: dict[str, Any]) -> str:
    text = json.dumps([document, workload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpoint:
    """The saved form of one execution: its result store and its status, written in that order."""

    def __init__(
        self, api: KubeApi, execution: dict[str, Any], results: ResultStore, snapshot: Snapshot
    ) -> None:
        """`results` as loaded; the state is the one the status holds."""
        self.api = api
        self.snapshot = snapshot
        self.execution = execution
        saved = (execution.get("status") or {}).get("engine")
        self.state = ExecutionState.from_dict(json.loads(saved)) if saved else ExecutionState()
        self.results = results
        self.finished_steps = FinishedSteps.from_results(results, self.state.steps)
        self._written: dict[str, Any] = dict(execution.get("status") or {})
        self.saves = 0

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
    """Whether a turn's save may wait: see the module's docstring for when it may. A save put off
    is due `interval` after the first turn it covers (a driver's first save, a second after the
    turn that started its first runs: a step that ends sooner leaves its execution one status
    write, not a "Running" one and an end), `busy_interval` while the operator's calls wait for
    tokens (its saves would then delay other executions' Jobs)."""

    def __init__(
        self,
        clock: Clock,
        busy: Callable[[], bool],
        interval: float = SAVE_INTERVAL,
        busy_interval: float = BUSY_SAVE_INTERVAL,
    ) -> None:
        """`busy`: whether the operator's calls wait for tokens now; a save then waits longer."""
        self.clock = clock
        self.busy = busy
        self.interval = interval
        self.busy_interval = busy_interval
        self.since: float | None = None  # when the oldest turn not saved yet was put off
        self.urgent = False  # the turn did something the cluster could not tell again

    def may_wait(self, state: ExecutionState) -> bool:
        return not (self.urgent or state.finished or self.remaining() <= 0)

    def remaining(self) -> float:
        """Seconds until a save put off now is due."""
        interval = self.busy_interval if self.busy() else self.interval
        if self.since is None:
            return interval
        return interval - (self.clock.now() - self.since)

    def put_off(self) -> None:
        if self.since is None:
            self.since = self.clock.now()

    def saved(self) -> None:
        self.since = None
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
