"""The node agent's pure parts, without a cluster: command and args over an image, pull
failures, the securityContext, `$(VAR)` expansion, downward API fields and the log queries of the
kubelet port."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import container_logs, security_context
from tests.cluster.container_logs import LogQuery
from tests.cluster.images import ImageConfig, NoCommand, process_argv, pull_failure
from tests.cluster.pod_config import expand, field_value

IMAGE = ImageConfig(
    image_id="sha256:x", entrypoint=("/entry",), cmd=("default",), user="", working_dir=""
)


@pytest.mark.parametrize(
    ("container", "argv"),
    [
        ({}, ["/entry", "default"]),
        ({"args": ["a", "$(X)"]}, ["/entry", "a", "1"]),
        ({"command": ["sh", "-c"]}, ["sh", "-c"]),  # command drops the image's cmd too
        ({"command": ["sh"], "args": ["-c", "echo $(X)"]}, ["sh", "-c", "echo 1"]),
    ],
)
def test_command_and_args_over_the_image_entrypoint_and_cmd(
    container: dict[str, Any], argv: list[str]
) -> None:
    assert process_argv({"name": "main", **container}, IMAGE, {"X": "1"}) == argv


def test_nothing_to_run_is_an_error() -> None:
    with pytest.raises(NoCommand):
        process_argv({"name": "main"}, ImageConfig("sha256:x", (), (), "", ""), {})


def test_pull_failures_read_like_a_kubelets() -> None:
    never = pull_failure({"image": "x:1", "imagePullPolicy": "Never"}, 1)
    assert never == {
        "reason": "ErrImageNeverPull",
        "message": 'Container image "x:1" is not present with pull policy of Never',
    }
    assert pull_failure({"image": "x:1", "imagePullPolicy": "IfNotPresent"}, 1)["reason"] == (
        "ErrImagePull"
    )
    assert pull_failure({"image": "x:1", "imagePullPolicy": "IfNotPresent"}, 2) == {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "x:1"',
    }


@pytest.mark.parametrize(
    ("context", "image_user", "message"),
    [
        ({"runAsNonRoot": True}, "", "container has runAsNonRoot and image will run as root"),
        ({"runAsNonRoot": True}, "0:0", "container has runAsNonRoot and image will run as root"),
        ({"runAsNonRoot": True}, "app", "image has non-numeric user (app), cannot verify"),
        ({"runAsNonRoot": True, "runAsUser": 0}, "65532", "runAsUser breaks non-root policy"),
    ],
)
def test_run_as_non_root_refuses_root(
    context: dict[str, Any], image_user: str, message: str
) -> None:
    with pytest.raises(security_context.NonRootError, match=re.escape(message)) as refused:
        security_context.verify_run_as_non_root(context, image_user, "p_ns(u)", "main")
    assert str(refused.value).endswith('(pod: "p_ns(u)", container: main)')


@pytest.mark.parametrize(
    ("context", "image_user"),
    [({"runAsNonRoot": True}, "65532"), ({"runAsNonRoot": True, "runAsUser": 1}, ""), ({}, "")],
)
def test_run_as_non_root_accepts_a_non_root_user(context: dict[str, Any], image_user: str) -> None:
    security_context.verify_run_as_non_root(context, image_user, "p_ns(u)", "main")


def test_security_context_becomes_runtime_options() -> None:
    pod_spec = {"securityContext": {"runAsUser": 65532, "runAsNonRoot": True, "fsGroup": 2000}}
    container = {
        "securityContext": {
            "runAsGroup": 65532,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["net_bind_service"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    }
    context = security_context.effective(pod_spec, container)
    assert security_context.runtime_options(pod_spec, context, "") == [
        "--user=65532:65532",
        "--group-add=2000",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop=ALL",
        "--cap-add=CAP_NET_BIND_SERVICE",
        "--security-opt=no-new-privileges",
    ]
    # Without a profile Kubernetes runs unconfined; the image's user stays when none is given.
    assert security_context.runtime_options({}, {}, "app") == ["--security-opt=seccomp=unconfined"]


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
