"""The images in plugin-images/, read rather than run: what they run, as whom, under which names.

Each Dockerfile is read; each entrypoint module is run on the host the way its container runs it
(request in NOETL_INPUT_JSON, outcome in the termination file); and the image names agree across
plugin-images/build.py and the Makefile that build them, the chart that deploys them and the
operator's defaults. test_containers.py runs the built images themselves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import noetl
from noetl.kube.settings import default_images
from noetl.playbook.models import PLUGIN_TOOLS
from tests.deploy.chart import CHART, ROOT
from tests.fixtures.http import json_server
from tests.images import build

IMAGES = ROOT / "plugin-images"
BASE_IMAGE = f"ghcr.io/noetl/noetl-base:{noetl.__version__}"

# A request per plugin that needs no server; postgres gets a port nothing listens on, so it shows
# the module loads and reports a failure the way the operator reads it.
REQUESTS: dict[str, tuple[dict[str, Any], bool]] = {
    "shell": ({"args": {"command": "echo hello from $HOME"}}, True),
    "python": (
        {"args": {"who": "image"}, "code": "def main(who):\n    return f'hello {who}'"},
        True,
    ),
    "http": ({"args": {"url": "http://127.0.0.1:{port}/", "method": "GET"}}, True),
    "postgres": (
        {"args": {"command": "select 1", "dsn": "host=127.0.0.1 port=1 connect_timeout=5"}},
        False,
    ),
    "duckdb": ({"args": {"command": "select 40 + 2 as answer"}}, True),
}


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    with json_server() as port:
        yield port


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def last(dockerfile: Path, keyword: str) -> str:
    found = [rest for key, rest in instructions(dockerfile) if key == keyword]
    assert found, f"{dockerfile.name} has no {keyword}"
    return found[-1]


def test_one_dockerfile_per_plugin() -> None:
    plugins = {path.name.removesuffix(".Dockerfile") for path in IMAGES.glob("*.Dockerfile")} - {
        "base",
        "operator",
    }
    assert plugins == set(PLUGIN_TOOLS)


def test_base_image_is_debian_with_the_unprivileged_user() -> None:
    base = IMAGES / "base.Dockerfile"
    assert instructions(base)[0] == ("ARG", "DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim")
    assert last(base, "FROM") == "${DEBIAN_IMAGE}"
    assert re.search(r"useradd [^&]*--uid 65532", last(base, "RUN"))
    assert last(base, "USER") == "65532"
    env = last(base, "ENV")
    for setting in ("HOME=/tmp", "TMPDIR=/tmp", "PYTHONDONTWRITEBYTECODE=1"):
        assert setting in env.split()


@pytest.mark.parametrize("name", [*PLUGIN_TOOLS, "operator"])
def test_image_is_built_on_the_base_and_runs_as_non_root(name: str) -> None:
    dockerfile = IMAGES / f"{name}.Dockerfile"
    assert instructions(dockerfile)[0] == ("ARG", f"BASE_IMAGE={BASE_IMAGE}")
    assert last(dockerfile, "FROM") == "${BASE_IMAGE}"
    assert "compileall" in last(dockerfile, "RUN")
    user = last(dockerfile, "USER")
    assert user.isdigit() and int(user) != 0, f"{name} runs as {user!r}"


@pytest.mark.parametrize("tool", PLUGIN_TOOLS)
def test_plugin_entrypoint_runs(tool: str, tmp_path: Path, http_port: int) -> None:
    entrypoint = json.loads(last(IMAGES / f"{tool}.Dockerfile", "ENTRYPOINT"))
    assert entrypoint == ["python3", "-m", f"noetl.plugins.{tool}"]
    fields, succeeds = REQUESTS[tool]
    request = json.loads(
        json.dumps({"step": "probe", "tool": tool, **fields}).replace("{port}", str(http_port))
    )
    termination = tmp_path / "termination-log"
    env = {
        **os.environ,
        "NOETL_INPUT_JSON": json.dumps(request),
        "NOETL_TERMINATION_LOG": str(termination),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, *entrypoint[1:]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    envelope = json.loads(termination.read_text())
    assert done.returncode == (0 if succeeds else 1), done.stderr
    assert envelope["ok"] is succeeds, envelope
    if succeeds:
        assert envelope["result"], envelope
    else:
        assert "connect" in envelope["error"].lower(), envelope


def test_operator_entrypoint_runs() -> None:
    entrypoint = json.loads(last(IMAGES / "operator.Dockerfile", "ENTRYPOINT"))
    assert entrypoint == ["python3", "-m", "noetl", "operator"]
    done = subprocess.run(
        [sys.executable, *entrypoint[1:], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for option in ("--namespace", "--metrics-port", "--health-port", "--peering"):
        assert option in done.stdout


def test_one_image_per_dockerfile_with_the_tags_the_chart_and_operator_use() -> None:
    assert {image.name for image in build.IMAGES} == {
        path.name.removesuffix(".Dockerfile") for path in IMAGES.glob("*.Dockerfile")
    }
    tags = {
        image.name: image.tag(build.DEFAULT_REGISTRY, noetl.__version__) for image in build.IMAGES
    }
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    plugins = {tool: tags[tool] for tool in PLUGIN_TOOLS}
    assert plugins == values["plugins"]["images"] == default_images()
    assert tags["base"] == BASE_IMAGE
    operator_image = (
        f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"
    )
    assert tags["operator"] == operator_image == f"ghcr.io/noetl/noetl-operator:{noetl.__version__}"


def test_each_image_installs_only_dependencies_the_project_declares() -> None:
    declared = build.project_requirements()
    for image in build.IMAGES:
        assert set(image.packages or ()) <= set(declared), image.name


def make_plan(*targets: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("no make")
    return subprocess.run(
        ["make", "-n", *targets], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("builder", build.BUILDERS)
def test_make_images_builds_with_the_chosen_builder(builder: str) -> None:
    plan = make_plan("images", f"BUILDER={builder}", "REGISTRY=example.org/x", "VERSION=9.9")
    assert (
        f"plugin-images/build.py --builder {builder} --registry example.org/x --version 9.9" in plan
    )


def test_kind_gets_every_image_but_the_base() -> None:
    expected = {
        image.tag(build.DEFAULT_REGISTRY, noetl.__version__)
        for image in build.IMAGES
        if image.name != "base"
    }
    (load,) = [
        line
        for line in make_plan("kind-load", "BUILDER=docker").splitlines()
        if line.startswith("kind load docker-image")
    ]
    assert set(load.split()[5:]) == expected
    (save,) = [
        line
        for line in make_plan("kind-load", "BUILDER=podman").splitlines()
        if line.startswith("podman save")
    ]
    assert set(save.split()[5:]) == expected
