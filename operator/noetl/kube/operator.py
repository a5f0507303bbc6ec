"""`noetl operator`: the kopf operator with its metrics and health endpoints, in one process.

It watches the given namespaces (or all), serves Prometheus metrics on /metrics and kopf's
liveness probe on /healthz. kopf watches Executions, Playbooks and CronPlaybooks; the step Jobs
and pods, the busiest streams, are the operator's own watches (`watches`) unless kopf must have
them (see `run_operator`). Peering is off by default (one replica, Recreate): with a peering
name, instances elect one active operator, each with a random priority so that two never tie
(equal priorities freeze kopf peering). Logs are quiet at INFO: kopf's line for every handler
call that succeeds (one per watch event) is lowered to DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from typing import Any

import kopf
import prometheus_client

from noetl.kube.api import KubeApi
from noetl.kube.driver import OperatorContext
from noetl.kube.handlers import register
from noetl.kube.kubeconfig import load_kube_config
from noetl.kube.manifests import EXECUTION_LABEL
from noetl.kube.ratelimit import TokenBucket
from noetl.kube.registry import DriverRegistry
from noetl.kube.settings import OperatorSettings
from noetl.kube.slots import JobSlots
from noetl.kube.watches import Watch


class HandlerSuccessAtDebug(logging.Filter):
    """Lowers kopf's "Handler ... succeeded." lines to DEBUG, and drops them unless DEBUG is on.

    kopf logs each successful handler call at INFO, which is one line per watch event of every
    Execution (and step Job, when kopf watches those): noise that buries what matters. Warnings
    and errors pass unchanged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.getMessage().endswith(" succeeded."):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's record of an object as last handled, kept nowhere and built from nothing.

    Only `on.event` handlers are registered, and they see no diff; yet kopf builds this record
    for every watch event, a deep copy of the whole object (a fifth of the operator's CPU).
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def configure_logging(log_format: str) -> None:
    # JSON lines for log collectors by default; plain text for people at a terminal.
    kopf.configure(log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.FULL)
    logging.getLogger().setLevel(logging.INFO)
    objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, HandlerSuccessAtDebug) for f in objects.filters):
        objects.addFilter(HandlerSuccessAtDebug())


async def run_operator(
    settings: OperatorSettings,
    metrics_port: int | None = 8080,
    health_port: int | None = 8081,
    peering: str | None = None,
) -> None:
    api = KubeApi(load_kube_config(), TokenBucket(settings.api_qps, settings.api_burst))
    context = OperatorContext(api, settings, JobSlots(settings.max_running_jobs_per_namespace))
    registry = kopf.OperatorRegistry()
    drivers = DriverRegistry(context)
    namespaces = settings.namespaces
    exact = not any(set(ns) & set("*?![") for ns in namespaces)
    # kopf pauses its watches while another instance is active, and it knows namespace
    # patterns with exclusions (`!`) or several globs in one (`,`): then it watches the step
    # Jobs and pods too. Otherwise the operator's own watches do, one per exact namespace, or
    # one across all namespaces, filtered by the plain patterns (`noetl-*`) when there are some.
    steps_by_kopf = peering is not None or any(set(ns) & set("!,") for ns in namespaces)
    step_changes = register(registry, drivers, steps_by_kopf)
    watched: list[str | None] = [*namespaces] if exact and namespaces else [None]
    only = () if exact else namespaces
    watches = [
        Watch(load_kube_config(), plural, namespace, EXECUTION_LABEL, changed, only)
        for plural, changed in step_changes.items()
        for namespace in watched
        if not steps_by_kopf
    ]

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own starts without kopf's default login handlers.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.posting.level = logging.WARNING
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.watching.server_timeout = 300
        settings.networking.error_backoffs = [1, 2, 5, 10]
        settings.peering.priority = random.randint(1, 1_000_000)
        settings.peering.mandatory = peering is not None
        # Exact namespaces need no namespace/CRD scanning, nor the cluster-wide RBAC it takes.
        settings.scanning.disabled = bool(namespaces) and exact

    if metrics_port:
        prometheus_client.start_http_server(metrics_port)
    for watch in watches:
        watch.start()
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            standalone=peering is None,
            peering_name=peering or "default",
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
        )
    finally:
        for watch in watches:
            watch.stop()
        api.close()


def main(
    settings: OperatorSettings,
    metrics_port: int | None,
    health_port: int | None,
    peering: str | None,
    log_format: str = "json",
) -> None:
    configure_logging(log_format)
    asyncio.run(run_operator(settings, metrics_port, health_port, peering))
