"""The objects the operator creates, as plain manifests: step Jobs, child Executions, ConfigMaps.

Pods of steps run as non-root with every capability dropped, a read-only root filesystem (a
scratch /tmp is mounted: the images make it HOME, TMPDIR and the working directory) and no
service-account token. Step args travel as an environment value, every `$` doubled so that the
kubelet's `$(VAR)` expansion gives them back unchanged; secrets only by reference, never inlined:
the Secret named in `args.secretRef` (if the operator's settings allow it) is mounted at
SECRET_DIR, where the plugin runtime reads it, exports it as env vars to the step and masks its
values in everything the step reports (a pod's env could not tell the Secret's values apart).
Labels carry names through `label_value` (hashed past 63 characters); who owns a Job or child
Execution is read from its ownerReference, never a label. The step's outcome comes back as the
container's termination message, from the file the plugin runtime writes.
"""

from __future__ import annotations

import json
from typing import Any

from noetl.engine import StartChildExecution, StartStep
from noetl.kube.names import label_value, run_name
from noetl.kube.settings import OperatorSettings
from noetl.kube.tenancy import secret_refusal
from noetl.playbook import API_VERSION, Step
from noetl.plugins import container as container_tool
from noetl.plugins.messages import StepRequest
from noetl.plugins.runtime import DEFAULT_TERMINATION, SECRET_DIR

EXECUTION_LABEL = "noetl.io/execution"
STEP_LABEL = "noetl.io/step"
INDEX_LABEL = "noetl.io/index"
ATTEMPT_LABEL = "noetl.io/attempt"
PARENT_LABEL = "noetl.io/parent"
DEPTH_LABEL = "noetl.io/depth"  # on a child Execution: how many parents it has
PURPOSE_LABEL = "noetl.io/purpose"
TOOL_LABEL = "noetl.io/tool"
# On step pods, which are owned by their Job: the Execution they run for.
EXECUTION_NAME_ANNOTATION = "noetl.io/execution"
EXECUTION_UID_ANNOTATION = "noetl.io/execution-uid"
SNAPSHOT_ANNOTATION = "noetl.io/snapshot"  # on a run: the digest of the snapshot it was made from
MAX_ARGS_BYTES = 128 * 1024
BACKSTOP_SECONDS = 30


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    """Whether `obj` names the object with `uid` among its owners."""
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def run_of(labels: dict[str, str]) -> tuple[str, int | None, int]:
    """(step, index, attempt) of the run a Job or child Execution was made for, from its labels."""
    index = labels.get(INDEX_LABEL)
    return labels[STEP_LABEL], int(index) if index is not None else None, int(labels[ATTEMPT_LABEL])


def owner_reference(execution: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Execution",
        "name": execution["metadata"]["name"],
        "uid": execution["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owner_name(obj: dict[str, Any]) -> str | None:
    """The name of the Execution that owns a Job, ConfigMap or child Execution."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "Execution" and ref.get("controller"):
            return str(ref["name"])
    return None


def execution_selector(execution: str) -> str:
    """The label selector of what belongs to an execution."""
    return f"{EXECUTION_LABEL}={label_value(execution)}"


def literal_env(name: str, value: str) -> dict[str, str]:
    """An env var whose value the kubelet passes on as it is: `$$` is its escape for `$`."""
    return {"name": name, "value": value.replace("$", "$$")}


def run_labels(execution: str, command: StartStep | StartChildExecution) -> dict[str, str]:
    labels = {
        EXECUTION_LABEL: label_value(execution),
        STEP_LABEL: command.step,
        ATTEMPT_LABEL: str(command.attempt),
        TOOL_LABEL: command.tool if isinstance(command, StartStep) else "playbook",
        "app.kubernetes.io/name": "noetl-step",
        "app.kubernetes.io/part-of": "noetl",
        "app.kubernetes.io/managed-by": "noetl-operator",
    }
    if command.index is not None:
        labels[INDEX_LABEL] = str(command.index)
    return labels


def run_metadata(
    execution: dict[str, Any], command: StartStep | StartChildExecution, labels: dict[str, str]
) -> dict[str, Any]:
    """Metadata of what runs one attempt: its deterministic name, owned by the Execution."""
    return {
        "name": run_name(
            execution["metadata"]["name"], command.step, command.index, command.attempt
        ),
        "namespace": execution["metadata"]["namespace"],
        "labels": labels,
        "annotations": {"noetl.io/run": command.key},
        "ownerReferences": [owner_reference(execution)],
    }


def step_job(
    execution: dict[str, Any], command: StartStep, step: Step, settings: OperatorSettings
) -> dict[str, Any]:
    name = execution["metadata"]["name"]
    labels = run_labels(name, command)
    pod = step.pod
    container: dict[str, Any] = {
        "name": "step",
        "imagePullPolicy": settings.image_pull_policy,
        "resources": (
            pod.resources.model_dump(by_alias=True, exclude_none=True)
            if pod and pod.resources
            else settings.step_resources
        ),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        # Kubernetes' defaults, set so that what the runtime writes and what is read is in view.
        "terminationMessagePath": DEFAULT_TERMINATION,
        "terminationMessagePolicy": "File",
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if command.tool == "container":
        container.update(_image_container(command.args))
    else:
        container.update(_plugin_container(execution, command, settings))
    secret = command.args.get("secretRef")
    if isinstance(secret, str) and secret:
        refusal = secret_refusal(execution["metadata"]["namespace"], secret, settings)
        if refusal:
            raise ValueError(refusal)
        if command.tool == "container":
            # Any image reads its Secret as env vars; no NoETL runtime is there to mask it.
            container["envFrom"] = [{"secretRef": {"name": secret}}]
        else:
            volumes.append({"name": "secret", "secret": {"secretName": secret}})
            container["volumeMounts"].append(
                {"name": "secret", "mountPath": SECRET_DIR, "readOnly": True}
            )
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.step_run_as_user,
            "runAsGroup": settings.step_run_as_user,
            "fsGroup": settings.step_run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
        "nodeSelector": (
            pod.node_selector if pod and pod.node_selector else settings.step_node_selector
        )
        or None,
        "tolerations": (
            [t.model_dump(by_alias=True, exclude_none=True) for t in pod.tolerations]
            if pod and pod.tolerations
            else settings.step_tolerations
        )
        or None,
        "serviceAccountName": settings.step_service_account,
    }
    # The engine's timer ends a step at its timeout; the Job's deadline is a backstop behind it.
    timeout = (
        command.timeout + BACKSTOP_SECONDS if command.timeout else settings.step_timeout_seconds
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": run_metadata(execution, command, labels),
        "spec": {
            "backoffLimit": 0,  # retries belong to the engine, which knows the playbook's policy
            "activeDeadlineSeconds": max(1, round(timeout)),
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        EXECUTION_NAME_ANNOTATION: name,
                        EXECUTION_UID_ANNOTATION: execution["metadata"]["uid"],
                    },
                },
                "spec": {key: value for key, value in pod_spec.items() if value is not None},
            },
        },
    }


def _plugin_container(
    execution: dict[str, Any], command: StartStep, settings: OperatorSettings
) -> dict[str, Any]:
    """The tool's plugin image, given the step's request as an environment value."""
    request = StepRequest(
        step=command.step,
        tool=command.tool,
        args=command.args,
        code=command.code,
        attempt=command.attempt,
        index=command.index,
        execution={"id": execution["metadata"]["uid"], "name": execution["metadata"]["name"]},
    )
    payload = json.dumps(request.to_json(), separators=(",", ":"))
    if len(payload) > MAX_ARGS_BYTES:
        raise ValueError(
            f"step input is {len(payload)} bytes, over the {MAX_ARGS_BYTES} byte limit"
        )
    return {
        "image": settings.images[command.tool],
        "env": [literal_env("NOETL_INPUT_JSON", payload)],
        # A plugin that dies before writing its outcome leaves the tail of its log instead.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _image_container(args: dict[str, Any]) -> dict[str, Any]:
    """A `container` step's own image, command, args, environment and working directory."""
    image = args.get("image")
    if not isinstance(image, str) or not image:
        raise ValueError(f"args.image must name an image, got {image!r}")
    spec: dict[str, Any] = {
        "image": image,
        "env": [literal_env(k, v) for k, v in container_tool.environment(args).items()],
        # The result is what the container writes there (Kubernetes' default path, made explicit).
        "terminationMessagePath": container_tool.TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    for key in ("command", "args"):
        value = args.get(key)
        if value is not None:
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"args.{key} must be a list of strings, got {value!r}")
            spec[key] = value
    if isinstance(args.get("workingDir"), str):
        spec["workingDir"] = args["workingDir"]
    return spec


def execution_depth(execution: dict[str, Any]) -> int:
    """How many parent executions an Execution has: 0 unless the operator started it as a child."""
    labels = execution["metadata"].get("labels") or {}
    try:
        return max(0, int(labels.get(DEPTH_LABEL, 0)))
    except ValueError:
        return 0


def child_execution(execution: dict[str, Any], command: StartChildExecution) -> dict[str, Any]:
    name = execution["metadata"]["name"]
    labels = {
        **run_labels(name, command),
        PARENT_LABEL: label_value(name),
        DEPTH_LABEL: str(execution_depth(execution) + 1),
    }
    labels["app.kubernetes.io/name"] = "noetl-execution"
    return {
        "apiVersion": API_VERSION,
        "kind": "Execution",
        "metadata": run_metadata(execution, command, labels),
        "spec": {"playbookRef": {"name": command.playbook}, "workload": command.workload},
    }


def execution_config_map(
    execution: dict[str, Any], name: str, purpose: str, data: dict[str, str]
) -> dict[str, Any]:
    execution_name = execution["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": execution["metadata"]["namespace"],
            "labels": {
                EXECUTION_LABEL: label_value(execution_name),
                PURPOSE_LABEL: purpose,
                "app.kubernetes.io/part-of": "noetl",
            },
            "ownerReferences": [owner_reference(execution)],
        },
        "data": data,
    }
