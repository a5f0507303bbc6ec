"""The operator's cost as executions grow: status size and CPU per step, and API calls per step.

    python benchmarks/bench_operator.py                 # status and CPU, in memory (no cluster)
    python benchmarks/bench_operator.py --api-calls     # API calls, on a local control plane
    python benchmarks/bench_operator.py --api-calls --kubeconfig ~/.kube/config   # or a cluster

Status and CPU: the real driver runs chains of 10 to 5,000 shell steps and a 10,000-item loop
against the in-memory API server of the tests (tests/kube/fake_api.py), which plays the cluster's
part by ending each Job as soon as it is created. It prints the bytes of each status patch (mean
and largest), the Execution's whole status at its largest, and the operator's CPU per step (the
process's CPU time, less what the stand-in cluster spends ending Jobs). Goals: every patch under
16 KiB, the whole status under 64 KiB, CPU per step flat (within 1.5x from 10 to 5,000 steps).

API calls: a chain of shell steps and a parallel loop under a fresh `noetl operator` process;
prints, from `noetl_api_calls_total`, the writes and reads the operator made per step (by verb
and resource): the per-step figure should stay flat as executions grow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.operator.harness import OperatorProcess, Resources, install_crds

WRITES = ("create", "patch", "delete")


def chain(steps: int) -> dict[str, Any]:
    workflow: list[dict[str, Any]] = [{"step": "start", "next": [{"step": "s0"}]}]
    for i in range(steps):
        step: dict[str, Any] = {
            "step": f"s{i}",
            "tool": "shell",
            "args": {"command": "echo {{ workload.x }}"},
        }
        if i + 1 < steps:
            step["next"] = [{"step": f"s{i + 1}"}]
        workflow.append(step)
    return {"workload": {"x": 1}, "workflow": workflow}


def loop(items: int) -> dict[str, Any]:
    each = {
        "step": "each",
        "tool": "shell",
        "loop": {"in": list(range(items)), "iterator": "i", "mode": "parallel", "maxInFlight": 20},
        "args": {"command": "echo {{ i }}"},
    }
    return {"workflow": [{"step": "start", "next": [{"step": "each"}]}, each]}


@contextlib.contextmanager
def cluster(kubeconfig: str | None) -> Iterator[str]:
    if kubeconfig:
        yield kubeconfig
        return
    from tests.cluster.build import ensure_binaries, kubernetes_version
    from tests.cluster.cluster import Cluster

    binaries = ensure_binaries()  # built from Go modules on first use, then cached
    with Cluster(
        binaries.bin_dir, kubernetes_version=kubernetes_version(), log=lambda _: None
    ) as local:
        yield str(local.kubeconfig)


def measure(
    resources: Resources, operator: OperatorProcess, name: str, spec: dict[str, Any], steps: int
) -> dict[tuple[str, str], float]:
    resources.create("playbooks", {"kind": "Playbook", "metadata": {"name": name}, "spec": spec})
    resources.wait("playbooks", name, lambda obj: (obj.get("status") or {}).get("conditions"))
    before = operator.api_calls()
    resources.execute(name, name)
    status = resources.wait_finished(name, timeout=600)
    assert status["phase"] == "Succeeded", status.get("error")
    after = operator.api_calls()
    while (latest := operator.api_calls()) != after:  # the last writes of the last turn
        after = latest
    return {
        key: (after.get(key, 0) - before.get(key, 0)) / steps
        for key in after
        if after.get(key, 0) != before.get(key, 0)
    }


async def drive_in_memory(spec: dict[str, Any]) -> tuple[list[int], int, float, str]:
    """Run one execution on the fake API: status patch sizes, largest status, CPU s, phase."""
    from tests.kube.fake_api import FakeKubeApi, WatchedQueue, until_idle

    from noetl.kube.driver import ExecutionDriver, OperatorContext
    from noetl.kube.inbox import JobChanged
    from noetl.kube.settings import OperatorSettings

    api = FakeKubeApi()
    namespace = "bench"
    api.put({"kind": "Playbook", "metadata": {"name": "pb", "namespace": namespace}, "spec": spec})
    api.put(
        {
            "kind": "Execution",
            "metadata": {"name": "run", "namespace": namespace},
            "spec": {"playbookRef": {"name": "pb"}},
        }
    )
    settings = OperatorSettings(max_running_jobs_per_namespace=100_000)
    driver = ExecutionDriver(OperatorContext(api, settings), namespace, "run")  # type: ignore[arg-type]
    started = time.process_time()
    cluster_cpu = 0.0
    driver.queue = queue = WatchedQueue()
    task = asyncio.create_task(driver.run())
    seen, largest = 0, 0
    while not task.done():
        await until_idle(task, queue, timeout=600)
        ending = time.process_time()
        new = api.writes[seen:]
        seen = len(api.writes)
        for verb, kind, name in new:
            if (verb, kind) == ("create", "Job"):
                api.finish_job(namespace, name, result={"stdout": "1"})
                job = api.get("Job", namespace, name)
                driver.queue.put_nowait(JobChanged(job))  # type: ignore[arg-type]
                driver.context.slots.release(namespace, name)
        if any(kind == "Execution" for _, kind, _ in new):
            status = (api.get("Execution", namespace, "run") or {}).get("status") or {}
            largest = max(largest, len(json.dumps(status)))
        cluster_cpu += time.process_time() - ending
    task.result()
    cpu = time.process_time() - started - cluster_cpu
    phase = (api.get("Execution", namespace, "run") or {})["status"]["phase"]
    return api.status_patches, largest, cpu, phase


def status_figures() -> None:
    print("in memory (tests/kube/fake_api.py): the real driver; each Job ends as soon as it exists")
    print(
        f"{'execution':<12} {'steps':>6} {'patches':>8} {'mean B':>7} {'max B':>7}"
        f" {'status max B':>13} {'CPU ms/step':>12}  phase"
    )
    for label, spec, steps in (
        ("chain", chain(10), 10),
        ("chain", chain(100), 100),
        ("chain", chain(1000), 1000),
        ("chain", chain(5000), 5000),
        ("loop", loop(10_000), 10_000),
    ):
        patches, largest, cpu, phase = asyncio.run(drive_in_memory(spec))
        mean = sum(patches) / len(patches)
        print(
            f"{label:<12} {steps:>6} {len(patches):>8} {mean:>7.0f} {max(patches):>7}"
            f" {largest:>13} {cpu / steps * 1000:>12.2f}  {phase}"
        )


def api_calls(kubeconfig_path: str | None) -> None:
    with cluster(kubeconfig_path) as kubeconfig, tempfile.TemporaryDirectory() as scratch:
        api_client = config.new_client_from_config(kubeconfig)
        install_crds(api_client)
        namespace = f"bench-{uuid.uuid4().hex[:6]}"
        client.CoreV1Api(api_client).create_namespace({"metadata": {"name": namespace}})
        operator = OperatorProcess(
            kubeconfig, Path(scratch) / "operator.log", {"NOETL_NAMESPACES": namespace}
        )
        operator.start()
        resources = Resources(api_client, namespace)
        print(
            f"{'execution':<16} {'steps':>6} {'writes/step':>12} {'reads/step':>11}  writes by kind"
        )
        try:
            for label, spec, steps in (
                ("chain", chain(5), 5),
                ("chain", chain(20), 20),
                ("loop", loop(20), 20),
                ("loop", loop(100), 100),
            ):
                per_step = measure(resources, operator, f"{label}-{steps}", spec, steps)
                writes = {
                    f"{verb} {resource}": n
                    for (verb, resource), n in sorted(per_step.items())
                    if verb in WRITES
                }
                reads = sum(n for (verb, _), n in per_step.items() if verb not in WRITES)
                detail = ", ".join(f"{kind} {n:.2f}" for kind, n in writes.items())
                name = f"{label}-{steps}"
                total = sum(writes.values())
                print(f"{name:<16} {steps:>6} {total:>12.2f} {reads:>11.2f}  {detail}")
        finally:
            operator.stop()
            client.CoreV1Api(api_client).delete_namespace(namespace)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-calls", action="store_true", help="API calls per step, on a cluster")
    parser.add_argument("--kubeconfig", help="with --api-calls: this cluster, not a local one")
    args = parser.parse_args()
    if args.api_calls:
        api_calls(args.kubeconfig)
    else:
        status_figures()


if __name__ == "__main__":
    main()
