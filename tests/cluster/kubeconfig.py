"""Kubeconfig files for the test cluster: one cluster entry, one user, credentials inline.

Inline (base64) credentials keep a kubeconfig self-contained, so it can be copied or handed to a
child process without the certificate files beside it.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from tests.cluster.pki import CertFiles


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: bytes,
    user: str,
    *,
    client: CertFiles | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> Path:
    """Write a kubeconfig that reaches `server` as `user`, by client certificate or bearer token."""
    credentials: dict[str, str] = {}
    if client is not None:
        credentials["client-certificate-data"] = _b64(client.cert.read_bytes())
        credentials["client-key-data"] = _b64(client.key.read_bytes())
    if token is not None:
        credentials["token"] = token
    context: dict[str, str] = {"cluster": "test-cluster", "user": user}
    if namespace is not None:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test-cluster",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
