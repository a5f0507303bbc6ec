"""Operator settings, read from NOETL_* environment variables (the Helm chart sets them).

Scalars are plain strings; structured values (maps, lists) are JSON. Every setting has a default
that works on a fresh cluster, so `noetl operator` runs with none of them set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from noetl import __version__
from noetl.engine import DEFAULT_MAX_CHILD_DEPTH
from noetl.playbook.models import PLUGIN_TOOLS

_NAME_LISTS = ("namespaces", "excluded_namespaces")  # also read as comma-separated names


def default_images() -> dict[str, str]:
    return {tool: f"ghcr.io/noetl/noetl-plugin-{tool}:{__version__}" for tool in PLUGIN_TOOLS}


class OperatorSettings(BaseModel):
    namespaces: list[str] = Field(
        default_factory=list, description="Watched namespaces; empty means all."
    )
    excluded_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces (or shell patterns) left alone when all are watched.",
    )
    images: dict[str, str] = Field(
        default_factory=default_images, description="Tool -> plugin image."
    )
    image_pull_policy: str = "IfNotPresent"
    step_resources: dict[str, Any] = Field(
        default_factory=lambda: {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "512Mi"},
        }
    )
    step_node_selector: dict[str, str] = Field(default_factory=dict)
    step_tolerations: list[dict[str, Any]] = Field(default_factory=list)
    allowed_tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Tolerations a playbook's pod settings may ask for (see kube/tenancy.py).",
    )
    allowed_node_selectors: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Node label -> the values a playbook's nodeSelector may ask for (`*`: any).",
    )
    allowed_secrets: list[Annotated[str, StringConstraints(pattern=r"^[^/]+/[^/]+$")]] = Field(
        default_factory=list,
        description="`namespace/name` patterns of the Secrets a step's args.secretRef may name.",
    )
    step_service_account: str | None = None
    step_timeout_seconds: int = 3600
    finally_grace_seconds: float = Field(
        default=30.0, description="How long finally steps may run after a cancel or a timeout."
    )
    step_run_as_user: int = 65532
    job_ttl_seconds: int = 86400
    execution_ttl_seconds: int = 7 * 86400
    max_running_jobs_per_namespace: int = 200
    max_child_depth: int = Field(
        default=DEFAULT_MAX_CHILD_DEPTH,
        ge=0,
        description="How deep child executions (`tool: playbook`) may nest.",
    )
    step_pending_timeout: int = Field(
        default=300,
        ge=1,
        description="Seconds a step's pod may wait for an image it cannot pull, or be refused by "
        "a quota or admission, before the step fails naming why.",
    )
    reconcile_retry_limit: int = Field(
        default=8,
        ge=1,
        description="Transient API errors in a row that fail an execution (ReconcileError).",
    )
    reconcile_backoff_seconds: float = Field(
        default=1.0, ge=0, description="First wait before a driver that failed is resumed."
    )
    reconcile_backoff_max_seconds: float = Field(
        default=60.0, ge=0, description="Longest wait between two resumptions of a driver."
    )
    api_qps: float = 20.0
    api_burst: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(f"NOETL_{name.upper()}")
            if raw is None:
                continue
            if name in _NAME_LISTS and not raw.lstrip().startswith("["):
                values[name] = [ns.strip() for ns in raw.split(",") if ns.strip()]
            elif field.annotation in (str, "str", str | None, "str | None"):
                values[name] = raw
            else:
                values[name] = json.loads(raw)
        settings = cls.model_validate(values)
        settings.images = {**default_images(), **settings.images}
        return settings
