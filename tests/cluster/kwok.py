"""Simulated nodes for scale tests: kwok (built by build.py) drives Nodes and their pods' status.

`Kwok.add_nodes(n)` creates Nodes labelled `type=kwok` with a NoSchedule taint, so only pods that
tolerate it (see `POD_PLACEMENT`) land there; kube-scheduler binds them, and kwok's stock stages
(copied next to the binaries by the build) make them Running and, for pods owned by a Job,
Succeeded, without running anything. kwok keeps a Lease for each node, so they stay Ready.

A completed container gets a termination message when one is given: the pod's annotation
`MESSAGE_ANNOTATION`, else the `termination_message` kwok was started with (a test's fixed
answer for every simulated step).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster.build import KWOK_STAGES_FILE
from tests.cluster.control_plane import ControlPlane, StartError, free_port
from tests.cluster.processes import spawn, stop

LABEL = {"type": "kwok"}
TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
# Merge into a pod spec to place the pod on simulated nodes.
POD_PLACEMENT: dict[str, Any] = {
    "nodeSelector": LABEL,
    "tolerations": [{**TAINT, "operator": "Equal"}],
}
MESSAGE_ANNOTATION = "test-cluster.local/termination-message"
LEASE_SECONDS = 40
# Where the stock pod-complete stage writes a terminated state; the message goes after it.
_COMPLETED = "            reason: Completed\n"


def stages(stock: str, termination_message: str | None) -> str:
    """kwok's stock stages with a termination message on the containers that pod-complete ends."""
    documents = stock.split("\n---\n")
    (index,) = [i for i, text in enumerate(documents) if "name: pod-complete\n" in text]
    if documents[index].count(_COMPLETED) != 1:
        raise ValueError("kwok's pod-complete stage is not the expected one")
    default = json.dumps(termination_message or "")  # a Go string literal too
    message = (
        f"            {{{{ $message := {default} }}}}\n"
        f"            {{{{ with $root.metadata.annotations }}}}"
        f"{{{{ with index . {json.dumps(MESSAGE_ANNOTATION)} }}}}{{{{ $message = . }}}}"
        "{{ end }}{{ end }}\n"
        "            {{ if $message }}message: {{ $message | Quote }}{{ end }}\n"
    )
    documents[index] = documents[index].replace(_COMPLETED, _COMPLETED + message)
    return "\n---\n".join(documents)


class Kwok:
    def __init__(
        self, bin_dir: Path, plane: ControlPlane, termination_message: str | None = None
    ) -> None:
        self.bin_dir = bin_dir
        self.plane = plane
        self.termination_message = termination_message
        self.log_path = plane.logs / "kwok.log"
        self.nodes: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Kwok:
        config = self.plane.root / KWOK_STAGES_FILE
        stock = (self.bin_dir / KWOK_STAGES_FILE).read_text()
        config.write_text(stages(stock, self.termination_message))
        self._process = spawn(
            [
                self.bin_dir / "kwok",
                f"--kubeconfig={self.plane.kubeconfig}",
                f"--config={config}",
                f"--node-lease-duration-seconds={LEASE_SECONDS}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-label-selector=type=kwok",
                f"--server-address=127.0.0.1:{free_port()}",
                "--node-ip=127.0.0.2",
            ],
            self.log_path,
            cwd=self.plane.root,
        )
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process)
            self._process: subprocess.Popen[bytes] | None = None

    def add_nodes(self, count: int, prefix: str = "kwok-node", timeout: float = 60.0) -> list[str]:
        """Create `count` simulated nodes and wait until kwok reports them Ready."""
        names = [f"{prefix}-{len(self.nodes) + i}" for i in range(count)]
        with self.plane.api_client() as api:
            core = client.CoreV1Api(api)
            for name in names:
                node = {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {**LABEL, "kubernetes.io/hostname": name},
                        "annotations": {"kwok.x-k8s.io/node": "fake"},
                    },
                    "spec": {"taints": [TAINT]},
                }
                try:
                    core.create_node(node)
                except ApiException as error:
                    if error.status != 409:
                        raise
            deadline = time.monotonic() + timeout
            for name in names:
                while not _ready(core.read_node(name)):
                    if self._process is not None and self._process.poll() is not None:
                        raise StartError(f"kwok exited: see {self.log_path}")
                    if time.monotonic() > deadline:
                        raise StartError(f"kwok node {name} not Ready: see {self.log_path}")
                    time.sleep(0.2)
        self.nodes.extend(names)
        return names


def _ready(node: client.V1Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
