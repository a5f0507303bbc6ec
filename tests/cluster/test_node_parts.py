"""The node agent's pure parts, without a cluster: image mapping, `$(VAR)` expansion, downward
API fields and the log queries of the kubelet port."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import container_logs
from tests.cluster.container_logs import LogQuery
from tests.cluster.images import NoCommand, default_command, image_commands, image_name
from tests.cluster.pod_config import expand, field_value


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("busybox", "busybox"),
        ("busybox:1.36", "busybox"),
        ("ghcr.io/noetl/noetl-plugin-http:0.1.0", "noetl-plugin-http"),
        ("registry:5000/a/b/noetl-operator@sha256:abc", "noetl-operator"),
    ],
)
def test_image_name_drops_registry_tag_and_digest(image: str, name: str) -> None:
    assert image_name(image) == name


def test_noetl_images_run_modules_of_the_test_python() -> None:
    plugin = {"image": "ghcr.io/noetl/noetl-plugin-duck-db:1", "command": ["x"], "args": ["--a"]}
    assert default_command(plugin) == [sys.executable, "-m", "noetl.plugins.duck_db", "--a"]
    operator = {"image": "noetl-operator:latest", "args": ["operator"]}
    assert default_command(operator) == [sys.executable, "-m", "noetl", "operator"]


def test_other_images_run_their_command_and_args() -> None:
    assert default_command({"image": "busybox", "command": ["sh", "-c"], "args": ["exit 3"]}) == [
        "sh",
        "-c",
        "exit 3",
    ]
    with pytest.raises(NoCommand):
        default_command({"image": "nginx"})


def test_a_mapping_of_ones_own_appends_args() -> None:
    command_for = image_commands({"tool": ["/bin/echo", "tool"]})
    assert command_for({"image": "example.com/tool:2", "args": ["x"]}) == ["/bin/echo", "tool", "x"]
    assert command_for({"image": "busybox", "command": ["true"]}) == ["true"]


def test_variable_references_expand_like_kubernetes() -> None:
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)-$(C)-$$(A)", env) == "1-two-$(C)-$(A)"


def test_downward_api_fields() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
        "spec": {"nodeName": "n", "serviceAccountName": "sa"},
    }
    assert field_value(pod, "metadata.namespace") == "ns"
    assert field_value(pod, "metadata.labels['app']") == "x"
    assert field_value(pod, "metadata.labels") == 'app="x"'
    assert field_value(pod, "spec.serviceAccountName") == "sa"


def test_log_queries(tmp_path: Path) -> None:
    log = tmp_path / "main.0.log"
    log.write_bytes(
        b"2026-01-01T00:00:01.000000Z stdout F one\n"
        b"2026-01-01T00:00:02.000000Z stdout F two\n"
        b"2026-01-01T00:00:03.000000Z stdout P three"
        b"\n"
    )

    def read(**query: Any) -> bytes:
        return b"".join(container_logs.read(log, LogQuery(**query), lambda: False))

    assert read() == b"one\ntwo\nthree"
    assert read(tail_lines=2) == b"two\nthree"
    assert read(limit_bytes=6) == b"one\ntw"
    assert read(since="2026-01-01T00:00:02Z") == b"two\nthree"
    assert read(tail_lines=1, timestamps=True) == b"2026-01-01T00:00:03.000000Z three"
