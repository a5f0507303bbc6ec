"""Where an execution's step results live in the cluster: ConfigMaps owned by the Execution.

The engine reads and writes results through a mapping; this one keeps them in memory and, on
`flush`, writes what changed to ConfigMaps labelled with the execution (each up to ~900 KiB, a
new one when full). Results therefore never swell the Execution's status, and a restarted
operator reads them back with one list call. Keys are engine keys made ConfigMap-safe
(names.to_data_key): `step`, `step[3]` -> `step.3`, `step#items` -> `step.items`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from noetl.kube.api import KubeApi
from noetl.kube.faults import PermanentFault
from noetl.kube.manifests import (
    PURPOSE_LABEL,
    execution_config_map,
    execution_selector,
    owned_by,
)
from noetl.kube.names import RESULTS_PURPOSE as PURPOSE
from noetl.kube.names import from_data_key, results_config_map, to_data_key

CONFIG_MAP_CAPACITY = 900 * 1024
MAX_RESULT_BYTES = 800 * 1024  # the engine's result_limit: a result always fits a ConfigMap


class ResultTooLarge(ValueError):
    """A value larger than a ConfigMap holds (the engine's `result_limit` keeps them out)."""


def encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class ResultStore(MutableMapping[str, Any]):
    def __init__(self, execution: dict[str, Any]) -> None:
        self._execution = execution
        self._values: dict[str, Any] = {}
        self._home: dict[str, str] = {}  # key -> ConfigMap that holds it
        self._sizes: dict[str, int] = {}  # ConfigMap -> bytes of data
        self._existing: set[str] = set()  # ConfigMaps known to be in the cluster
        self._changed: dict[str, str | None] = {}  # key -> new text, None to remove
        self._removed: set[str] = set()  # removed, to be written after the status

    @classmethod
    async def load(cls, api: KubeApi, execution: dict[str, Any]) -> ResultStore:
        store = cls(execution)
        metadata = execution["metadata"]
        selector = f"{execution_selector(metadata['name'])},{PURPOSE_LABEL}={PURPOSE}"
        for config_map in await api.list_config_maps(metadata["namespace"], selector):
            if not owned_by(config_map, metadata["uid"]):
                continue
            name = config_map["metadata"]["name"]
            data = config_map.get("data") or {}
            store._sizes[name] = sum(len(v) for v in data.values())
            store._existing.add(name)
            for data_key, text in data.items():
                key = from_data_key(data_key)
                store._values[key] = json.loads(text)
                store._home[key] = name
        return store

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._removed.discard(key)
        self._changed[key] = encode(value)
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]
        self._changed[key] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def unsaved(self) -> list[str]:
        """The keys written or removed since the last flush."""
        return list(self._changed)

    async def flush(self, api: KubeApi) -> None:
        """Write what was added or changed since the last flush: one write per ConfigMap touched.

        Removals wait for `flush_removals`, which comes after the status is written: until then
        a status saved earlier may still need them (the items of a loop that just ended, say).
        """
        writes: dict[str, dict[str, str | None]] = {}
        for key, text in self._changed.items():
            if text is None:
                self._removed.add(key)
                continue
            if len(text) > CONFIG_MAP_CAPACITY:
                raise ResultTooLarge(
                    f"the result kept as {key!r} is {len(text)} bytes, more than a ConfigMap holds"
                )
            home = self._home.get(key) or self._place(len(text))
            self._home[key] = home
            writes.setdefault(home, {})[to_data_key(key)] = text
        self._changed.clear()
        await self._write(api, writes)

    async def flush_removals(self, api: KubeApi) -> None:
        writes: dict[str, dict[str, str | None]] = {}
        for key in self._removed:
            home = self._home.pop(key, None)
            if home is not None:
                writes.setdefault(home, {})[to_data_key(key)] = None
        self._removed.clear()
        await self._write(api, writes)

    async def _write(self, api: KubeApi, writes: dict[str, dict[str, str | None]]) -> None:
        namespace = self._execution["metadata"]["namespace"]
        for name, data in writes.items():
            created = False
            if name not in self._existing:
                new = {k: v for k, v in data.items() if v is not None}
                created = await api.create(
                    execution_config_map(self._execution, name, PURPOSE, new)
                )
                self._existing.add(name)
            if not created:
                await _patch(api, namespace, name, data)
            self._sizes[name] = self._sizes.get(name, 0) + sum(len(v or "") for v in data.values())

    def location(self, key: str) -> dict[str, str]:
        """Where a flushed key is: a `resultRef` for the status."""
        return {"configMap": self._home[key], "key": to_data_key(key)}

    def _place(self, size: int) -> str:
        for name, used in self._sizes.items():
            if used + size <= CONFIG_MAP_CAPACITY:
                return name
        name = results_config_map(self._execution["metadata"]["name"], len(self._sizes))
        self._sizes.setdefault(name, 0)
        return name


async def _patch(api: KubeApi, namespace: str, name: str, data: dict[str, str | None]) -> None:
    try:
        await api.patch_config_map_data(namespace, name, data)
    except ApiException as error:
        if error.status != 404:
            raise
        # Recreating it would lose the results it held, and their steps would run again as if
        # they never had: the loss ends the execution instead, saying so.
        raise PermanentFault(
            f"the results ConfigMap {name} was deleted while the execution ran;"
            " the results it held are lost"
        ) from None
