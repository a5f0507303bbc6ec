"""A container's effective securityContext, checked and turned into container runtime options.

Kubernetes merges the pod's securityContext with the container's (the container's fields win),
refuses `runAsNonRoot` when the process would run as root (with the kubelet's messages, reported
as CreateContainerConfigError), and asks the runtime for the user, the read-only root, the
capabilities, no_new_privs and the seccomp profile. `runtime_options` gives those as `podman run`
options. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Fields a pod's securityContext gives to each of its containers unless the container sets them.
_INHERITED = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")


class NonRootError(ValueError):
    """`runAsNonRoot` is set and the container would run as root (or cannot be proven not to)."""


def effective(pod_spec: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """The container's securityContext with the pod's defaults filled in."""
    pod_context = pod_spec.get("securityContext") or {}
    merged = {key: pod_context[key] for key in _INHERITED if key in pod_context}
    merged.update(container.get("securityContext") or {})
    return merged


def image_uid(user: str) -> tuple[int | None, str]:
    """The uid an image's USER names (`name`, `uid`, `uid:gid`, or empty for root), or its name."""
    name = user.split(":", 1)[0]
    if not name:
        return 0, ""
    if name.isdigit():
        return int(name), ""
    return None, name


def verify_run_as_non_root(
    context: Mapping[str, Any], image_user: str, pod_label: str, container_name: str
) -> None:
    """Raise NonRootError as the kubelet does; `pod_label` is `name_namespace(uid)`."""
    if not context.get("runAsNonRoot"):
        return
    where = f'(pod: "{pod_label}", container: {container_name})'
    if context.get("runAsUser") is not None:
        if context["runAsUser"] == 0:
            raise NonRootError(f"container's runAsUser breaks non-root policy {where}")
        return
    uid, name = image_uid(image_user)
    if uid == 0:
        raise NonRootError(f"container has runAsNonRoot and image will run as root {where}")
    if uid is None:
        raise NonRootError(
            f"container has runAsNonRoot and image has non-numeric user ({name}), "
            f"cannot verify user is non-root {where}"
        )


def runtime_options(
    pod_spec: Mapping[str, Any], context: Mapping[str, Any], image_user: str
) -> list[str]:
    """`podman run` options for the user, groups, root filesystem, privileges and seccomp."""
    options: list[str] = []
    user = context.get("runAsUser")
    group = context.get("runAsGroup")
    if user is not None or group is not None:
        name = str(user) if user is not None else (image_user.split(":", 1)[0] or "0")
        options.append(f"--user={name}:{group}" if group is not None else f"--user={name}")
    pod_context = pod_spec.get("securityContext") or {}
    groups = [*pod_context.get("supplementalGroups", [])]
    if pod_context.get("fsGroup") is not None:
        groups.append(pod_context["fsGroup"])
    options += [f"--group-add={group_id}" for group_id in groups]
    if context.get("readOnlyRootFilesystem"):
        # Kubernetes gives no writable /tmp or /run on a read-only root; podman would.
        options += ["--read-only", "--read-only-tmpfs=false"]
    if context.get("privileged"):
        options.append("--privileged")
    capabilities = context.get("capabilities") or {}
    options += [f"--cap-drop={_capability(name)}" for name in capabilities.get("drop") or []]
    options += [f"--cap-add={_capability(name)}" for name in capabilities.get("add") or []]
    if context.get("allowPrivilegeEscalation") is False:
        options.append("--security-opt=no-new-privileges")
    profile = (context.get("seccompProfile") or {}).get("type", "Unconfined")
    if profile == "Localhost":
        options.append(f"--security-opt=seccomp={context['seccompProfile']['localhostProfile']}")
    elif profile != "RuntimeDefault":
        options.append("--security-opt=seccomp=unconfined")  # Kubernetes' default
    return options


def _capability(name: str) -> str:
    return name if name.upper() == "ALL" else "CAP_" + name.upper().removeprefix("CAP_")
