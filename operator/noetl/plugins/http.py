"""The http plugin: one HTTP request with httpx, the response as the result.

Args: `url`, `method` (GET), `headers`, `params`, `json` (a JSON body) or `data` (a mapping is
sent as a form, a string as is), `timeout` in seconds (30), `failOnStatus` (true). Redirects
are followed. Result: `{"status", "headers" (names lowercased), "body", "url" (the final one),
"elapsedMs"}`; the body is parsed JSON when the response says it is JSON, else text. A status
of 400 or more fails the step (unless `failOnStatus: false`), the result still attached.

A header or query parameter can take its value from the step's Secret (`args.secretRef`) without
the value ever being written in the playbook, the args or the status: `{secretKey: TOKEN,
prefix: "Bearer "}` in place of the value. The runtime masks the value in the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from noetl.plugins import runtime
from noetl.plugins.runtime import PluginError, StepRequest


def run(request: StepRequest) -> Any:
    args = request.args
    url = args.get("url")
    if not isinstance(url, str) or not url:
        raise PluginError("an http step needs args.url, a string")
    method = str(args.get("method", "GET")).upper()
    timeout = float(args.get("timeout", 30))
    data = args.get("data")
    # Errors name the URL without its query string: that is where API keys tend to travel.
    where = f"{method} {url.partition('?')[0]}"
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            response = client.request(
                method,
                url,
                headers=_with_secrets(args.get("headers"), "headers", request.secrets),
                params=_with_secrets(args.get("params"), "params", request.secrets),
                json=args.get("json"),
                data=data if isinstance(data, Mapping) else None,
                content=data if isinstance(data, str | bytes) else None,
            )
    except httpx.TimeoutException:
        raise PluginError(f"{where} timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise PluginError(f"{where} failed: {type(exc).__name__}: {exc}") from None
    result = {
        "status": response.status_code,
        "headers": {name.lower(): value for name, value in response.headers.items()},
        "body": _body(response),
        "url": str(response.url),
        "elapsedMs": round((time.perf_counter() - started) * 1000, 3),
    }
    if response.status_code >= 400 and args.get("failOnStatus", True):
        raise PluginError(
            f"{where} answered {response.status_code} {response.reason_phrase}", result
        )
    return result


def _with_secrets(values: Any, field: str, secrets: Mapping[str, str]) -> Any:
    """`values` with each `{secretKey: KEY, prefix: ...}` replaced by the prefixed secret."""
    if not isinstance(values, Mapping):
        return values
    resolved = {}
    for name, value in values.items():
        if isinstance(value, Mapping) and "secretKey" in value:
            key = value["secretKey"]
            if key not in secrets:
                raise PluginError(
                    f"args.{field}.{name}.secretKey: the step's Secret has no key {key!r}"
                    " (is args.secretRef set?)"
                )
            value = f"{value.get('prefix', '')}{secrets[key]}"
        resolved[name] = value
    return resolved


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", "").lower() and response.content:
        try:
            return response.json()
        except ValueError:
            pass  # a server that says JSON and sends something else: keep the text
    return response.text


if __name__ == "__main__":
    raise SystemExit(runtime.main(run))
