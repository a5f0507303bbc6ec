"""The test cluster itself: API calls, CRDs, Jobs on the node agent, garbage collection, RBAC,
deadlines, env and files from Secrets, in-cluster clients, and simulated kwok nodes."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.cluster.build import kubernetes_version
from tests.cluster.cluster import Cluster
from tests.cluster.kwok import MESSAGE_ANNOTATION, POD_PLACEMENT

pytestmark = pytest.mark.cluster

T = TypeVar("T")
GROUP, PLURAL = "test.noetl.io", "widgets"

WIDGET_CRD = yaml.safe_load(
    """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.noetl.io}
spec:
  group: test.noetl.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
          status:
            type: object
            properties:
              phase: {type: string}
"""
)


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def api(kube_cluster: Cluster) -> Iterator[client.ApiClient]:
    with kube_cluster.api_client() as api_client:
        yield api_client


@pytest.fixture(scope="module")
def widget_crd(kube_cluster: Cluster) -> None:
    with kube_cluster.api_client() as api_client:
        extensions = client.ApiextensionsV1Api(api_client)
        try:
            extensions.create_custom_resource_definition(WIDGET_CRD)
        except ApiException as error:
            if error.status != 409:
                raise

        def established() -> bool:
            crd = extensions.read_custom_resource_definition("widgets.test.noetl.io")
            return any(
                c.type == "Established" and c.status == "True" for c in crd.status.conditions or []
            )

        wait_for(established, what="the CRD to be established")


def job(
    name: str,
    script: str,
    *,
    env: list[dict[str, Any]] | None = None,
    owner: dict[str, Any] | None = None,
    **pod_spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": "busybox:1.36",
        "command": ["sh", "-c", script],
    }
    if env:
        container["env"] = env
    container.update(pod_spec.pop("container", {}))
    job_spec = pod_spec.pop("job_spec", {})
    metadata: dict[str, Any] = {"name": name}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            **job_spec,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container], **pod_spec}},
        },
    }


def run_job(api: client.ApiClient, namespace: str, body: dict[str, Any], timeout: float = 60):
    """Create the Job and wait for its Complete or Failed condition; return (job, its pods)."""
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    name = body["metadata"]["name"]
    batch.create_namespaced_job(namespace, body)

    def finished() -> client.V1Job | None:
        found = batch.read_namespaced_job(name, namespace)
        done = [
            c
            for c in found.status.conditions or []
            if c.type in ("Complete", "Failed") and c.status == "True"
        ]
        return found if done else None

    finished_job = wait_for(finished, timeout, f"job {name} to finish")
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    return finished_job, pods


def job_condition(found: client.V1Job) -> tuple[str, str | None]:
    for condition in found.status.conditions or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.type, condition.reason
    raise AssertionError("job not finished")


def test_api_calls_work(api: client.ApiClient, kube_namespace: str) -> None:
    version = client.VersionApi(api).get_code()
    assert version.git_version == kubernetes_version()
    core = client.CoreV1Api(api)
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", kube_namespace} <= names
    core.create_namespaced_config_map(
        kube_namespace, {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    core.patch_namespaced_config_map("settings", kube_namespace, {"data": {"b": "2"}})
    assert core.read_namespaced_config_map("settings", kube_namespace).data == {"a": "1", "b": "2"}
    nodes = core.list_node().items
    assert any(node.metadata.name == "noetl-node" for node in nodes)


def test_crd_is_served_and_its_schema_enforced(
    api: client.ApiClient, kube_namespace: str, widget_crd: None
) -> None:
    custom = client.CustomObjectsApi(api)
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w"}}
    created = custom.create_namespaced_custom_object(
        GROUP, "v1", kube_namespace, PLURAL, {**body, "spec": {"size": 3}}
    )
    assert created["spec"] == {"size": 3}
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(
            GROUP,
            "v1",
            kube_namespace,
            PLURAL,
            {**body, "metadata": {"name": "bad"}, "spec": {"size": 0}},
        )
    assert rejected.value.status == 422
    assert "spec.size" in rejected.value.body
    # The status subresource: a status write leaves the spec alone, a stale write conflicts.
    stale = created["metadata"]["resourceVersion"]
    custom.patch_namespaced_custom_object_status(
        GROUP, "v1", kube_namespace, PLURAL, "w", {"status": {"phase": "Ready"}}
    )
    with pytest.raises(ApiException) as conflict:
        custom.replace_namespaced_custom_object(
            GROUP,
            "v1",
            kube_namespace,
            PLURAL,
            "w",
            {**body, "metadata": {"name": "w", "resourceVersion": stale}, "spec": {"size": 4}},
        )
    assert conflict.value.status == 409


def test_job_runs_to_completion_on_the_node_agent(
    api: client.ApiClient, kube_namespace: str
) -> None:
    script = 'echo first line; echo to stderr >&2; printf "the result" > "$NOETL_TERMINATION_LOG"'
    finished, pods = run_job(api, kube_namespace, job("hello", script))
    assert job_condition(finished)[0] == "Complete"
    (pod,) = pods
    assert pod.spec.node_name == "noetl-node"
    assert pod.status.phase == "Succeeded"
    assert pod.status.pod_ip == "127.0.0.1"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert terminated.message == "the result"
    assert terminated.started_at is not None and terminated.finished_at is not None
    log = client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, kube_namespace)
    assert log == "first line\nto stderr\n"
    tail = client.CoreV1Api(api).read_namespaced_pod_log(
        pod.metadata.name, kube_namespace, tail_lines=1, timestamps=True
    )
    assert tail.endswith(" to stderr\n") and tail.count("\n") == 1


def test_failing_job_ends_failed_with_exit_code_and_log_message(
    api: client.ApiClient, kube_namespace: str
) -> None:
    body = job(
        "broken",
        "echo something went wrong; exit 3",
        container={"terminationMessagePolicy": "FallbackToLogsOnError"},
    )
    finished, pods = run_job(api, kube_namespace, body)
    assert job_condition(finished) == ("Failed", "BackoffLimitExceeded")
    (pod,) = pods
    assert pod.status.phase == "Failed"
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    assert terminated.message == "something went wrong\n"


def test_deleting_the_owner_collects_its_jobs(
    api: client.ApiClient, kube_namespace: str, widget_crd: None
) -> None:
    custom, batch = client.CustomObjectsApi(api), client.BatchV1Api(api)
    owner = custom.create_namespaced_custom_object(
        GROUP,
        "v1",
        kube_namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": "owner"},
            "spec": {"size": 1},
        },
    )
    reference = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for name in ("child-a", "child-b"):
        batch.create_namespaced_job(kube_namespace, job(name, "sleep 30", owner=reference))
    custom.delete_namespaced_custom_object(
        GROUP, "v1", kube_namespace, PLURAL, "owner", propagation_policy="Foreground"
    )
    wait_for(
        lambda: not batch.list_namespaced_job(kube_namespace).items,
        what="the garbage collector to delete the owned Jobs",
    )
    wait_for(
        lambda: not client.CoreV1Api(api).list_namespaced_pod(kube_namespace).items,
        what="the Jobs' pods to go",
    )


def test_service_account_gets_exactly_its_rbac(
    kube_cluster: Cluster, api: client.ApiClient, kube_namespace: str
) -> None:
    path = kube_cluster.service_account_kubeconfig(kube_namespace, "limited")
    with config.new_client_from_config(config_file=str(path)) as limited:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(limited).list_namespaced_pod(kube_namespace)
        assert denied.value.status == 403
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            kube_namespace,
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            kube_namespace,
            {
                "metadata": {"name": "limited-reads-pods"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pod-reader",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "limited", "namespace": kube_namespace}
                ],
            },
        )
        wait_for(
            lambda: _allowed(lambda: client.CoreV1Api(limited).list_namespaced_pod(kube_namespace))
        )
        with pytest.raises(ApiException) as still_denied:
            client.CoreV1Api(limited).list_namespaced_secret(kube_namespace)
        assert still_denied.value.status == 403


def _allowed(call: Callable[[], object]) -> bool:
    try:
        call()
        return True
    except ApiException as error:
        if error.status == 403:
            return False
        raise


def test_pod_active_deadline_is_enforced(api: client.ApiClient, kube_namespace: str) -> None:
    started = time.monotonic()
    finished, pods = run_job(
        api, kube_namespace, job("slow-pod", "sleep 60", activeDeadlineSeconds=2)
    )
    assert time.monotonic() - started < 30
    assert job_condition(finished)[0] == "Failed"
    (pod,) = pods
    assert pod.status.phase == "Failed"
    assert pod.status.reason == "DeadlineExceeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.reason == "DeadlineExceeded"
    assert terminated.exit_code in (137, 143)


def test_job_active_deadline_stops_the_pod(api: client.ApiClient, kube_namespace: str) -> None:
    """The operator's Jobs carry the deadline on the Job: the Job controller deletes the pod and
    the node agent stops the process (SIGTERM) and removes the pod."""
    marker = f"noetl-deadline-{uuid.uuid4().hex[:8]}"
    body = job("slow-job", f"sleep 60; echo {marker}", job_spec={"activeDeadlineSeconds": 2})
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2
    finished, _ = run_job(api, kube_namespace, body)
    assert job_condition(finished) == ("Failed", "DeadlineExceeded")
    core = client.CoreV1Api(api)
    wait_for(
        lambda: not core.list_namespaced_pod(kube_namespace).items, what="the pod to be removed"
    )
    assert marker not in _processes()


def _processes() -> str:
    return subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout


def test_env_and_files_from_secrets_and_config_maps(
    api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        kube_namespace,
        {"metadata": {"name": "db"}, "stringData": {"password": "s3cret", "user": "ann"}},
    )
    core.create_namespaced_config_map(
        kube_namespace,
        {"metadata": {"name": "settings"}, "data": {"MODE": "fast", "conf.ini": "x=1"}},
    )
    env = [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREETING", "value": "hello $(user)"},
    ]
    script = (
        'echo "$DB_PASSWORD $user $MODE $GREETING"; echo "$POD_NAMESPACE ${POD_NAME%-*}"; '
        "cat /etc/noetl-test/secret/password; echo; cat /etc/noetl-test/config/conf.ini; echo; "
        "echo scratch > /tmp/scratch && cat /tmp/scratch"
    )
    body = job(
        "env",
        script,
        env=env,
        container={
            "envFrom": [{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "settings"}}],
            "volumeMounts": [
                {"name": "secret", "mountPath": "/etc/noetl-test/secret", "readOnly": True},
                {"name": "config", "mountPath": "/etc/noetl-test/config"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        },
        volumes=[
            {"name": "secret", "secret": {"secretName": "db"}},
            {"name": "config", "configMap": {"name": "settings"}},
            {"name": "tmp", "emptyDir": {}},
        ],
    )
    finished, (pod,) = run_job(api, kube_namespace, body)
    log = core.read_namespaced_pod_log(pod.metadata.name, kube_namespace)
    assert job_condition(finished)[0] == "Complete", log
    assert log.splitlines() == [
        "s3cret ann fast hello ann",
        f"{kube_namespace} env",
        "s3cret",
        "x=1",
        "scratch",
    ]


def test_in_cluster_client_uses_its_service_account_token(
    api: client.ApiClient, kube_namespace: str
) -> None:
    """A pod's process reaches the API server with the mounted ServiceAccount token, as the
    operator's own Deployment does, and has only the RBAC of its ServiceAccount."""
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role_binding(
        kube_namespace,
        {
            "metadata": {"name": "default-views"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": "default", "namespace": kube_namespace}
            ],
        },
    )
    script = (
        "from kubernetes import client, config\n"
        "config.load_incluster_config()\n"
        "core = client.CoreV1Api()\n"
        f"pods = core.list_namespaced_pod('{kube_namespace}').items\n"
        "print(sorted(p.metadata.name.split('-')[0] for p in pods))\n"
        "try:\n"
        f"    core.list_namespaced_secret('{kube_namespace}')\n"
        "except client.ApiException as error:\n"
        "    print(error.status)\n"
    )
    body = job("incluster", "", container={"image": "python", "command": ["python3", "-c", script]})
    finished, (pod,) = run_job(api, kube_namespace, body)
    log = client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, kube_namespace)
    assert job_condition(finished)[0] == "Complete", log
    assert log.splitlines() == ["['incluster']", "403"]


def test_deleting_a_running_pod_stops_its_process(
    api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(api)
    marker = f"noetl-running-{uuid.uuid4().hex[:8]}"
    script = f'trap "echo stopping; exit 0" TERM; while true; do sleep 0.1; done # {marker}'
    core.create_namespaced_pod(
        kube_namespace,
        {
            "metadata": {"name": "server"},
            "spec": {
                "containers": [
                    {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
                ],
                "terminationGracePeriodSeconds": 10,
            },
        },
    )

    def running() -> bool:
        pod = core.read_namespaced_pod("server", kube_namespace)
        return pod.status.phase == "Running" and bool(pod.status.container_statuses[0].ready)

    wait_for(running, what="the pod to run")
    assert marker in _processes()
    core.delete_namespaced_pod("server", kube_namespace)
    wait_for(
        lambda: not core.list_namespaced_pod(kube_namespace).items, 10, "the pod to be removed"
    )
    assert marker not in _processes()


def test_jobs_complete_on_simulated_kwok_nodes(
    kube_cluster: Cluster, api: client.ApiClient, kube_namespace: str
) -> None:
    nodes = kube_cluster.kwok().add_nodes(2)
    body = job(
        "many",
        "exit 1",  # never runs: kwok only pretends the pods completed
        job_spec={"completions": 20, "parallelism": 10},
        **POD_PLACEMENT,
    )
    answer = '{"result": 42}'
    body["spec"]["template"]["metadata"] = {"annotations": {MESSAGE_ANNOTATION: answer}}
    finished, pods = run_job(api, kube_namespace, body, timeout=120)
    assert job_condition(finished)[0] == "Complete"
    assert finished.status.succeeded == 20
    assert {pod.spec.node_name for pod in pods} <= set(nodes)
    messages = {p.status.container_statuses[0].state.terminated.message for p in pods}
    assert messages == {answer}
    leases = client.CoordinationV1Api(api).list_namespaced_lease("kube-node-lease").items
    assert set(nodes) <= {lease.metadata.name for lease in leases}
