"""A pod's environment and volumes, resolved the way a kubelet resolves them.

`container_env` gives a container's variables: `envFrom` (Secrets, ConfigMaps), then `env` with
`valueFrom` (secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef) and `$(VAR)` expansion.
`materialise_volumes` writes emptyDir, configMap, secret, downwardAPI and projected volumes
(a bound ServiceAccount token from the TokenRequest API included) under the pod's folder, and
`container_mounts` says which of those folders a container sees at which path. A missing Secret
or ConfigMap raises ConfigError, which the kubelet reports as CreateContainerConfigError.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

Pod = Mapping[str, Any]


class ConfigError(RuntimeError):
    """The pod refers to something that does not exist (yet)."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


class ObjectReader:
    """Reads a pod's Secrets and ConfigMaps once each, as raw `data` dicts (decoded)."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.core = core
        self.namespace = namespace
        self._cache: dict[tuple[str, str], dict[str, bytes] | None] = {}

    def data(self, kind: str, name: str, optional: bool | None) -> dict[str, bytes] | None:
        key = (kind, name)
        if key not in self._cache:
            self._cache[key] = self._read(kind, name)
        found = self._cache[key]
        if found is None and not optional:
            raise ConfigError(f'{kind} "{name}" not found')
        return found

    def _read(self, kind: str, name: str) -> dict[str, bytes] | None:
        try:
            if kind == "secret":
                secret = self.core.read_namespaced_secret(name, self.namespace)
                return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
            config_map = self.core.read_namespaced_config_map(name, self.namespace)
            data = {k: v.encode() for k, v in (config_map.data or {}).items()}
            data.update({k: base64.b64decode(v) for k, v in (config_map.binary_data or {}).items()})
            return data
        except ApiException as error:
            if error.status == 404:
                return None
            raise


def container_env(
    pod: Pod, container: Mapping[str, Any], reader: ObjectReader, base: Mapping[str, str]
) -> dict[str, str]:
    """The process environment: `base`, then envFrom, then env (later wins, as in Kubernetes)."""
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("secret", "secretRef"), ("configmap", "configMapRef")):
            ref = source.get(key)
            if ref:
                data = reader.data(kind, ref["name"], ref.get("optional")) or {}
                env.update({prefix + k: v.decode() for k, v in data.items()})
    for variable in container.get("env") or []:
        if "valueFrom" in variable:
            value = _value_from(pod, container, variable["valueFrom"], reader)
            if value is None:
                continue
        else:
            value = expand(variable.get("value", ""), env)
        env[variable["name"]] = value
    return env


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def _value_from(
    pod: Pod, container: Mapping[str, Any], source: Mapping[str, Any], reader: ObjectReader
) -> str | None:
    for kind, key in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
        ref = source.get(key)
        if ref:
            data = reader.data(kind, ref["name"], ref.get("optional"))
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise ConfigError(f'couldn\'t find key {ref["key"]} in {kind} "{ref["name"]}"')
            return data[ref["key"]].decode()
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"])
    if "resourceFieldRef" in source:
        ref = source["resourceFieldRef"]
        kind, _, resource = ref["resource"].partition(".")
        return str((container.get("resources") or {}).get(kind, {}).get(resource, "0"))
    raise ConfigError(f"unsupported valueFrom: {sorted(source)}")


_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")


def field_value(pod: Pod, path: str) -> str:
    """A downward API field of the pod."""
    metadata, spec = pod["metadata"], pod["spec"]
    subscript = _SUBSCRIPT.fullmatch(path)
    if subscript:
        return str((metadata.get(subscript.group(1)) or {}).get(subscript.group(2), ""))
    fields = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    if path in ("metadata.labels", "metadata.annotations"):
        items = metadata.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    if path not in fields:
        raise ConfigError(f"unsupported fieldRef {path}")
    return str(fields[path] or "")


def materialise_volumes(pod: Pod, reader: ObjectReader, pod_dir: Path) -> dict[str, Path]:
    """Write each volume under `pod_dir/volumes`; return volume name -> host path."""
    paths: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "hostPath" in volume:
            paths[name] = Path(volume["hostPath"]["path"])
            continue
        target = pod_dir / "volumes" / name
        target.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            target.chmod(0o777)  # as a kubelet makes it: writable by the pod's user
        elif "secret" in volume or "configMap" in volume or "downwardAPI" in volume:
            _write_files(target, _source_files(pod, volume, reader))
        elif "projected" in volume:
            files: dict[str, bytes] = {}
            for source in volume["projected"].get("sources") or []:
                files.update(_source_files(pod, source, reader))
            _write_files(target, files)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise ConfigError(f"volume {name}: unsupported volume type {kinds}")
        paths[name] = target
    return paths


def _source_files(pod: Pod, source: Mapping[str, Any], reader: ObjectReader) -> dict[str, bytes]:
    """Relative path -> content of one volume (or projected volume source)."""
    for kind, key, name_key in (
        ("secret", "secret", "secretName"),
        ("configmap", "configMap", "name"),
    ):
        spec = source.get(key)
        if spec is None:
            continue
        # A projected source names its object with `name`; a secret volume with `secretName`.
        object_name = spec.get(name_key) or spec.get("name")
        data = reader.data(kind, object_name, spec.get("optional")) or {}
        items = spec.get("items")
        if not items:
            return dict(data)
        return {item["path"]: data[item["key"]] for item in items if item["key"] in data}
    if "downwardAPI" in source:
        return {
            item["path"]: field_value(pod, item["fieldRef"]["fieldPath"]).encode()
            for item in source["downwardAPI"].get("items") or []
            if "fieldRef" in item
        }
    if "serviceAccountToken" in source:
        spec = source["serviceAccountToken"]
        return {spec["path"]: _bound_token(pod, reader.core, spec).encode()}
    raise ConfigError(f"unsupported volume source {sorted(source)}")


def _bound_token(pod: Pod, core: client.CoreV1Api, spec: Mapping[str, Any]) -> str:
    metadata = pod["metadata"]
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(
            audiences=[spec["audience"]] if spec.get("audience") else [],
            expiration_seconds=spec.get("expirationSeconds", 3607),
            bound_object_ref=client.V1BoundObjectReference(
                api_version="v1", kind="Pod", name=metadata["name"], uid=metadata["uid"]
            ),
        )
    )
    account = pod["spec"].get("serviceAccountName") or "default"
    response = core.create_namespaced_service_account_token(account, metadata["namespace"], request)
    return str(response.status.token)


def _write_files(directory: Path, files: Mapping[str, bytes]) -> None:
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def container_mounts(container: Mapping[str, Any], volumes: Mapping[str, Path]) -> list[Mount]:
    mounts = []
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            raise ConfigError(f"volumeMount {mount['name']} names no volume of the pod")
        source = volumes[mount["name"]]
        if mount.get("subPath"):
            source = source / mount["subPath"]
            if not source.exists():
                source.mkdir(parents=True)  # as a kubelet does for a missing subPath
        mounts.append(Mount(source, mount["mountPath"], bool(mount.get("readOnly"))))
    return mounts
