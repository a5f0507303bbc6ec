"""How the operator and the CLI reach the API server: in a pod its service account, else kubeconfig.

Kept apart from the operator so that the CLI's cluster commands load the Kubernetes client only,
never kopf or the metrics server.
"""

from __future__ import annotations

from kubernetes import client, config


def load_kube_config() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()
