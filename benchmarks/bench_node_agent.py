"""Pod latency on the test cluster's node agent: a trivial pod from create to Succeeded.

    python benchmarks/bench_node_agent.py              # 10 pods one after another, then 10 at once

Starts a local control plane and node agent (tests/cluster), then runs pods of the sample image
(`sh -c 'printf done > /dev/termination-log'` as uid 65532 on a read-only root) and prints the
median and slowest time from `create` to the pod's Succeeded status with its termination
message, one pod at a time and then all at once, and the threads left afterwards (a finished pod
keeps none).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster.build import ensure_binaries
from tests.cluster.cluster import Cluster
from tests.cluster.sample_image import ensure_sample_image


def pod(name: str, image: str) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", "printf done > /dev/termination-log"],
        "securityContext": {"readOnlyRootFilesystem": True},
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsUser": 65532},
            "containers": [container],
        },
    }


def succeeded(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    status = core.read_namespaced_pod(name, namespace).status
    if status.phase == "Failed":
        raise RuntimeError(f"pod {name} failed: {status.container_statuses}")
    return bool(status.phase == "Succeeded")


def run(
    core: client.CoreV1Api, namespace: str, image: str, count: int, at_once: bool
) -> list[float]:
    names = [f"p-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    times: list[float] = []
    if at_once:
        started = time.monotonic()
        for name in names:
            core.create_namespaced_pod(namespace, pod(name, image))
        pending = set(names)
        while pending:
            pending = {name for name in pending if not succeeded(core, namespace, name)}
            if pending:
                time.sleep(0.05)
        return [time.monotonic() - started]
    for name in names:
        started = time.monotonic()
        core.create_namespaced_pod(namespace, pod(name, image))
        while not succeeded(core, namespace, name):
            time.sleep(0.02)
        times.append(time.monotonic() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10)
    args = parser.parse_args()
    image = ensure_sample_image(lambda line: print(line, file=sys.stderr))
    binaries = ensure_binaries(lambda line: print(line, file=sys.stderr))
    with Cluster(binaries.bin_dir, log=lambda _: None) as cluster, cluster.api_client() as api:
        core = client.CoreV1Api(api)
        while not core.list_namespaced_service_account("default").items:
            time.sleep(0.1)
        one_by_one = run(core, "default", image, args.pods, at_once=False)
        print(
            f"one at a time: median {statistics.median(one_by_one):.2f} s, "
            f"slowest {max(one_by_one):.2f} s ({args.pods} pods)"
        )
        (together,) = run(core, "default", image, args.pods, at_once=True)
        print(f"{args.pods} at once: all Succeeded after {together:.2f} s")
        print(f"threads in this process afterwards: {threading.active_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
