"""A test node that really runs pods: a Node in the API and, for each pod bound to it, its
containers from their images (see pod_worker.py and runtime.py), driven from threads of the
process that starts it.

`NodeAgent.start()` registers the Node (Ready, schedulable, with capacity, InternalIP 127.0.0.1
and the kubelet port of its log server), keeps its Lease in kube-node-lease renewed and its
Ready condition fresh so the node controller never marks it NotReady (retrying with back-off
while the API server is away, and posting its status again once it is back), and watches the
pods whose `spec.nodeName` is this node. A pod's thread ends when the pod has finished; the
final delete of a finished pod runs on a small shared pool. `stop()` removes every container,
deletes the Node and removes the agent's folder; if the agent's process dies instead, its
reaper (runtime.py) removes the containers.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import json
import platform
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.cluster import runtime
from tests.cluster.images import LocalImages
from tests.cluster.kubelet_server import KubeletServer
from tests.cluster.pki import CertFiles
from tests.cluster.pod_worker import POD_IP, PodWorker, now

LEASE_SECONDS = 40
RENEW_SECONDS = 10
STATUS_SECONDS = 60
RETRY_SECONDS = 0.5  # the first retry after a failed heartbeat; doubles up to RENEW_SECONDS
FINAL_DELETES = 4  # threads for the final deletes of finished pods
ROOT_PREFIX = "node-agent-"
CAPACITY = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"}


class NodeAgent:
    def __init__(
        self,
        api_client_factory: Callable[[], client.ApiClient],
        serving: CertFiles,
        client_ca: Path,
        api_port: int,
        *,
        name: str = "node-agent",
        kubelet_version: str = "v0.0.0",
        extra_env: Mapping[str, str] | None = None,
        capacity: Mapping[str, str] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.name = name
        self.api_port = api_port
        self.kubelet_version = kubelet_version
        self.id = uuid.uuid4().hex[:12]  # labels this agent's containers
        self.images = LocalImages(runtime.PODMAN)
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
        self._reaper: runtime.Reaper | None = None
        self._final_deletes = concurrent.futures.ThreadPoolExecutor(
            FINAL_DELETES, thread_name_prefix="node-agent final delete"
        )
        self._threads = [
            threading.Thread(target=self._watch_pods, name="node-agent watch", daemon=True),
            threading.Thread(target=self._heartbeat, name="node-agent heartbeat", daemon=True),
        ]

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> NodeAgent:
        self._reaper = runtime.Reaper(self.id)
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
        if self._reaper is not None:
            self._reaper.close()  # removes every container of this agent at once
        for worker in workers:
            worker.kill_now()
        for worker in workers:
            if worker.is_alive():
                worker.join(5)
        self._final_deletes.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(ApiException, OSError):  # the API server may be gone already
            self.core.delete_node(self.name)
        self.server.stop()
        for thread in self._threads:
            thread.join(5)
        self._api.close()
        self._watch_api.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the Node and its Lease ------------------------------------------------------------

    def _register(self) -> None:
        node = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=self.name,
                labels={
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": _arch(),
                    "test-cluster.local/node-agent": "true",
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
                "machineID": self.id,
                "systemUUID": self.id,
                "bootID": self.id,
                "kernelVersion": platform.release(),
                "osImage": "test node agent",
                "containerRuntimeVersion": "podman://",
                "kubeletVersion": self.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": _arch(),
            },
        }

    def _heartbeat(self) -> None:
        last_status = time.monotonic()
        retry = RETRY_SECONDS
        failing = False
        while not self._stopping.is_set():
            try:
                if failing:
                    self._register()  # the node controller may have marked it NotReady
                    last_status = time.monotonic()
                self._renew_lease()
                if time.monotonic() - last_status >= STATUS_SECONDS:
                    self.core.patch_node_status(self.name, {"status": self._node_status()})
                    last_status = time.monotonic()
            except Exception as error:  # connection refused, timeouts, 5xx: the API comes back
                if self._stopping.is_set():
                    return
                if not failing:
                    self.log(f"node agent: heartbeat failed, retrying: {error!r}")
                failing = True
                self._stopping.wait(retry)
                retry = min(RENEW_SECONDS, retry * 2)
                continue
            failing, retry = False, RETRY_SECONDS
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
            return
        if worker.observe(pod):
            # The pod had finished, so its thread has ended: the final delete needs no thread.
            self._final_deletes.submit(worker.final_delete)

    def _wanted(self, pod: dict[str, Any]) -> bool:
        """A pod to run, or a finished one being deleted that only needs its final delete."""
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        return not finished or bool(pod["metadata"].get("deletionTimestamp"))

    def _new_worker(self, pod: dict[str, Any]) -> PodWorker:
        metadata = pod["metadata"]
        pod_dir = self.root / f"{metadata['namespace']}_{metadata['name']}_{metadata['uid']}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        return PodWorker(pod, self.core, pod_dir, self.images, self.id, self._base_env, self.log)

    def _base_env(self, pod: Mapping[str, Any]) -> dict[str, str]:
        port = str(self.api_port)
        return {
            # In-cluster clients find the API server here (its certificate names 127.0.0.1).
            "KUBERNETES_SERVICE_HOST": POD_IP,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{POD_IP}:{port}",
            **self.extra_env,
        }

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
