"""A test node that really runs pods: a Node in the API and, for each pod bound to it, local
processes (see pod_worker.py), in threads of the process that starts it.

`NodeAgent.start()` registers the Node (Ready, schedulable, with capacity, InternalIP 127.0.0.1
and the kubelet port of its log server), keeps its Lease in kube-node-lease renewed and its
Ready condition fresh so the node controller never marks it NotReady, and watches the pods whose
`spec.nodeName` is this node. `stop()` kills every pod process, deletes the Node and removes the
agent's folder.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.cluster.images import CommandFor, default_command
from tests.cluster.kubelet_server import KubeletServer
from tests.cluster.pki import CertFiles
from tests.cluster.pod_worker import MOUNT_POINTS, POD_IP, PodWorker, now

LEASE_SECONDS = 40
RENEW_SECONDS = 10
STATUS_SECONDS = 60
# Host variables a pod's process keeps, so that the test's Python and `sh` work in it.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV")
ROOT_PREFIX = "noetl-node-"
CAPACITY = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"}


class NodeAgent:
    def __init__(
        self,
        api_client_factory: Callable[[], client.ApiClient],
        serving: CertFiles,
        client_ca: Path,
        api_port: int,
        *,
        name: str = "noetl-node",
        kubelet_version: str = "v0.0.0",
        command_for: CommandFor = default_command,
        extra_env: Mapping[str, str] | None = None,
        capacity: Mapping[str, str] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.name = name
        self.api_port = api_port
        self.kubelet_version = kubelet_version
        self.command_for = command_for
        self.extra_env = dict(extra_env or {})
        self.capacity = dict(capacity or CAPACITY)
        self.log = log
        self.root = Path(tempfile.mkdtemp(prefix=ROOT_PREFIX))
        self._api = api_client_factory()
        self._watch_api = api_client_factory()  # a watch holds its connection
        self.core = client.CoreV1Api(self._api)
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self.server = KubeletServer(serving, client_ca, self._find_log)
        self._threads = [
            threading.Thread(target=self._watch_pods, name="node-agent watch", daemon=True),
            threading.Thread(target=self._heartbeat, name="node-agent heartbeat", daemon=True),
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> NodeAgent:
        self.server.start()
        self._register()
        for thread in self._threads:
            thread.start()
        self._wait_schedulable()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.forget()
            worker.kill_now()
        for worker in workers:
            worker.join(5)
        with contextlib.suppress(ApiException, OSError):  # the API server may be gone already
            self.core.delete_node(self.name)
        self.server.stop()
        for thread in self._threads:
            thread.join(5)
        self._api.close()
        self._watch_api.close()
        self._remove_mount_points()
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_mount_points(self) -> None:
        """Remove the empty folders and files that pods' mounts made on the host, deepest first."""
        record = self.root / MOUNT_POINTS
        others = set(self.root.parent.glob(f"{ROOT_PREFIX}*")) - {self.root}
        if not record.exists() or others:
            # Another agent's pods may use them: removing a folder detaches their mounts on it.
            return
        for path in sorted(set(record.read_text().split("\n")) - {""}, reverse=True):
            with contextlib.suppress(OSError):
                if os.path.isdir(path):
                    os.rmdir(path)
                elif os.path.getsize(path) == 0:
                    os.remove(path)

    # -- the Node and its Lease ------------------------------------------------------------

    def _register(self) -> None:
        node = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=self.name,
                labels={
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": _arch(),
                    "noetl.io/node-agent": "true",
                },
            )
        )
        try:
            self.core.create_node(node)
        except ApiException as error:
            if error.status != 409:
                raise
        self.core.patch_node_status(self.name, {"status": self._node_status()})

    def _node_status(self) -> dict[str, Any]:
        stamp = now()
        conditions = [
            ("Ready", "True", "KubeletReady", "node agent is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", ""),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", ""),
            ("PIDPressure", "False", "KubeletHasSufficientPID", ""),
        ]
        return {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "conditions": [
                {
                    "type": kind,
                    "status": value,
                    "reason": reason,
                    "message": message,
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
                for kind, value, reason, message in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": POD_IP},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.server.port}},
            "nodeInfo": {
                "machineID": "noetl-node-agent",
                "systemUUID": "noetl-node-agent",
                "bootID": "noetl-node-agent",
                "kernelVersion": platform.release(),
                "osImage": "NoETL test node agent (local processes)",
                "containerRuntimeVersion": "noetl-node://1",
                "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }

    def _heartbeat(self) -> None:
        last_status = time.monotonic()
        while not self._stopping.is_set():
            try:
                self._renew_lease()
                if time.monotonic() - last_status >= STATUS_SECONDS:
                    self.core.patch_node_status(self.name, {"status": self._node_status()})
                    last_status = time.monotonic()
            except (ApiException, OSError) as error:
                if not self._stopping.is_set():
                    self.log(f"node agent: heartbeat failed: {error}")
            self._stopping.wait(RENEW_SECONDS)

    def _renew_lease(self) -> None:
        coordination = client.CoordinationV1Api(self._api)
        renew = datetime.datetime.now(datetime.UTC)
        spec = client.V1LeaseSpec(
            holder_identity=self.name, lease_duration_seconds=LEASE_SECONDS, renew_time=renew
        )
        try:
            coordination.patch_namespaced_lease(self.name, "kube-node-lease", {"spec": spec})
        except ApiException as error:
            if error.status != 404:
                raise
            node = self.core.read_node(self.name)
            owner = client.V1OwnerReference(
                api_version="v1", kind="Node", name=self.name, uid=node.metadata.uid
            )
            lease = client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name, owner_references=[owner]), spec=spec
            )
            coordination.create_namespaced_lease("kube-node-lease", lease)

    def _wait_schedulable(self, timeout: float = 30.0) -> None:
        """Until the node controller has seen the node Ready and left no NoSchedule taint."""
        deadline = time.monotonic() + timeout
        while True:
            node = self.core.read_node(self.name)
            taints = [t for t in node.spec.taints or [] if t.effect == "NoSchedule"]
            ready = any(
                c.type == "Ready" and c.status == "True" for c in node.status.conditions or []
            )
            if ready and not taints:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {self.name} not schedulable: taints {taints}")
            time.sleep(0.2)

    # -- pods ------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        core = client.CoreV1Api(self._watch_api)
        selector = f"spec.nodeName={self.name}"
        while not self._stopping.is_set():
            try:
                listing = core.list_pod_for_all_namespaces(
                    field_selector=selector, _preload_content=False
                )
                body = json.loads(listing.data)
                self._reconcile(body["items"])
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=body["metadata"]["resourceVersion"],
                    timeout_seconds=300,
                ):
                    self._observe(event["type"], event["raw_object"])
            except Exception as error:  # re-list and go on; the agent must outlive API hiccups
                if not self._stopping.is_set():
                    self.log(f"node agent: pod watch restarts after {error!r}")
                    self._stopping.wait(1.0)

    def _reconcile(self, pods: list[dict[str, Any]]) -> None:
        present = {pod["metadata"]["uid"] for pod in pods}
        with self._lock:
            vanished = [uid for uid in self._workers if uid not in present]
        for uid in vanished:
            self._observe("DELETED", {"metadata": {"uid": uid}})
        for pod in pods:
            self._observe("MODIFIED", pod)

    def _observe(self, kind: str, pod: dict[str, Any]) -> None:
        if kind == "ERROR":
            raise RuntimeError(f"watch error: {pod}")
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if kind == "DELETED":
                self._workers.pop(uid, None)
            elif worker is None and self._wanted(pod):
                worker = self._new_worker(pod)
                self._workers[uid] = worker
                worker.start()
                return
        if worker is None:
            return
        if kind == "DELETED":
            worker.forget()
            worker.kill_now()
            shutil.rmtree(worker.pod_dir, ignore_errors=True)
        else:
            worker.observe(pod)

    def _wanted(self, pod: dict[str, Any]) -> bool:
        """A pod to run, or a finished one being deleted that only needs its final delete."""
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        return not finished or bool(pod["metadata"].get("deletionTimestamp"))

    def _new_worker(self, pod: dict[str, Any]) -> PodWorker:
        metadata = pod["metadata"]
        pod_dir = self.root / f"{metadata['namespace']}_{metadata['name']}_{metadata['uid']}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        return PodWorker(pod, self.core, pod_dir, self.command_for, self._base_env, self.log)

    def _base_env(self, pod: Mapping[str, Any]) -> dict[str, str]:
        env = {name: os.environ[name] for name in PASSTHROUGH if name in os.environ}
        port = str(self.api_port)
        env.update(
            {
                "HOSTNAME": pod["metadata"]["name"],
                # In-cluster clients find the API server here (its certificate names 127.0.0.1).
                "KUBERNETES_SERVICE_HOST": POD_IP,
                "KUBERNETES_SERVICE_PORT": port,
                "KUBERNETES_SERVICE_PORT_HTTPS": port,
                "KUBERNETES_PORT": f"tcp://{POD_IP}:{port}",
            }
        )
        env.update(self.extra_env)
        return env

    def _find_log(
        self, namespace: str, pod: str, container: str, previous: bool
    ) -> tuple[Path, Callable[[], bool]] | None:
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            if worker.namespace == namespace and worker.pod_name == pod:
                return worker.find_log(container, previous)
        return None


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
