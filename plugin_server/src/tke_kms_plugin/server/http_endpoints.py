"""HTTP listener for probes and Prometheus: /livez, /readyz, /healthz, /metrics.

  /livez    200 while the event loop runs; never looks at Tencent (a KMS outage must not restart the plugin)
  /readyz   200 when the cached KMS health is ok, else 503 with the reason
  /healthz  same as /readyz (the name kube-apiserver and most probes use)
  /metrics  Prometheus text format

It runs on its own thread so a busy event loop cannot delay a probe; it only reads immutable snapshots.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .health import Snapshot
from .metrics import Metrics

LOOP_STALL_LIMIT = 10.0  # seconds without an event-loop heartbeat before /livez fails


class ProbeServer:
    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        health: Callable[[], Snapshot],
        heartbeat: Callable[[], float],
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._heartbeat = heartbeat
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="probe-http", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
        if path == "/livez":
            stalled = time.monotonic() - self._heartbeat()
            if stalled > LOOP_STALL_LIMIT:
                return 503, "text/plain", f"event loop stalled for {stalled:.0f}s\n".encode()
            return 200, "text/plain", b"ok\n"
        if path in ("/readyz", "/healthz"):
            health = self._health()
            if health.ok:
                return 200, "text/plain", b"ok\n"
            return 503, "text/plain", f"{health.state.value}: {health.reason}\n".encode()
        return 404, "text/plain", b"not found\n"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        answer = self._answer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = answer(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Probes every few seconds would flood the log."""

        return Handler
