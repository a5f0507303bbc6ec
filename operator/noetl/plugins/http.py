"""The http plugin: one HTTP request with httpx, the response as the result.

Args: `url`, `method` (GET), `headers`, `params`, `json` (a JSON body) or `data` (a mapping is
sent as a form, a string as is), `timeout` in seconds (30), `failOnStatus` (true). Redirects
are followed. Result: `{"status", "headers" (names lowercased), "body", "url" (the final one),
"elapsedMs"}`; the body is parsed JSON when the response says it is JSON, else text. A status
of 400 or more fails the step (unless `failOnStatus: false`), the result still attached.
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
                headers=args.get("headers"),
                params=args.get("params"),
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


def _body(response: httpx.Response) -> Any:
    if "json" in response.headers.get("content-type", "").lower() and response.content:
        try:
            return response.json()
        except ValueError:
            pass  # a server that says JSON and sends something else: keep the text
    return response.text


if __name__ == "__main__":
    raise SystemExit(runtime.main(run))
