"""What a playbook may ask of the cluster: tolerations, node selectors and Secrets, by allow-list.

Whoever may create an Execution in a namespace gets pods run there on their behalf. Without
limits that would let them schedule onto nodes kept for others (a toleration of a dedicated
taint, a node selector of a reserved pool) and read any Secret of the namespace through a step's
`args.secretRef`. The operator's settings say what is allowed; nothing is by default:

- `allowed_tolerations`: a playbook's toleration is allowed when one entry's fields all equal
  its own (an entry `{key: gpu}` allows any toleration of the key `gpu`; `{}` allows all);
- `allowed_node_selectors`: label key -> the values a playbook may select (`*`: any value);
- `allowed_secrets`: `namespace/name` patterns (shell-style, e.g. `team-*/pg`) of the Secrets a
  step may name.

The checks read only the playbook and the settings, never a Secret: the operator needs no right
to read Secrets (see docs/security.md).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from noetl.kube.settings import OperatorSettings
from noetl.playbook import Playbook, PlaybookError
from noetl.playbook.errors import join_path


def pod_violations(playbook: Playbook, settings: OperatorSettings) -> list[PlaybookError]:
    """Every toleration and node selector of the playbook's steps that the settings do not allow."""
    errors = []
    for i, step in enumerate(playbook.spec.workflow):
        pod = step.pod
        if pod is None:
            continue
        path = join_path("spec", "workflow", i, "pod")
        for j, toleration in enumerate(pod.tolerations or []):
            wanted = toleration.model_dump(by_alias=True, exclude_none=True)
            if not toleration_allowed(wanted, settings.allowed_tolerations):
                errors.append(
                    PlaybookError(
                        join_path(path, "tolerations", j),
                        f"the toleration {wanted} is not allowed by the operator's"
                        f" allowedTolerations ({_shown(settings.allowed_tolerations)})",
                    )
                )
        for key, value in (pod.node_selector or {}).items():
            allowed = settings.allowed_node_selectors.get(key, [])
            if not any(fnmatchcase(value, pattern) for pattern in allowed):
                errors.append(
                    PlaybookError(
                        join_path(path, "nodeSelector", key),
                        f"selecting nodes by {key}={value} is not allowed by the operator's"
                        f" allowedNodeSelectors ({_shown(settings.allowed_node_selectors)})",
                    )
                )
    return errors


def toleration_allowed(toleration: dict[str, Any], allowed: list[dict[str, Any]]) -> bool:
    return any(
        all(toleration.get(field) == value for field, value in entry.items()) for entry in allowed
    )


def secret_refusal(namespace: str, secret: str, settings: OperatorSettings) -> str | None:
    """Why a step may not use the Secret `secret` of `namespace`, or None when it may."""
    if any(fnmatchcase(f"{namespace}/{secret}", p) for p in settings.allowed_secrets):
        return None
    return (
        f"args.secretRef: the Secret {secret!r} is not among the operator's allowedSecrets"
        f" for namespace {namespace!r} ({_shown(settings.allowed_secrets)})"
    )


def secret_violations(
    playbook: Playbook, namespace: str, settings: OperatorSettings
) -> list[PlaybookError]:
    """Secrets the playbook names literally that it may not use (templated names are checked
    when their step starts)."""
    errors = []
    for i, step in enumerate(playbook.spec.workflow):
        secret = playbook.steps[step.step].args.get("secretRef")
        if isinstance(secret, str) and secret and "{" not in secret:
            refusal = secret_refusal(namespace, secret, settings)
            if refusal:
                path = join_path("spec", "workflow", i, "args", "secretRef")
                errors.append(PlaybookError(path, refusal.removeprefix("args.secretRef: ")))
    return errors


def _shown(allowed: object) -> str:
    return f"allowed: {allowed}" if allowed else "none allowed"
