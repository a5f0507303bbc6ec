"""The operator's speed and API economy on the test control plane, with steps on kwok nodes.

    python benchmarks/bench_operator_cluster.py                       # its controllers at 500/1000
    python benchmarks/bench_operator_cluster.py --kcm-qps 20 --kcm-burst 30   # at its defaults
    python benchmarks/bench_operator_cluster.py --only chain,loop     # some scenarios only

A fresh control plane (tests/cluster) with simulated kwok nodes: the step pods are bound by the
scheduler and ended by kwok, without running anything, and every one of them ends with the same
termination message, a valid plugin outcome. The operator is a `noetl operator` process at its
defaults (QPS 20, burst 30); it places step pods on the kwok nodes through its settings
(`stepNodeSelector`, `stepTolerations`). kube-controller-manager's own client limits are a
parameter, so that the Job controller is not what is measured (its defaults are 20/30 too).

Scenarios and goals:
- chain: a 20-step chain. For each step, the pod's lifetime (Job created -> container
  terminated, as watched) and the operator's share (container terminated -> next Job created).
  Goal: step-to-step within the pod's lifetime + 50 ms.
- loop: a 1,000-item parallel loop (maxInFlight 50). Goals: at most 1.5 operator API calls per
  item, at least 12 items/s.
- singles: 100 single-step Executions created at once. Goal: at least 270 per minute.
- restart: 50 single-step Executions in flight when the operator is killed; their pods end while
  it is down; then a new operator starts. Goal: caught up (every read of the resync done) within
  5 s, by namespace-wide lists rather than reads per Execution.
Operator CPU per step (from /proc) is printed for each; goal: at most 10 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_operator import WRITES, chain
from tests.cluster.kwok import POD_PLACEMENT
from tests.operator.harness import OperatorProcess, Resources, install_crds

from noetl.plugins.envelope import encode
from noetl.plugins.messages import Outcome

ANSWER = encode(Outcome(ok=True, result={"stdout": "1\n", "stderr": "", "exitCode": 0}))[0]
TICK = 0.05
SETTLE = 1.5  # seconds without a call: the operator is done


class Watcher:
    """When each step Job of a namespace was created and when its pod's container ended, as seen
    by a client watching (monotonic seconds)."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.job_created: dict[str, float] = {}
        self.pod_ended: dict[str, float] = {}  # by Job name
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._jobs, daemon=True),
            threading.Thread(target=self._pods, daemon=True),
        ]

    def __enter__(self) -> Watcher:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _follow(self, function: Callable[..., Any], seen: Callable[[Any], None]) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(
                function, self.namespace, label_selector="noetl.io/step", timeout_seconds=5
            ):
                seen(event["object"])
                if self._stop.is_set():
                    stream.stop()

    def _jobs(self) -> None:
        batch = client.BatchV1Api(self.api_client)

        def seen(job: Any) -> None:
            self.job_created.setdefault(job.metadata.name, time.monotonic())

        self._follow(batch.list_namespaced_job, seen)

    def _pods(self) -> None:
        core = client.CoreV1Api(self.api_client)

        def seen(pod: Any) -> None:
            for status in pod.status.container_statuses or []:
                if status.state and status.state.terminated:
                    job = pod.metadata.labels.get("job-name")
                    self.pod_ended.setdefault(job, time.monotonic())

        self._follow(core.list_namespaced_pod, seen)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


class Bench:
    def __init__(self, kubeconfig: str, scratch: Path) -> None:
        from kubernetes import config

        self.api_client = config.new_client_from_config(kubeconfig)
        self.kubeconfig = kubeconfig
        self.scratch = scratch
        install_crds(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def namespace(self) -> Resources:
        name = f"bench-{uuid.uuid4().hex[:6]}"
        self.core.create_namespace({"metadata": {"name": name}})
        while not self.core.list_namespaced_service_account(
            name, field_selector="metadata.name=default"
        ).items:
            time.sleep(0.1)
        return Resources(self.api_client, name)

    def operator(self, namespace: str) -> OperatorProcess:
        operator = OperatorProcess(
            self.kubeconfig,
            self.scratch / f"operator-{namespace}.log",
            {
                "NOETL_NAMESPACES": namespace,
                "NOETL_STEP_NODE_SELECTOR": json.dumps(POD_PLACEMENT["nodeSelector"]),
                "NOETL_STEP_TOLERATIONS": json.dumps(POD_PLACEMENT["tolerations"]),
            },
        )
        operator.start()
        return operator

    def playbook(self, resources: Resources, name: str, spec: dict[str, Any]) -> None:
        body = {"kind": "Playbook", "metadata": {"name": name}, "spec": spec}
        resources.create("playbooks", body)
        resources.wait("playbooks", name, lambda obj: (obj.get("status") or {}).get("conditions"))


class Measured:
    """The wall time, the operator's CPU and its API calls from now to `done()`."""

    def __init__(self, operator: OperatorProcess) -> None:
        assert operator.process is not None
        self.operator = operator
        self.pid = operator.process.pid
        self.calls = operator.api_calls()
        self.cpu = cpu_seconds(self.pid)
        self.started = time.monotonic()

    def done(self) -> tuple[float, float, dict[tuple[str, str], float]]:
        """Seconds, CPU seconds, and the calls made (once the last turn's are in)."""
        elapsed = time.monotonic() - self.started
        cpu = cpu_seconds(self.pid) - self.cpu
        return elapsed, cpu, calls_between(self.calls, settled_calls(self.operator))


def calls_between(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]
) -> dict[tuple[str, str], float]:
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key)}


def settled_calls(operator: OperatorProcess) -> dict[tuple[str, str], float]:
    """The call counts once the last writes of the last turn are in, its Events too (they wait
    until the operator's token bucket is back above its reserve: 0.8 s after a burst)."""
    calls = operator.api_calls()
    time.sleep(SETTLE)
    while (latest := operator.api_calls()) != calls:
        calls = latest
        time.sleep(SETTLE)
    return calls


def describe(calls: dict[tuple[str, str], float], per: int) -> str:
    writes = sum(n for (verb, _), n in calls.items() if verb in WRITES) / per
    reads = sum(n for (verb, _), n in calls.items() if verb not in WRITES) / per
    detail = ", ".join(f"{verb} {res} {n / per:.2f}" for (verb, res), n in sorted(calls.items()))
    return f"{writes + reads:.2f} calls ({writes:.2f} writes, {reads:.2f} reads): {detail}"


def run_chain(bench: Bench, steps: int = 20) -> None:
    resources = bench.namespace()
    operator = bench.operator(resources.namespace)
    try:
        bench.playbook(resources, "chain", chain(steps))
        with Watcher(bench.api_client, resources.namespace) as watcher:
            measured = Measured(operator)
            resources.execute("chain", "chain")
            status = resources.wait_finished("chain", timeout=300)
            elapsed, cpu, calls = measured.done()
        jobs = sorted(watcher.job_created, key=watcher.job_created.__getitem__)
        print(f"chain of {steps}: {status['phase']} in {elapsed:.2f}s")
        print(f"  {'step':<6} {'pod lifetime ms':>16} {'operator ms':>12} {'step-to-step ms':>16}")
        lifetimes, shares = [], []
        for i, job in enumerate(jobs):
            created, ended = watcher.job_created[job], watcher.pod_ended.get(job)
            lifetime = (ended - created) * 1000 if ended else float("nan")
            if i + 1 < len(jobs):
                following = watcher.job_created[jobs[i + 1]]
                share = (following - ended) * 1000 if ended else float("nan")
                period = (following - created) * 1000
                shares.append(share)
            else:
                share = period = float("nan")
            lifetimes.append(lifetime)
            print(f"  s{i:<5} {lifetime:>16.0f} {share:>12.0f} {period:>16.0f}")
        shares.sort()
        lifetimes.sort()
        print(
            f"  median pod lifetime {lifetimes[len(lifetimes) // 2]:.0f} ms, operator's share"
            f" median {shares[len(shares) // 2]:.0f} ms, max {shares[-1]:.0f} ms (goal: <= 50 ms)"
        )
        print(f"  operator CPU {cpu / steps * 1000:.1f} ms/step")
        print(f"  API per step: {describe(calls, steps)}")
    finally:
        operator.stop()


def run_loop(bench: Bench, items: int = 1000, in_flight: int = 50) -> None:
    resources = bench.namespace()
    operator = bench.operator(resources.namespace)
    spec = {
        "workflow": [
            {"step": "start", "next": [{"step": "each"}]},
            {
                "step": "each",
                "tool": "shell",
                "loop": {
                    "in": list(range(items)),
                    "iterator": "i",
                    "mode": "parallel",
                    "maxInFlight": in_flight,
                },
                "args": {"command": "echo {{ i }}"},
            },
        ]
    }
    try:
        bench.playbook(resources, "loop", spec)
        measured = Measured(operator)
        resources.execute("loop", "loop")
        status = resources.wait_finished("loop", timeout=1200)
        elapsed, cpu, calls = measured.done()
        print(
            f"loop of {items} (maxInFlight {in_flight}): {status['phase']} in {elapsed:.1f}s,"
            f" {items / elapsed:.1f} items/s (goal: >= 12)"
        )
        print(f"  API per item (goal: <= 1.5): {describe(calls, items)}")
        print(f"  operator CPU {cpu / items * 1000:.1f} ms/item")
    finally:
        operator.stop()


def run_singles(bench: Bench, count: int = 100) -> None:
    resources = bench.namespace()
    operator = bench.operator(resources.namespace)
    try:
        bench.playbook(resources, "one", chain(1))
        measured = Measured(operator)
        for i in range(count):
            resources.execute(f"one-{i}", "one")
        finished = wait_all(resources, count, timeout=600)
        elapsed, cpu, calls = measured.done()
        print(
            f"{count} single-step Executions: {finished} succeeded in {elapsed:.1f}s,"
            f" {count / elapsed * 60:.0f}/min (goal: >= 270)"
        )
        print(f"  API per Execution: {describe(calls, count)}")
        print(f"  operator CPU {cpu / count * 1000:.1f} ms/Execution")
    finally:
        operator.stop()


def wait_all(resources: Resources, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        items = resources.custom.list_namespaced_custom_object(
            "noetl.io", "v1alpha1", resources.namespace, "executions"
        )["items"]
        done = [e for e in items if (e.get("status") or {}).get("phase") == "Succeeded"]
        if len(done) >= count or time.monotonic() > deadline:
            return len(done)
        time.sleep(TICK)


def run_restart(bench: Bench, count: int = 50) -> None:
    resources = bench.namespace()
    operator = bench.operator(resources.namespace)
    bench.playbook(resources, "one", chain(1))
    with Watcher(bench.api_client, resources.namespace) as watcher:
        for i in range(count):
            resources.execute(f"one-{i}", "one")
        while len(watcher.job_created) < count:  # every Execution has its step in flight
            time.sleep(TICK)
        operator.kill()
        while len(watcher.pod_ended) < count:  # they end while no operator watches
            time.sleep(TICK)
    operator = bench.operator(resources.namespace)  # returns once healthy
    try:
        started = time.monotonic()
        reads, last_read, calls = 0.0, started, operator.api_calls()
        while wait_all(resources, count, timeout=0) < count:
            calls = operator.api_calls()
            now = sum(n for (verb, _), n in calls.items() if verb not in WRITES)
            if now != reads:
                reads, last_read = now, time.monotonic()
            time.sleep(TICK)
        finished = time.monotonic() - started
        calls = settled_calls(operator)
        print(
            f"restart with {count} Executions in flight: resync reads done after"
            f" {last_read - started:.2f}s (goal: <= 5 s), all finished after {finished:.2f}s"
        )
        print(f"  API per Execution: {describe(calls, count)}")
    finally:
        operator.stop()


SCENARIOS = {"chain": run_chain, "loop": run_loop, "singles": run_singles, "restart": run_restart}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kcm-qps", type=float, default=500, help="kube-controller-manager QPS")
    parser.add_argument("--kcm-burst", type=int, default=1000, help="its burst")
    parser.add_argument("--nodes", type=int, default=4, help="kwok nodes")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    args = parser.parse_args()
    from tests.cluster.build import ensure_binaries, kubernetes_version
    from tests.cluster.cluster import Cluster

    binaries = ensure_binaries()
    with (
        Cluster(
            binaries.bin_dir,
            kubernetes_version=kubernetes_version(),
            log=lambda _: None,
            controller_manager_qps=(args.kcm_qps, args.kcm_burst),
        ) as local,
        tempfile.TemporaryDirectory() as scratch,
    ):
        local.kwok(termination_message=ANSWER).add_nodes(args.nodes)
        print(
            f"kube-controller-manager --kube-api-qps={args.kcm_qps:g}"
            f" --kube-api-burst={args.kcm_burst}; {args.nodes} kwok nodes; operator QPS 20/30"
        )
        bench = Bench(str(local.kubeconfig), Path(scratch))
        for name in args.only.split(","):
            SCENARIOS[name](bench)


if __name__ == "__main__":
    main()
