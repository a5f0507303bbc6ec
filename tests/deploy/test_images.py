"""The images in plugin-images/: what they run, as whom, and under which names.

There is no Docker engine here, so nothing is built. Instead: each Dockerfile is read; each
entrypoint module is run the way its container runs it (request in NOETL_INPUT_JSON, outcome in
the termination file); and the image names agree across the Makefile that builds them, the chart
that deploys them and the operator's defaults.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

import noetl
from noetl.kube.settings import default_images
from noetl.playbook.models import PLUGIN_TOOLS
from tests.deploy.chart import CHART, ROOT

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


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"hello": "plugin"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join()


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


def test_base_image() -> None:
    base = IMAGES / "base.Dockerfile"
    assert last(base, "FROM") == "python:3.11-slim"
    assert re.search(r"useradd [^&]*--uid 65532", last(base, "RUN"))
    assert last(base, "USER") == "65532"


@pytest.mark.parametrize("name", [*PLUGIN_TOOLS, "operator"])
def test_image_is_built_on_the_base_and_runs_as_non_root(name: str) -> None:
    dockerfile = IMAGES / f"{name}.Dockerfile"
    assert last(dockerfile, "ARG") == f"BASE_IMAGE={BASE_IMAGE}"
    assert last(dockerfile, "FROM") == "${BASE_IMAGE}"
    user = last(dockerfile, "USER")
    assert user.isdigit() and int(user) != 0, f"{name} runs as {user!r}"


@pytest.mark.parametrize("tool", PLUGIN_TOOLS)
def test_plugin_entrypoint_runs(tool: str, tmp_path: Path, http_port: int) -> None:
    entrypoint = json.loads(last(IMAGES / f"{tool}.Dockerfile", "ENTRYPOINT"))
    assert entrypoint == ["python", "-m", f"noetl.plugins.{tool}"]
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
    assert entrypoint == ["python", "-m", "noetl", "operator"]
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


def built_images() -> dict[str, str]:
    """Dockerfile -> tag, from what `make images` would run."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    plan = subprocess.run(
        ["make", "-n", "images"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return dict(re.findall(r"docker build -f plugin-images/(\S+)\.Dockerfile .*?-t (\S+) \.", plan))


def test_makefile_builds_the_images_the_chart_and_operator_use() -> None:
    built = built_images()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    plugins = {tool: built[tool] for tool in PLUGIN_TOOLS}
    assert plugins == values["plugins"]["images"] == default_images()
    assert built["base"] == BASE_IMAGE
    operator_image = (
        f"{values['image']['repository']}:{values['image']['tag'] or chart['appVersion']}"
    )
    assert (
        built["operator"] == operator_image == f"ghcr.io/noetl/noetl-operator:{noetl.__version__}"
    )


def test_makefile_loads_every_image_into_kind() -> None:
    built = built_images()
    plan = subprocess.run(
        ["make", "-n", "images"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    (load,) = [line for line in plan.splitlines() if line.startswith("kind load docker-image")]
    assert set(load.split()[5:]) == {tag for name, tag in built.items() if name != "base"}
