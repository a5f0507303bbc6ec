"""One pod on the node agent: its containers run from their images, its status through the API.

A PodWorker thread lives from the moment the pod is bound to the node until the pod has finished
(or, for a pod that was already deleted, until its final delete). It finds each container's
image in local storage (waiting with ErrImagePull / ErrImageNeverPull while one is missing),
resolves env, volumes and the securityContext (retrying while a Secret or ConfigMap is missing,
reported as CreateContainerConfigError, as is a runAsNonRoot container whose image runs as
root), runs the init containers one after the other and then the containers together (each a
`podman run`, see runtime.py), restarts them as `restartPolicy` says, enforces
`activeDeadlineSeconds`, and handles deletion as a kubelet does: SIGTERM, SIGKILL after the
grace period, then the final delete with grace period 0. Every change of state is written to the
pod's status.
"""

from __future__ import annotations

import datetime
import functools
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster import container_logs, runtime, security_context
from tests.cluster.images import LocalImages, NoCommand, process_argv, pull_failure
from tests.cluster.pod_config import (
    ConfigError,
    Mount,
    ObjectReader,
    container_env,
    container_mounts,
    materialise_volumes,
)
from tests.cluster.probes import ProbeState
from tests.cluster.processes import die_with_parent, signal_group

MAX_MESSAGE = 4096  # a kubelet's limit for one container's termination message
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048  # FallbackToLogsOnError takes this much of the log
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
POD_IP = "127.0.0.1"
TICK = 0.1
TERM_RETRY_SECONDS = 0.5  # a container still being created cannot be signalled yet
# Exit codes of `podman run` itself: it could not create or start the container.
START_FAILURES = (125, 126, 127)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Plan:
    """What one container runs, resolved before any container of the pod starts."""

    env: dict[str, str]
    mounts: list[Mount]
    argv: list[str]
    security: list[str]
    image_id: str


@dataclass
class Container:
    """One container of the pod and the `podman run` process that currently plays it."""

    spec: Mapping[str, Any]
    pod_dir: Path
    pod_uid: str
    restart_count: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_at: float | None = None
    image_id: str = ""
    term_tried_at: float | None = None
    term_delivered: bool = False
    readiness: ProbeState | None = None
    liveness: ProbeState | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def runtime_name(self) -> str:
        """The runtime's name for the current run: pod uid, container, restart."""
        return f"k8s_{self.name}_{self.pod_uid}_{self.restart_count}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def terminated(self) -> dict[str, Any] | None:
        return self.state.get("terminated")

    @property
    def ready(self) -> bool:
        """Running, and its readiness probe (if any) passes."""
        passing = self.readiness is None or self.readiness.passing is True
        return "running" in self.state and passing

    def log_path(self, restart: int | None = None) -> Path:
        count = self.restart_count if restart is None else restart
        return self.pod_dir / f"{self.name}.{count}.log"

    @property
    def runtime_log(self) -> Path:
        """What `podman run` itself printed (its errors, and the container's stderr)."""
        return self.pod_dir / f"{self.name}.runtime.log"

    @property
    def termination_path(self) -> Path:
        return self.pod_dir / f"{self.name}.termination-log"

    def status(self, init: bool) -> dict[str, Any]:
        running = "running" in self.state
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": self.image_id,
            "ready": self.ready and not init,
            "started": running,
            "restartCount": self.restart_count,
            "state": self.state,
        }
        if self.process is not None:
            status["containerID"] = f"podman://{self.runtime_name}"
        if self.last_state:
            status["lastState"] = self.last_state
        return status


def _active(container: Container) -> bool:
    """Running, or waiting to be restarted."""
    return container.terminated is None or container.restart_at is not None


class PodWorker(threading.Thread):
    def __init__(
        self,
        pod: dict[str, Any],
        core: client.CoreV1Api,
        pod_dir: Path,
        images: LocalImages,
        agent_id: str,
        base_env: Callable[[Mapping[str, Any]], dict[str, str]],
        log: Callable[[str], None],
    ) -> None:
        metadata = pod["metadata"]
        super().__init__(name=f"pod {metadata['namespace']}/{metadata['name']}", daemon=True)
        self.pod = pod
        self.core = core
        self.pod_dir = pod_dir
        self.images = images
        self.agent_id = agent_id
        self.base_env = base_env
        self.log = log
        self.namespace, self.pod_name, self.uid = (
            metadata["namespace"],
            metadata["name"],
            metadata["uid"],
        )
        spec = pod["spec"]
        uid = self.uid
        self.inits = [Container(c, pod_dir, uid) for c in spec.get("initContainers") or []]
        self.containers = [Container(c, pod_dir, uid) for c in spec.get("containers") or []]
        self.restart_policy = spec.get("restartPolicy", "Always")
        self.deadline_seconds = spec.get("activeDeadlineSeconds")
        self.status: dict[str, Any] = dict(pod.get("status") or {})
        self.deleting = threading.Event()
        if metadata.get("deletionTimestamp"):
            self.deleting.set()
        self.gone = threading.Event()
        self.lock = threading.Lock()
        self._started_monotonic = time.monotonic()
        self._deleted = threading.Event()
        self._done = False  # the thread has nothing more to do

    # -- called from the agent's watch thread ----------------------------------------------

    def observe(self, pod: dict[str, Any]) -> bool:
        """Take the pod's latest version; True when the agent must now do the final delete
        (the pod is being deleted and this worker's thread has already ended)."""
        with self.lock:
            self.pod = pod
            if pod["metadata"].get("deletionTimestamp"):
                self.deleting.set()
            return self._done and self.deleting.is_set()

    def forget(self) -> None:
        """The pod is gone from the API: stop at once."""
        self.gone.set()
        self.deleting.set()

    def kill_now(self) -> None:
        """Remove the containers at once (the pod is gone, or the agent stops)."""
        for container in [*self.inits, *self.containers]:
            if container.running:
                runtime.remove(container.runtime_name)
                assert container.process is not None
                signal_group(container.process, signal.SIGKILL)

    def find_log(self, container: str, previous: bool) -> tuple[Path, Callable[[], bool]] | None:
        for candidate in [*self.inits, *self.containers]:
            if candidate.name == container and candidate.process is not None:
                if previous:
                    if candidate.restart_count == 0:
                        return None
                    return candidate.log_path(candidate.restart_count - 1), lambda: False
                return candidate.log_path(), functools.partial(getattr, candidate, "running")
        return None

    # -- the pod's life --------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.status.get("phase") not in ("Succeeded", "Failed"):
                self._live()
        except Exception as error:  # a bug here must show in the agent's log, not vanish
            self.log(f"pod {self.namespace}/{self.pod_name}: agent error: {error!r}")
            self.kill_now()
        # A finished pod stays until someone deletes it; then the agent calls final_delete.
        with self.lock:
            self._done = True
            delete_now = self.deleting.is_set()
        if delete_now:
            self.final_delete()

    def _live(self) -> None:
        self.status["startTime"] = self.status.get("startTime") or now()
        self._started_monotonic = time.monotonic()
        self._publish("Pending")
        plans = self._prepare()
        if plans is None:
            self._finish_after_deletion()
            return
        for init in self.inits:
            self._start(init, plans[init.name])
            self._publish("Pending")
            outcome = self._wait(functools.partial(_active, init), plans)
            if outcome is not None:
                self._stop_all(outcome)
                return
            if init.terminated and init.terminated["exitCode"] != 0:
                self._publish("Failed")
                return
        for container in self.containers:
            self._start(container, plans[container.name])
        self._publish("Running")
        outcome = self._wait(self._any_active, plans)
        if outcome is not None:
            self._stop_all(outcome)
            return
        failed = any(c.terminated and c.terminated["exitCode"] != 0 for c in self.containers)
        self._publish("Failed" if failed else "Succeeded")

    def _prepare(self) -> dict[str, Plan] | None:
        """Every container's plan, retried while an image or a referenced object is missing."""
        attempts = 0
        while not self.deleting.is_set():
            attempts += 1
            try:
                plans = self._plans(attempts)
                if plans is not None:
                    return plans
            except (ConfigError, NoCommand, security_context.NonRootError) as error:
                for container in [*self.inits, *self.containers]:
                    container.state = {
                        "waiting": {"reason": "CreateContainerConfigError", "message": str(error)}
                    }
            self._publish("Pending")
            if self._deadline_passed():
                self._stop_all("DeadlineExceeded")
                return None
            self.deleting.wait(1.0)
        return None

    def _plans(self, attempts: int) -> dict[str, Plan] | None:
        """Plans, or None after marking the containers whose image is not in local storage."""
        everything = [*self.inits, *self.containers]
        configs = {c.name: self.images.config(c.spec.get("image", "")) for c in everything}
        missing = [c for c in everything if configs[c.name] is None]
        for container in missing:
            container.state = {"waiting": pull_failure(container.spec, attempts)}
        if missing:
            return None
        reader = ObjectReader(self.core, self.namespace)
        volumes = materialise_volumes(self.pod, reader, self.pod_dir)
        pod_label = f"{self.pod_name}_{self.namespace}({self.uid})"
        plans = {}
        for container in everything:
            image = configs[container.name]
            assert image is not None
            env = container_env(self.pod, container.spec, reader, self.base_env(self.pod))
            context = security_context.effective(self.pod["spec"], container.spec)
            security_context.verify_run_as_non_root(context, image.user, pod_label, container.name)
            plans[container.name] = Plan(
                env=env,
                mounts=container_mounts(container.spec, volumes),
                argv=process_argv(container.spec, image, env),
                security=security_context.runtime_options(self.pod["spec"], context, image.user),
                image_id=image.image_id,
            )
        return plans

    def _start(self, container: Container, plan: Plan) -> None:
        container.termination_path.write_bytes(b"")
        container.termination_path.chmod(0o666)  # as a kubelet leaves it: any user may write
        termination = Mount(
            container.termination_path,
            container.spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH,
            read_only=False,
        )
        command = runtime.run_command(
            name=container.runtime_name,
            agent_id=self.agent_id,
            image=container.spec["image"],
            argv=plan.argv,
            env_names=sorted(plan.env),
            working_dir=container.spec.get("workingDir"),
            hostname=self.pod_name,
            mounts=[*plan.mounts, termination],
            security=plan.security,
            log_path=container.log_path(),
        )
        with container.runtime_log.open("wb") as runtime_log:
            container.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=runtime_log,
                env=runtime.environment(plan.env),
                cwd=self.pod_dir,
                start_new_session=True,  # its own process group, killed as a whole
                preexec_fn=die_with_parent,
            )
        container.image_id = plan.image_id
        container.started_at = now()
        container.state = {"running": {"startedAt": container.started_at}}
        container.restart_at = None
        container.term_tried_at, container.term_delivered = None, False
        started = time.monotonic()
        readiness, liveness = (
            container.spec.get("readinessProbe"),
            container.spec.get("livenessProbe"),
        )
        container.readiness = ProbeState(readiness, container.spec, started) if readiness else None
        container.liveness = ProbeState(liveness, container.spec, started) if liveness else None

    def _any_active(self) -> bool:
        return any(_active(c) for c in self.containers)

    def _wait(self, active: Callable[[], bool], plans: dict[str, Plan]) -> str | None:
        """Reap and restart until `active()` is false; or return why the pod must stop now."""
        while active():
            if self.deleting.is_set():
                return "Deleted"
            if self._deadline_passed():
                return "DeadlineExceeded"
            changed = False
            for container in [*self.inits, *self.containers]:
                process = container.process
                exited = process is not None and process.poll() is not None
                if exited and container.terminated is None and container.restart_at is None:
                    self._reap(container)
                    changed = True
                if container.running and self._probe(container):
                    changed = True
                if container.restart_at is not None and time.monotonic() >= container.restart_at:
                    container.restart_count += 1
                    self._start(container, plans[container.name])
                    changed = True
            if changed:
                self._publish("Running" if not self._in_init() else "Pending")
            time.sleep(TICK)
        return None

    def _probe(self, container: Container) -> bool:
        """Run the container's due probes; True when its readiness changed. A failed liveness
        probe kills the container, and its restart policy takes over."""
        now = time.monotonic()
        changed = container.readiness is not None and container.readiness.check_if_due(now)
        liveness = container.liveness
        if liveness is not None and liveness.check_if_due(now) and liveness.passing is False:
            runtime.signal_container(container.runtime_name, "KILL")
        return changed

    def _in_init(self) -> bool:
        return any(i.terminated is None for i in self.inits)

    def _reap(self, container: Container, reason: str | None = None) -> None:
        assert container.process is not None
        code = container.process.wait()
        signal_group(container.process, signal.SIGKILL)  # what it left running goes too
        exit_code = 128 - code if code < 0 else code
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
            "startedAt": container.started_at,
            "finishedAt": now(),
            "containerID": f"podman://{container.runtime_name}",
        }
        message = self._termination_message(container, exit_code)
        start_error = _start_error(container.runtime_log) if exit_code in START_FAILURES else ""
        if start_error:
            # As a kubelet reports a container that could not be started.
            terminated.update(exitCode=128, reason="StartError")
            message = start_error
        if message:
            terminated["message"] = message
        container.state = {"terminated": terminated}
        restart = self.restart_policy == "Always" or (
            self.restart_policy == "OnFailure" and exit_code != 0
        )
        if restart and reason is None:
            # A kubelet's back-off: 1 s, doubling, at most 10 s here (5 min there).
            delay = min(10.0, 2.0**container.restart_count)
            container.restart_at = time.monotonic() + delay
            container.last_state = container.state
            message = f"back-off {delay:.0f}s restarting failed container={container.name}"
            container.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}

    def _termination_message(self, container: Container, exit_code: int) -> str:
        message = container.termination_path.read_bytes()[:MAX_MESSAGE]
        if not message.strip() and exit_code != 0:
            policy = container.spec.get("terminationMessagePolicy", "File")
            if policy == "FallbackToLogsOnError":
                lines = container_logs.text(container.log_path()).splitlines(keepends=True)
                message = b"".join(lines[-FALLBACK_LINES:])[-FALLBACK_BYTES:]
        return message.decode(errors="replace")

    def _deadline_passed(self) -> bool:
        if self.deadline_seconds is None:
            return False
        return time.monotonic() - self._started_monotonic > float(self.deadline_seconds)

    def _stop_all(self, why: str) -> None:
        """Kill what runs (SIGTERM, then SIGKILL after the grace period) and settle the phase."""
        grace = self._grace_seconds()
        running = [c for c in [*self.inits, *self.containers] if c.running]
        until = time.monotonic() + grace
        while any(c.running for c in running) and not self.gone.is_set():
            if time.monotonic() >= until:
                for container in running:
                    if container.running:
                        runtime.signal_container(container.runtime_name, "KILL")
                break
            for container in running:
                self._terminate(container)
            time.sleep(TICK)
        reason = "DeadlineExceeded" if why == "DeadlineExceeded" else None
        for container in [*self.inits, *self.containers]:
            if container.process is not None and container.terminated is None:
                self._reap(container, reason)
            container.restart_at = None
            if container.process is None and "waiting" in container.state:
                container.state = {
                    "terminated": {"exitCode": 137, "reason": reason or "ContainerStatusUnknown"}
                }
        if self.gone.is_set():
            return
        if why == "DeadlineExceeded":
            self.status["reason"] = "DeadlineExceeded"
            self.status["message"] = "Pod was active on the node longer than the specified deadline"
        failed = any(
            c.terminated and c.terminated["exitCode"] != 0 for c in [*self.inits, *self.containers]
        )
        self._publish("Failed" if failed or why == "DeadlineExceeded" else "Succeeded")

    def _terminate(self, container: Container) -> None:
        """SIGTERM the container once; retried while the runtime is still creating it."""
        if container.term_delivered or not container.running:
            return
        tried = container.term_tried_at
        if tried is not None and time.monotonic() - tried < TERM_RETRY_SECONDS:
            return
        container.term_tried_at = time.monotonic()
        container.term_delivered = runtime.signal_container(container.runtime_name, "TERM")

    def _finish_after_deletion(self) -> None:
        if not self.gone.is_set() and self.deleting.is_set():
            self._stop_all("Deleted")

    def _grace_seconds(self) -> float:
        with self.lock:
            metadata, spec = self.pod["metadata"], self.pod["spec"]
        grace = metadata.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace)

    # -- talking to the API ----------------------------------------------------------------

    def _publish(self, phase: str) -> None:
        if self.gone.is_set():
            return
        status = self.status
        status["phase"] = phase
        status["hostIP"] = POD_IP
        status["hostIPs"] = [{"ip": POD_IP}]
        if any("running" in c.state or c.terminated for c in self.containers):
            status["podIP"] = POD_IP
            status["podIPs"] = [{"ip": POD_IP}]
        status["initContainerStatuses"] = [c.status(init=True) for c in self.inits]
        status["containerStatuses"] = [c.status(init=False) for c in self.containers]
        if not self.inits:
            status.pop("initContainerStatuses")
        ready = phase == "Running" and all(c.ready for c in self.containers)
        initialized = all(i.terminated and i.terminated["exitCode"] == 0 for i in self.inits)
        started = any(c.process is not None for c in [*self.inits, *self.containers])
        finished = phase in ("Succeeded", "Failed")
        self._conditions(
            {
                "PodScheduled": (True, None),
                "PodReadyToStartContainers": (started, None),
                "Initialized": (initialized or finished, None),
                "ContainersReady": (ready, "PodCompleted" if finished else None),
                "Ready": (ready, "PodCompleted" if finished else None),
            }
        )
        patch = [{"op": "replace", "path": "/status", "value": status}]
        try:
            self.core.patch_namespaced_pod_status(self.pod_name, self.namespace, patch)
        except ApiException as error:
            if error.status != 404:
                self.log(f"pod {self.namespace}/{self.pod_name}: status update: {error.reason}")

    def _conditions(self, wanted: dict[str, tuple[bool, str | None]]) -> None:
        existing = {c["type"]: c for c in self.status.get("conditions") or []}
        conditions = []
        for kind, (value, reason) in wanted.items():
            text = "True" if value else "False"
            old = existing.get(kind)
            condition = {"type": kind, "status": text, "lastProbeTime": None}
            if old is not None and old.get("status") == text:
                condition["lastTransitionTime"] = old.get("lastTransitionTime")
            else:
                condition["lastTransitionTime"] = now()
            if reason and not value:
                condition["reason"] = reason
            conditions.append(condition)
        self.status["conditions"] = conditions

    def final_delete(self) -> None:
        """The kubelet's last word on a pod being deleted: remove it with grace period 0."""
        if self.gone.is_set() or self._deleted.is_set():
            return
        self._deleted.set()
        options = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
        )
        try:
            self.core.delete_namespaced_pod(
                self.pod_name, self.namespace, grace_period_seconds=0, body=options
            )
        except ApiException as error:
            if error.status not in (404, 409):
                self.log(f"pod {self.namespace}/{self.pod_name}: final delete: {error.reason}")


def _start_error(runtime_log: Path) -> str:
    """podman's own error, when it (not the container) failed: its last line says why."""
    lines = (
        runtime_log.read_text(errors="replace").strip().splitlines() if runtime_log.exists() else []
    )
    if lines and lines[-1].startswith("Error: "):
        return lines[-1].removeprefix("Error: ")[:MAX_MESSAGE]
    return ""
