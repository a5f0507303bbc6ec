"""Render the noetl-operator Helm chart with a real `helm` binary, for the chart's tests here and
for the server-side dry runs of the cluster tests (tests/cluster), which apply the same renders.

`helm` is taken from PATH, else from the cache that tests/cluster/build.py compiles it into.
`SCENARIOS` are the values the tests render with: the defaults, and a non-default set that
turns every switch (namespaced mode with two namespaces, ServiceMonitor, peering, custom images
and settings, the web view with its actions).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "noetl-operator"
RELEASE = "noetl-operator"
NAMESPACE = "noetl-system"

SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {
        "watchNamespaces": ["team-a", "team-b"],
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "peering": {"enabled": True, "name": "noetl-ha"},
        "replicaCount": 2,
        "image": {
            "repository": "registry.example/noetl/operator",
            "tag": "dev",
            "pullPolicy": "Always",
        },
        "plugins": {
            "images": {
                "shell": "registry.example/noetl/shell:dev",
                "duckdb": "registry.example/noetl/duckdb:dev",
            },
            "pullPolicy": "Never",
        },
        "settings": {
            "stepResources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": 1, "memory": "1Gi"},
            },
            "stepNodeSelector": {"pool": "batch"},
            "stepTolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "allowedTolerations": [{"key": "gpu", "effect": "NoSchedule"}],
            "allowedNodeSelectors": {"pool": ["batch", "gpu-*"]},
            "allowedSecrets": ["team-a/pg", "team-*/smtp"],
            "stepServiceAccount": "noetl-steps",
            "stepTimeoutSeconds": 600,
            "finallyGraceSeconds": 45,
            "jobTTLSeconds": 3600,
            "executionTTLSeconds": 2_000_000,
            "maxRunningJobsPerNamespace": 25,
            "apiQPS": 7.5,
            "apiBurst": 15,
        },
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "system", "operator": "Exists"}],
        "podAnnotations": {"example.com/team": "data"},
        "ui": {"enabled": True, "port": 9090, "actions": {"enabled": True}},
    },
}


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""


def find_helm() -> Path | None:
    """A helm binary: on PATH, else built by tests/cluster into its cache (newest first)."""
    on_path = shutil.which("helm")
    if on_path:
        return Path(on_path)
    cache = Path(os.environ.get("NOETL_CLUSTER_CACHE", Path.home() / ".cache" / "noetl-cluster"))
    built = sorted(cache.glob("*/bin/helm"), key=lambda path: path.stat().st_mtime, reverse=True)
    return built[0] if built else None


def helm(*args: str, values: dict[str, Any] | None = None) -> str:
    """Run helm with `args` (and `values` as a values file); its stdout, or HelmError."""
    binary = find_helm()
    if binary is None:
        raise HelmError("no helm binary: not on PATH, and tests/cluster has not built one")
    with tempfile.TemporaryDirectory(prefix="noetl-chart-") as scratch:
        command = [str(binary), *args]
        if values:
            path = Path(scratch) / "values.json"
            path.write_text(json.dumps(values))
            command += ["--values", str(path)]
        # helm's own config and caches stay in the scratch folder, not in the user's home.
        env = {
            **os.environ,
            **{
                f"HELM_{kind}_HOME": f"{scratch}/{kind.lower()}"
                for kind in ("CACHE", "CONFIG", "DATA")
            },
        }
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        )
    if done.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def render_chart(
    values: dict[str, Any] | None = None, namespace: str = NAMESPACE, include_crds: bool = False
) -> list[dict[str, Any]]:
    """`helm template` of the chart: its manifests, parsed (CRDs first when included)."""
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    if include_crds:
        args.append("--include-crds")
    return [doc for doc in yaml.safe_load_all(helm(*args, values=values)) if doc]


def aggregated(manifest: dict[str, Any]) -> bool:
    """A ClusterRole for people, aggregated into Kubernetes' edit/admin/view roles."""
    labels = manifest["metadata"].get("labels") or {}
    return any(label.startswith("rbac.authorization.k8s.io/aggregate-to-") for label in labels)
