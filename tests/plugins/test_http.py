"""The http plugin against a real HTTP server on 127.0.0.1, started for this module."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from noetl.plugins import http
from noetl.plugins.runtime import Outcome, StepRequest, execute
from tests.plugins import step


class _Handler(BaseHTTPRequestHandler):
    """/echo answers what it got as JSON; /status/N, /text, /slow and /redirect do what they say."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/status/"):
            self._send(int(url.path.rsplit("/", 1)[1]), "text/plain", b"nope")
        elif url.path == "/text":
            self._send(200, "text/plain; charset=utf-8", "héllo".encode())
        elif url.path == "/slow":
            time.sleep(1)
            self._send(200, "text/plain", b"late")
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/echo?from=redirect")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            echo = {
                "method": self.command,
                "path": url.path,
                "query": parse_qs(url.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode(),
            }
            self._send(200, "application/json", json.dumps(echo).encode(), {"X-Reply": "Yes"})

    def _send(
        self, status: int, kind: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output quiet


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def call(**args: Any) -> Outcome:
    return execute(http.run, step("http", args))


def test_get_with_params_and_headers(server: str) -> None:
    outcome = call(url=f"{server}/echo", params={"city": "Oslo", "n": 2}, headers={"X-Token": "t"})
    assert outcome.ok
    result = outcome.result
    assert result["status"] == 200
    assert result["headers"]["x-reply"] == "Yes"
    assert result["headers"]["content-type"] == "application/json"
    assert result["url"] == f"{server}/echo?city=Oslo&n=2"
    assert result["elapsedMs"] > 0
    body = result["body"]
    assert body["method"] == "GET"
    assert body["query"] == {"city": ["Oslo"], "n": ["2"]}
    assert body["headers"]["x-token"] == "t"


def test_post_json(server: str) -> None:
    body = call(url=f"{server}/echo", method="post", json={"a": [1, 2]}).result["body"]
    assert body["method"] == "POST"
    assert json.loads(body["body"]) == {"a": [1, 2]}
    assert body["headers"]["content-type"] == "application/json"


def test_post_form_data_and_raw_text(server: str) -> None:
    form = call(url=f"{server}/echo", method="POST", data={"k": "v w"}).result["body"]
    assert form["body"] == "k=v+w"
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    raw = call(url=f"{server}/echo", method="POST", data="plain text").result["body"]
    assert raw["body"] == "plain text"


def test_a_text_body_stays_text(server: str) -> None:
    assert call(url=f"{server}/text").result["body"] == "héllo"


def test_redirects_are_followed(server: str) -> None:
    result = call(url=f"{server}/redirect").result
    assert result["url"] == f"{server}/echo?from=redirect"
    assert result["body"]["query"] == {"from": ["redirect"]}


def test_an_error_status_fails_with_the_response_attached(server: str) -> None:
    outcome = call(url=f"{server}/status/404?key=secret")
    assert not outcome.ok
    assert outcome.error == f"GET {server}/status/404 answered 404 Not Found"
    assert outcome.result["status"] == 404
    assert outcome.result["body"] == "nope"


def test_fail_on_status_can_be_turned_off(server: str) -> None:
    outcome = call(url=f"{server}/status/503", failOnStatus=False)
    assert outcome.ok
    assert outcome.result["status"] == 503


def test_timeout(server: str) -> None:
    outcome = call(url=f"{server}/slow", timeout=0.2)  # /slow answers after a second
    assert outcome == Outcome(ok=False, error=f"GET {server}/slow timed out after 0.2s")


def test_connection_refused() -> None:
    outcome = call(url="http://127.0.0.1:9/")
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.startswith("GET http://127.0.0.1:9/ failed: ConnectError")


def test_url_is_required() -> None:
    assert call(method="GET").error == "an http step needs args.url, a string"


def test_a_header_from_the_secret_is_sent_and_shows_nowhere(server: str) -> None:
    # The http plugin under the plugin runtime, as in the images and the local runner.
    secrets = {"API_TOKEN": "tok-0123456789"}
    args = {
        "url": f"{server}/echo",
        "secretRef": "api",
        "headers": {"Authorization": {"secretKey": "API_TOKEN", "prefix": "Bearer "}},
        "params": {"key": {"secretKey": "API_TOKEN"}},
    }
    outcome = execute(http.run, StepRequest("s", "http", args, env=secrets, secrets=secrets))
    assert outcome.ok
    body = outcome.result["body"]
    assert body["headers"]["authorization"] == "Bearer ***"  # sent whole, masked in the result
    assert body["query"] == {"key": ["***"]}
    assert "tok-0123456789" not in json.dumps(outcome.result)


def test_a_secret_key_missing_from_the_secret_names_the_field(server: str) -> None:
    args = {"url": f"{server}/echo", "headers": {"Authorization": {"secretKey": "API_TOKEN"}}}
    assert call(**args).error == (
        "args.headers.Authorization.secretKey: the step's Secret has no key 'API_TOKEN'"
        " (is args.secretRef set?)"
    )
