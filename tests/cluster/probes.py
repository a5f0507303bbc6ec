"""Readiness and liveness probes of a container, checked as a kubelet checks them.

`ProbeState` follows one probe of one running container: `initialDelaySeconds`, then a check
every `periodSeconds` with `timeoutSeconds`, `successThreshold` successes in a row to pass and
`failureThreshold` failures in a row to fail. A check is an `httpGet` (2xx and 3xx pass) or a
`tcpSocket` connect on 127.0.0.1, since pods share the machine's network; a named port is looked
up in the container's `ports`. `exec` probes are not supported (they pass).
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Mapping
from typing import Any


class ProbeState:
    def __init__(self, probe: Mapping[str, Any], container: Mapping[str, Any], started: float):
        self.probe = probe
        self.container = container
        self.next_check = started + float(probe.get("initialDelaySeconds", 0))
        self.successes = 0
        self.failures = 0
        self.passing: bool | None = None  # None until the thresholds have decided

    def check_if_due(self, now: float) -> bool:
        """Run the check if its time has come; True when `passing` changed."""
        if now < self.next_check:
            return False
        self.next_check = now + float(self.probe.get("periodSeconds", 10))
        try:
            passed = self._check()
        except ValueError:  # an undeclared port name: the check fails, as a kubelet's does
            passed = False
        if passed:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= int(self.probe.get("successThreshold", 1)):
                return self._become(True)
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= int(self.probe.get("failureThreshold", 3)):
                return self._become(False)
        return False

    def _become(self, passing: bool) -> bool:
        changed = self.passing is not passing
        self.passing = passing
        return changed

    def _check(self) -> bool:
        timeout = float(self.probe.get("timeoutSeconds", 1))
        if "httpGet" in self.probe:
            action = self.probe["httpGet"]
            connection_type = (
                http.client.HTTPSConnection
                if action.get("scheme", "HTTP").upper() == "HTTPS"
                else http.client.HTTPConnection
            )
            connection = connection_type("127.0.0.1", self._port(action["port"]), timeout=timeout)
            try:
                connection.request("GET", action.get("path", "/"))
                return 200 <= connection.getresponse().status < 400
            except OSError:
                return False
            finally:
                connection.close()
        if "tcpSocket" in self.probe:
            port = self._port(self.probe["tcpSocket"]["port"])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
                return True
            except OSError:
                return False
        return True

    def _port(self, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for declared in self.container.get("ports") or []:
            if declared.get("name") == port:
                return int(declared["containerPort"])
        raise ValueError(f"probe names port {port!r} that the container does not declare")
