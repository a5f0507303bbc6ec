"""The operator's door to the API server: the few calls it makes, rate-limited and counted.

Calls run the official (blocking) client in a thread pool and return plain dicts: the operator
reads JSON, it never needs the client's model classes. Every call passes the token bucket and
adds to the `noetl_api_calls_total` metric (by verb and resource), which the API-economy
benchmark reads.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from noetl.kube.metrics import API_CALLS
from noetl.kube.ratelimit import TokenBucket
from noetl.playbook.models import API_GROUP, GROUP_VERSION


def _json(response: Any) -> Any:
    return json.loads(response.data) if response.data else None


class _Paid(TokenBucket):
    def __init__(self) -> None:
        super().__init__(qps=1.0, burst=1)

    async def acquire(self) -> None:
        return


_PAID = _Paid()


class KubeApi:
    def __init__(
        self, api_client: client.ApiClient, limiter: TokenBucket, threads: int = 16
    ) -> None:
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self._limiter = limiter
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube-api")

    async def acquire(self) -> None:
        """Take a token now, for a call to be made through `without_limit()`."""
        await self._limiter.acquire()

    def without_limit(self) -> KubeApi:
        """This API for calls whose token was taken already (by `acquire`); still counted."""
        paid = copy.copy(self)
        paid._limiter = _PAID
        return paid

    async def _call(
        self, verb: str, resource: str, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """One API call: the raw response (bytes in `.data`), never the client's model classes."""

        def call() -> Any:
            response = function(*args, _preload_content=False, **kwargs)
            # The body is read whole even when nobody looks at it (a write's): only then does
            # urllib3 give the connection back to its pool, sparing the next call a TLS handshake.
            _ = response.data
            response.release_conn()
            return response

        await self._limiter.acquire()
        API_CALLS.labels(verb=verb, resource=resource).inc()
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def _get_or_none(
        self, resource: str, function: Callable[..., Any], *args: Any
    ) -> dict[str, Any] | None:
        try:
            response = await self._call("get", resource, function, *args)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        found: dict[str, Any] = _json(response)
        return found

    async def _list(
        self, resource: str, function: Callable[..., Any], *args: Any, selector: str
    ) -> list[dict[str, Any]]:
        response = await self._call("list", resource, function, *args, label_selector=selector)
        items: list[dict[str, Any]] = _json(response)["items"]
        return items

    # Reads ------------------------------------------------------------------------------------

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_or_none(
            plural,
            self.custom.get_namespaced_custom_object,
            API_GROUP,
            GROUP_VERSION,
            namespace,
            plural,
            name,
        )

    async def list_custom(self, plural: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list(
            plural,
            self.custom.list_namespaced_custom_object,
            API_GROUP,
            GROUP_VERSION,
            namespace,
            plural,
            selector=selector,
        )

    async def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list(
            "jobs", self.batch.list_namespaced_job, namespace, selector=selector
        )

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list("pods", self.core.list_namespaced_pod, namespace, selector=selector)

    async def list_config_maps(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return await self._list(
            "configmaps", self.core.list_namespaced_config_map, namespace, selector=selector
        )

    async def list_events(self, namespace: str, field_selector: str) -> list[dict[str, Any]]:
        """Events picked by fields (`involvedObject.uid=...,reason=...`): they carry no labels."""
        response = await self._call(
            "list",
            "events",
            self.core.list_namespaced_event,
            namespace,
            field_selector=field_selector,
        )
        items: list[dict[str, Any]] = _json(response)["items"]
        return items

    async def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_or_none(
            "configmaps", self.core.read_namespaced_config_map, name, namespace
        )

    async def pod_log(self, namespace: str, pod: str) -> str:
        response = await self._call(
            "get", "pods/log", self.core.read_namespaced_pod_log, pod, namespace
        )
        return str(response.data.decode("utf-8", errors="replace"))

    # Writes -----------------------------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> bool:
        """Create an object; False (not an error) when it exists already."""
        namespace = body["metadata"]["namespace"]
        kind = body["kind"]
        built_in: dict[str, tuple[str, Callable[..., Any]]] = {
            "Job": ("jobs", self.batch.create_namespaced_job),
            "ConfigMap": ("configmaps", self.core.create_namespaced_config_map),
            "Event": ("events", self.core.create_namespaced_event),
        }
        try:
            if kind in built_in:
                resource, function = built_in[kind]
                await self._call("create", resource, function, namespace, body)
            else:
                plural = kind.lower() + "s"
                await self._call(
                    "create",
                    plural,
                    self.custom.create_namespaced_custom_object,
                    API_GROUP,
                    GROUP_VERSION,
                    namespace,
                    plural,
                    body,
                )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        await self._call(
            "patch",
            f"{plural}/status",
            self.custom.patch_namespaced_custom_object_status,
            API_GROUP,
            GROUP_VERSION,
            namespace,
            plural,
            name,
            {"status": status},
        )

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """A merge patch of a custom object (its spec or metadata; the status has its own)."""
        await self._call(
            "patch",
            plural,
            self.custom.patch_namespaced_custom_object,
            API_GROUP,
            GROUP_VERSION,
            namespace,
            plural,
            name,
            patch,
        )

    async def patch_config_map_data(
        self, namespace: str, name: str, data: dict[str, str | None]
    ) -> None:
        await self._call(
            "patch",
            "configmaps",
            self.core.patch_namespaced_config_map,
            name,
            namespace,
            {"data": data},
        )

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete (in the background, dependents included); a missing object is fine."""
        options = client.V1DeleteOptions(propagation_policy="Background")
        try:
            if kind == "Job":
                await self._call(
                    "delete",
                    "jobs",
                    self.batch.delete_namespaced_job,
                    name,
                    namespace,
                    body=options,
                )
            else:
                plural = kind.lower() + "s"
                await self._call(
                    "delete",
                    plural,
                    self.custom.delete_namespaced_custom_object,
                    API_GROUP,
                    GROUP_VERSION,
                    namespace,
                    plural,
                    name,
                    body=options,
                )
        except ApiException as error:
            if error.status != 404:
                raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
