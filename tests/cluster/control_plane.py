"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler as child processes, with certificates made for this start only.

`ControlPlane(bin_dir).start()` returns once the API server is ready, the controllers run (the
`default` ServiceAccount and the `kube-root-ca.crt` ConfigMap exist) and the scheduler is
healthy. Everything lives in one temporary folder (certificates, kubeconfigs, etcd's data, the
components' logs) that `stop()` removes after stopping every process. Authorization is RBAC, so a
ServiceAccount's kubeconfig (`service_account_kubeconfig`) has exactly the permissions that its
Roles grant. `controller_manager_qps=(qps, burst)` raises kube-controller-manager's own client
limits (`--kube-api-qps`, `--kube-api-burst`; 20 and 30 by default), so that benchmarks of
what runs on the cluster are not measuring the Job controller's rate limit.
`restart("etcd", "kube-apiserver")` stops components and starts them again with the
same ports and data, for tests of what survives an outage.
"""

from __future__ import annotations

import functools
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.cluster.kubeconfig import write_kubeconfig
from tests.cluster.pki import CertFiles, CertificateAuthority, service_account_keys
from tests.cluster.processes import spawn, stop

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service, first address of SERVICE_CIDR
ISSUER = "https://kubernetes.default.svc.cluster.local"
START_TIMEOUT = 120.0


class StartError(RuntimeError):
    """A component did not come up; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ControlPlane:
    """etcd and the three control-plane components, started and stopped together."""

    def __init__(
        self,
        bin_dir: Path,
        root: Path | None = None,
        log: Callable[[str], None] = print,
        controller_manager_qps: tuple[float, int] | None = None,
    ) -> None:
        self.bin_dir = bin_dir
        self.controller_manager_qps = controller_manager_qps
        self.root = root or Path(tempfile.mkdtemp(prefix="test-cluster-"))
        self.log = log
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.api_port = free_port()
        self.server = f"https://127.0.0.1:{self.api_port}"
        self.kubeconfig = self.root / "admin.kubeconfig"
        self.startup_seconds = 0.0
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._arguments: dict[str, tuple[str, ...]] = {}
        self._health: dict[str, Callable[[], None]] = {}  # waits until the component is healthy
        self.ca: CertificateAuthority | None = None
        self.kubelet_client: CertFiles | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self.log(f"control plane ready in {self.startup_seconds:.1f}s at {self.server}")
        return self

    def stop(self) -> None:
        """Stop the components in reverse order of start, then remove the folder."""
        while self._processes:
            _, process = self._processes.pop()
            stop(process)
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, *components: str) -> None:
        """Stop the named components (`etcd`, `kube-apiserver`, ...) and start them again with
        the same ports, data and flags, as after a crash; return once each is healthy again."""
        unknown = set(components) - set(self._arguments)
        if unknown:
            raise ValueError(f"no such component: {sorted(unknown)}")
        for component, process in self._processes:
            if component in components:
                stop(process)
        for index, (component, _) in enumerate(self._processes):
            if component in components:
                self._processes[index] = (component, self._launch(component))
                self._health[component]()
        self.log(f"restarted {', '.join(components)}")

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------------------------

    def api_client(self) -> client.ApiClient:
        """A new client authenticated as the cluster admin (group system:masters)."""
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, expiration_seconds: int = 24 * 3600
    ) -> Path:
        """A kubeconfig that acts as ServiceAccount `namespace/name` (created if missing).

        Its token comes from the TokenRequest API, as a pod's projected token does.
        """
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            try:
                core.create_namespaced_service_account(
                    namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
                )
            except ApiException as error:
                if error.status != 409:
                    raise
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(
                    audiences=[ISSUER], expiration_seconds=expiration_seconds
                )
            )
            token = core.create_namespaced_service_account_token(name, namespace, request)
        assert self.ca is not None
        return write_kubeconfig(
            self.root / f"sa-{namespace}-{name}.kubeconfig",
            self.server,
            self.ca.cert_pem,
            f"system:serviceaccount:{namespace}:{name}",
            token=token.status.token,
            namespace=namespace,
        )

    def issue_serving_cert(self, name: str, hosts: tuple[str, ...]) -> CertFiles:
        """A server certificate from the cluster CA (the node agent's kubelet port uses one)."""
        assert self.ca is not None
        return self.ca.issue(name, name, hosts=hosts, server=True)

    def log_tail(self, component: str, lines: int = 30) -> str:
        path = self.logs / f"{component}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- start-up ----------------------------------------------------------------------------

    def _start(self) -> None:
        self.pki.mkdir(parents=True)
        self.logs.mkdir()
        self.ca = CertificateAuthority(self.pki)
        serving = self.ca.issue(
            "apiserver",
            "kube-apiserver",
            hosts=(
                "127.0.0.1",
                "localhost",
                SERVICE_IP,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server=True,
        )
        admin = self.ca.issue("admin", "admin", organizations=("system:masters",), client=True)
        # The API server calls the node agent (logs) with this identity.
        self.kubelet_client = self.ca.issue(
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            organizations=("system:masters",),
            client=True,
        )
        sa_keys = service_account_keys(self.pki)
        write_kubeconfig(self.kubeconfig, self.server, self.ca.cert_pem, "admin", client=admin)

        etcd_url = self._start_etcd()
        self._spawn(
            "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            f"--secure-port={self.api_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={self.pki}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={self.ca.files.cert}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={sa_keys.cert}",
            f"--service-account-signing-key-file={sa_keys.key}",
            f"--kubelet-client-certificate={self.kubelet_client.cert}",
            f"--kubelet-client-key={self.kubelet_client.key}",
            f"--kubelet-certificate-authority={self.ca.files.cert}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            "--profiling=false",
        )
        context = self._tls_context(admin)
        self._health["kube-apiserver"] = functools.partial(
            self._wait_http, "kube-apiserver", f"{self.server}/readyz", context
        )
        self._health["kube-apiserver"]()

        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--profiling=false",
        ]
        kcm_port, scheduler_port = free_port(), free_port()
        self._spawn(
            "kube-controller-manager",
            *common,
            f"--secure-port={kcm_port}",
            f"--service-account-private-key-file={sa_keys.key}",
            f"--root-ca-file={self.ca.files.cert}",
            f"--cluster-signing-cert-file={self.ca.files.cert}",
            f"--cluster-signing-key-file={self.ca.files.key}",
            "--use-service-account-credentials=false",
            *self._controller_manager_limits(),
        )
        self._spawn("kube-scheduler", *common, f"--secure-port={scheduler_port}")
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # their self-signed serving certs; health only
        for component, port in (
            ("kube-controller-manager", kcm_port),
            ("kube-scheduler", scheduler_port),
        ):
            url = f"https://127.0.0.1:{port}/healthz"
            self._health[component] = functools.partial(self._wait_http, component, url, insecure)
            self._health[component]()
        self._wait_for_controllers()

    def _controller_manager_limits(self) -> list[str]:
        if self.controller_manager_qps is None:
            return []
        qps, burst = self.controller_manager_qps
        return [f"--kube-api-qps={qps:g}", f"--kube-api-burst={burst}"]

    def _start_etcd(self) -> str:
        client_port, peer_port = free_port(), free_port()
        url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",  # a test cluster need not survive a power cut
            "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        )
        self._health["etcd"] = functools.partial(
            self._wait_http, "etcd", f"{url}/health", None, lambda body: '"health":"true"' in body
        )
        self._health["etcd"]()
        return url

    def _spawn(self, component: str, *args: str) -> None:
        self._arguments[component] = args
        self._processes.append((component, self._launch(component)))

    def _launch(self, component: str) -> subprocess.Popen[bytes]:
        binary = self.bin_dir / component
        arguments = self._arguments[component]
        return spawn([binary, *arguments], self.logs / f"{component}.log", cwd=self.root)

    def _check_running(self) -> None:
        for component, process in self._processes:
            if process.poll() is not None:
                raise StartError(
                    f"{component} exited with code {process.returncode}:\n"
                    f"{self.log_tail(component)}"
                )

    def _wait_http(
        self,
        component: str,
        url: str,
        context: ssl.SSLContext | None,
        healthy: Callable[[str], bool] = lambda body: body.strip() == "ok",
    ) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            self._check_running()
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    body = response.read().decode()
                    if healthy(body):
                        return
                    last = body
            except (OSError, urllib.error.URLError) as error:
                last = str(error)
            time.sleep(0.1)
        raise StartError(f"{component} not healthy at {url}: {last}\n{self.log_tail(component)}")

    def _wait_for_controllers(self) -> None:
        """The controllers work once `default` has its ServiceAccount and root CA ConfigMap."""
        deadline = time.monotonic() + START_TIMEOUT
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            while True:
                self._check_running()
                try:
                    core.read_namespaced_service_account("default", "default")
                    core.read_namespaced_config_map("kube-root-ca.crt", "default")
                    return
                except ApiException as error:
                    if error.status != 404 or time.monotonic() > deadline:
                        raise StartError(
                            f"controllers not working: {error.reason}\n"
                            f"{self.log_tail('kube-controller-manager')}"
                        ) from error
                time.sleep(0.1)

    def _tls_context(self, identity: CertFiles) -> ssl.SSLContext:
        assert self.ca is not None
        context = ssl.create_default_context(cafile=str(self.ca.files.cert))
        context.load_cert_chain(str(identity.cert), str(identity.key))
        return context

    def describe(self) -> dict[str, Any]:
        """What a person needs to reach the cluster."""
        return {"server": self.server, "kubeconfig": str(self.kubeconfig), "root": str(self.root)}
