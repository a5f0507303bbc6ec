"""API economy of the operator: API calls per step, counted by the operator's own metric.

    python benchmarks/bench_operator.py            # starts a local control plane (tests/cluster)
    python benchmarks/bench_operator.py --kubeconfig ~/.kube/config   # or uses a cluster

Runs a chain of shell steps and a parallel loop under a fresh `noetl operator` process and prints,
from `noetl_api_calls_total`, the writes and reads the operator made per step (by verb and
resource), for several sizes: the per-step figure should stay flat as executions grow.
"""

from __future__ import annotations

import argparse
import contextlib
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
    time.sleep(1)  # let the Playbook controller settle before counting
    before = operator.api_calls()
    resources.execute(name, name)
    status = resources.wait_finished(name, timeout=600)
    assert status["phase"] == "Succeeded", status.get("error")
    time.sleep(1)
    after = operator.api_calls()
    return {
        key: (after.get(key, 0) - before.get(key, 0)) / steps
        for key in after
        if after.get(key, 0) != before.get(key, 0)
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig")
    args = parser.parse_args()
    with cluster(args.kubeconfig) as kubeconfig, tempfile.TemporaryDirectory() as scratch:
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


if __name__ == "__main__":
    main()
