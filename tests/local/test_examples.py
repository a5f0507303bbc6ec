"""Every example playbook, run end to end by `noetl run`, gives the result its header states."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
USERS = [
    {"name": "Ada", "city": "London"},
    {"name": "Grace", "city": "New York"},
    {"name": "Alan", "city": "London"},
]


def noetl_run(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    completed = subprocess.run(
        [sys.executable, "-m", "noetl", "run", "--json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert completed.stdout, completed.stderr
    return completed.returncode, json.loads(completed.stdout)


@pytest.fixture(scope="module")
def users_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(USERS).encode() if self.path == "/users" else b"[]"
            self.send_response(200 if self.path == "/users" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


EXPECTED = {
    ("hello.yaml",): "Hello, World!",
    ("hello.yaml", "--set", "name=Oslo"): "Hello, Oslo!",
    ("conditional.yaml",): "it is hot: 30",
    ("conditional.yaml", "--set", "temperature=12"): "it is cold: 12",
    ("fan-out-join.yaml",): {"total": 6, "parts": ["1", "2", "3"]},
    ("parallel-loop.yaml",): {"squares": [1, 4, 9, 16, 25, 36], "sum": 91},
    ("retry.yaml",): "ok on attempt 3",
    ("greet.yaml", "--set", "who=Ada"): {"greeting": "Hi, Ada"},
    ("sub-playbook.yaml",): ["Hi, Ada", "Hi, Grace"],
    ("duckdb.yaml",): [{"city": "Lisbon", "temp": 24}, {"city": "Paris", "temp": 19}],
    ("duckdb.yaml", "--set", "min_temp=20"): [{"city": "Lisbon", "temp": 24}],
    ("finally.yaml",): "total 8",
    ("rerun.yaml",): {"total": 6},
}


@pytest.mark.parametrize("args", list(EXPECTED), ids=" ".join)
def test_example(args, tmp_path):
    code, summary = noetl_run(str(PLAYBOOKS / args[0]), *args[1:], cwd=tmp_path)
    assert (code, summary["phase"], summary["error"]) == (0, "Succeeded", None)
    assert summary["result"] == EXPECTED[args]
    assert Path(tmp_path / summary["eventLog"]).is_file()


def test_finally_example_reports_a_failure_and_keeps_it(tmp_path):
    code, summary = noetl_run(str(PLAYBOOKS / "finally.yaml"), "--set", "orders=[]", cwd=tmp_path)
    error = "step 'total' failed: command exited with code 1: no orders"
    assert (code, summary["phase"], summary["error"]) == (1, "Failed", error)
    log = [json.loads(line) for line in (tmp_path / summary["eventLog"]).read_text().splitlines()]
    report = next(r for r in log if r["type"] == "StepSucceeded" and r["step"] == "report")
    assert report["result"]["stdout"].strip() == f"finally ended Failed: {error}"


def test_python_http_example(users_server, tmp_path):
    code, summary = noetl_run(
        str(PLAYBOOKS / "python-http.yaml"), "--set", f"base_url={users_server}", cwd=tmp_path
    )
    assert code == 0, summary
    assert summary["result"] == {"count": 3, "cities": ["London", "New York"]}


@pytest.mark.postgres
def test_postgres_example(postgres_server, tmp_path):
    secret = tmp_path / "pg.env"
    secret.write_text("".join(f"{key}={value}\n" for key, value in postgres_server.env().items()))
    code, summary = noetl_run(
        str(PLAYBOOKS / "postgres.yaml"), "--secret", f"pg={secret}", cwd=tmp_path
    )
    assert code == 0, summary
    assert summary["result"] == [
        {"city": "Oslo", "readings": 2, "average": 6.5},
        {"city": "Paris", "readings": 1, "average": 19.0},
    ]
    log = (tmp_path / summary["eventLog"]).read_text()
    assert postgres_server.password not in log


def test_every_example_is_covered():
    # approval.yaml waits for a person: tests/local/test_suspend.py resumes it;
    # container.yaml needs podman: tests/local/test_containers.py.
    special = {"python-http.yaml", "postgres.yaml", "approval.yaml", "container.yaml"}
    covered = {args[0] for args in EXPECTED} | special
    assert covered == {path.name for path in PLAYBOOKS.glob("*.yaml")}
