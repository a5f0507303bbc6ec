"""The node agent's kubelet port: HTTPS with client certificates from the cluster CA.

It serves `/containerLogs/<namespace>/<pod>/<container>`, which the API server calls for
`kubectl logs` (and `read_namespaced_pod_log`), and `/healthz`. Exec, attach and port-forward are
not offered: a pod here is a local process.
"""

from __future__ import annotations

import ssl
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.cluster.container_logs import LogQuery, read
from tests.cluster.pki import CertFiles

# (namespace, pod, container, previous) -> (log file, is the container still running?) or None.
LogLookup = Callable[[str, str, str, bool], tuple[Path, Callable[[], bool]] | None]


class KubeletServer:
    def __init__(self, serving: CertFiles, client_ca: Path, lookup: LogLookup) -> None:
        handler = type("Handler", (_Handler,), {"lookup": staticmethod(lookup)})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(serving.cert), str(serving.key))
        context.load_verify_locations(str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED  # only the API server (or an admin) may read logs
        # The handshake then happens in the request's thread, not in the accepting loop.
        self._server.socket = context.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kubelet-server", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    lookup: LogLookup

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            self._reply(200, b"ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._reply(404, b"not found")
            return
        params = urllib.parse.parse_qs(url.query)
        previous = params.get("previous", ["false"])[-1] == "true"
        found = self.lookup(parts[1], parts[2], parts[3], previous)
        if found is None:
            self._reply(
                404, f"container {parts[3]} of pod {parts[1]}/{parts[2]} has no log".encode()
            )
            return
        path, running = found
        # No Content-Length: the body ends when the connection closes, which lets follow stream.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        try:
            for chunk in read(path, LogQuery.from_params(params), running):
                self.wfile.write(chunk)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client stopped following

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the API server polls and streams often."""
