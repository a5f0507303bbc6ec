"""The whole test cluster: the control plane, one node agent that runs pods as local processes,
and, on request, kwok for simulated nodes.

`Cluster` is what the pytest fixture yields and what `python -m tests.cluster up` runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from kubernetes import client

from tests.cluster.control_plane import ControlPlane
from tests.cluster.images import CommandFor, default_command
from tests.cluster.kwok import Kwok
from tests.cluster.node_agent import NodeAgent


class Cluster:
    def __init__(
        self,
        bin_dir: Path,
        *,
        kubernetes_version: str = "v0.0.0",
        command_for: CommandFor = default_command,
        node_name: str = "noetl-node",
        log: Callable[[str], None] = print,
        controller_manager_qps: tuple[float, int] | None = None,
    ) -> None:
        self.bin_dir = bin_dir
        self.kubernetes_version = kubernetes_version
        self.command_for = command_for
        self.node_name = node_name
        self.log = log
        self.control_plane = ControlPlane(
            bin_dir, log=log, controller_manager_qps=controller_manager_qps
        )
        self.node_agent: NodeAgent | None = None
        self._kwok: Kwok | None = None
        self.startup_seconds = 0.0

    def start(self) -> Cluster:
        started = time.monotonic()
        self.control_plane.start()
        try:
            plane = self.control_plane
            self.node_agent = NodeAgent(
                plane.api_client,
                plane.issue_serving_cert("node-agent", ("127.0.0.1", self.node_name)),
                plane.pki / "ca.crt",
                plane.api_port,
                name=self.node_name,
                kubelet_version=self.kubernetes_version,
                command_for=self.command_for,
                log=self.log,
            ).start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self.log(f"cluster ready in {self.startup_seconds:.1f}s (node {self.node_name})")
        return self

    def stop(self) -> None:
        if self._kwok is not None:
            self._kwok.stop()
        if self.node_agent is not None:
            self.node_agent.stop()
        self.control_plane.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @property
    def server(self) -> str:
        return self.control_plane.server

    def api_client(self) -> client.ApiClient:
        return self.control_plane.api_client()

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        return self.control_plane.service_account_kubeconfig(namespace, name)

    def kwok(self, termination_message: str | None = None) -> Kwok:
        """kwok, started on first use, for simulated nodes (see kwok.py); `termination_message`
        is what its completed containers say unless their pod's annotation says otherwise."""
        if self._kwok is None:
            self._kwok = Kwok(self.bin_dir, self.control_plane, termination_message).start()
        elif termination_message != self._kwok.termination_message:
            raise ValueError("kwok already runs with another termination message")
        return self._kwok
