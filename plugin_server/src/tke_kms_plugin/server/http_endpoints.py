"""HTTP listener for probes and Prometheus: /livez, /readyz, /healthz, /metrics.

  /livez    200 while the event loop runs; never looks at Tencent (a KMS outage must not restart the plugin)
  /readyz   200 when the cached KMS health is ok, else 503 with the reason
  /healthz  same as /readyz (the name kube-apiserver and most probes use)
  /metrics  Prometheus text format

It runs its own small asyncio loop on its own thread, so a busy main event loop cannot delay a probe; it only
reads immutable snapshots. One GET per connection (answered with `Connection: close`), which is what kubelet
probes and Prometheus scrapes need.

Clients that connect and never finish a request cost one file descriptor, not a thread: each connection has
CONNECTION_TIMEOUT for the whole exchange, and at most MAX_CONNECTIONS are open; over that, the connection
that has waited longest for its request is closed, so stalled clients evict each other while a probe, which
sends its request at once, is answered.
"""

from __future__ import annotations

import asyncio
import http
import socket
import threading
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .health import Snapshot
from .metrics import Metrics

LOOP_STALL_LIMIT = 10.0  # seconds without an event-loop heartbeat before /livez fails
CONNECTION_TIMEOUT = 5.0  # a whole exchange: request line, headers and answer
MAX_CONNECTIONS = 64
MAX_HEADER_LINES = 100
MAX_LINE = 8192
BACKLOG = 128
STOP_TIMEOUT = 2.0


class _BadRequest(Exception):
    def __init__(self, status: http.HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.status = status


class ProbeServer:
    """Binds at construction (OSError when the address is taken), serves after start()."""

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
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._waiting: dict[asyncio.StreamWriter, None] = {}  # no complete request yet, oldest first
        self._open: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None] | None] = set()
        self._thread = threading.Thread(target=self._run, name="probe-http", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(STOP_TIMEOUT)
        else:
            self._listener.close()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._connection, sock=self._listener, limit=MAX_LINE)
        async with server:
            await self._stopping.wait()
            for writer in list(self._open):
                writer.transport.abort()
            if self._handlers:
                await asyncio.wait(self._handlers, timeout=STOP_TIMEOUT / 2)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._make_room()
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        self._open.add(writer)
        self._waiting[writer] = None
        try:
            await asyncio.wait_for(self._exchange_and_close(reader, writer), CONNECTION_TIMEOUT)
        # asyncio.TimeoutError is not yet the builtin TimeoutError on Python 3.10.
        except (asyncio.TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass  # a client that stalls, sends an overlong line or goes away gets nothing more
        finally:
            self._waiting.pop(writer, None)
            self._open.discard(writer)
            self._handlers.discard(handler)
            writer.transport.abort()  # no-op once closed cleanly

    async def _exchange_and_close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._exchange(reader, writer)
        writer.close()
        await writer.wait_closed()  # flushed within the same time limit

    def _make_room(self) -> None:
        """At MAX_CONNECTIONS, close the connection that has waited longest for its request (if none is
        waiting, every slot is answering a request and will be free in a moment)."""
        if len(self._open) >= MAX_CONNECTIONS and self._waiting:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.transport.abort()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path = await self._read_request(reader)
        except _BadRequest as bad:
            status, content_type, body = bad.status, "text/plain", f"{bad.status.phrase}\n".encode()
        else:
            if path is None:
                return  # closed before sending a request
            status, content_type, body = self._answer(path)
        self._waiting.pop(writer, None)
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("ascii") + body)
        await writer.drain()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> str | None:
        """The path of a GET, None when the client closed first; _BadRequest for anything else."""
        line = await reader.readline()
        if not line:
            return None
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _BadRequest(http.HTTPStatus.BAD_REQUEST)
        for _ in range(MAX_HEADER_LINES):
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
        else:
            raise _BadRequest(http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        if parts[0] != "GET":
            raise _BadRequest(http.HTTPStatus.METHOD_NOT_ALLOWED)
        return parts[1].split("?", 1)[0]

    def _answer(self, path: str) -> tuple[http.HTTPStatus, str, bytes]:
        ok, unavailable = http.HTTPStatus.OK, http.HTTPStatus.SERVICE_UNAVAILABLE
        if path == "/metrics":
            return ok, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
        if path == "/livez":
            stalled = time.monotonic() - self._heartbeat()
            if stalled > LOOP_STALL_LIMIT:
                return unavailable, "text/plain", f"event loop stalled for {stalled:.0f}s\n".encode()
            return ok, "text/plain", b"ok\n"
        if path in ("/readyz", "/healthz"):
            health = self._health()
            if health.ok:
                return ok, "text/plain", b"ok\n"
            return unavailable, "text/plain", f"{health.state.value}: {health.reason}\n".encode()
        return http.HTTPStatus.NOT_FOUND, "text/plain", b"not found\n"
