"""The HTTP front: a threaded HTTP/1.1 keep-alive server, and `Emulator`, which runs it in the background."""

from __future__ import annotations

import contextlib
import http
import logging
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

from .admin import ADMIN_PREFIX, handle_admin_request
from .service import MAX_BODY_BYTES, KmsService, Reply, error_reply

logger = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS = 120  # a keep-alive connection, or a client stalled mid-body, is dropped after this
MAX_DRAINED_BYTES = (
    64 * 1024 * 1024
)  # read and discard an oversized body up to this, so the client sees the error
ADMIN_BODY_LIMIT = 1024 * 1024
MAX_HEADER_LINE = 65536
MAX_HEADERS = 100


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tke-kms-emulator"
    timeout = IDLE_TIMEOUT_SECONDS
    disable_nagle_algorithm = True
    server: _Server
    headers: dict[str, str]  # type: ignore[assignment]  # lower-cased names, see parse_request

    def parse_request(self) -> bool:
        """The request line and headers, into a plain dict with lower-cased names.

        Replaces the stdlib's email-parser based version, which alone cost a fifth of a request's CPU time.
        """
        self.command = ""  # send_error reads it
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(400, f"Bad request line {self.requestline[:100]!r}")
            return False
        self.command, self.path, self.request_version = words
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self.rfile.readline(MAX_HEADER_LINE + 1)
            if len(line) > MAX_HEADER_LINE:
                self.send_error(431, "Header line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon or not name.strip():
                self.send_error(400, f"Malformed header line {line[:100]!r}")
                return False
            headers[name.strip().lower()] = value.strip()
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers
        connection = headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive"
        )
        if headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        limit = ADMIN_BODY_LIMIT if path.startswith(ADMIN_PREFIX) else MAX_BODY_BYTES
        body, refusal = self._read_body(limit)
        if refusal is not None:
            self._send(refusal)
            return
        if body is None:  # the client went away mid-body
            self.close_connection = True
            return
        if path.startswith(ADMIN_PREFIX):
            reply = handle_admin_request(self.server.service, self.command, path, body)
        else:
            reply = self.server.service.handle_api_request(self.command, path, query, self.headers, body)
        self._send(reply)

    def _read_body(self, limit: int) -> tuple[bytes | None, Reply | None]:
        if "transfer-encoding" in self.headers:
            return None, error_reply(
                "InvalidRequest", "Chunked request bodies are not supported; send Content-Length.", close=True
            )
        raw_length = self.headers.get("content-length", "0") or "0"
        if not raw_length.isdigit():
            return None, error_reply(
                "InvalidRequest", f"Content-Length {raw_length!r} is not valid.", close=True
            )
        length = int(raw_length)
        if length > limit:
            self._drain(length)
            return None, error_reply(
                "RequestSizeLimitExceeded",
                f"The request body is {length} bytes; the limit is {limit} bytes.",
                close=True,
            )
        try:
            body = self.rfile.read(length)
        except OSError:
            return None, None
        return (body if len(body) == length else None), None

    def _drain(self, length: int) -> None:
        remaining = min(length, MAX_DRAINED_BYTES)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    return
                remaining -= len(chunk)
        except OSError:
            return

    def _send(self, reply: Reply) -> None:
        if reply.close:
            self.close_connection = True
        head = (
            f"HTTP/1.1 {reply.status} {_reason(reply.status)}\r\n"
            f"Content-Type: {reply.content_type}\r\n"
            f"Content-Length: {len(reply.body)}\r\n"
            f"Connection: {'close' if self.close_connection else 'keep-alive'}\r\n\r\n"
        )
        try:
            self.wfile.write(head.encode("latin-1") + reply.body)
        except OSError:
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, huge headers...): still a Tencent-style JSON error."""
        self.close_connection = True
        self._send(
            error_reply("InvalidRequest", f"HTTP {code}: {message or explain or 'bad request'}", status=code)
        )

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: KmsService) -> None:
        self.service = service
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Hang up on keep-alive clients so their handler threads end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        logger.debug("connection from %s failed", client_address, exc_info=True)


class Emulator(KmsService):
    """The Tencent Cloud KMS emulator in this process: `Emulator({"AKID...": "key"}).start()`.

    Serves in background threads until `stop()`; also a context manager. The test controls
    (set_latency, set_error, ..., call_counts) are the KmsService methods.
    """

    def __init__(self, credentials: dict[str, str], state_file: str | Path | None = None) -> None:
        super().__init__(credentials, state_file)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="tke-kms-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._server

    @property
    def host(self) -> str:
        return str(self._running().server_address[0])

    @property
    def port(self) -> int:
        return int(self._running().server_address[1])

    @property
    def endpoint(self) -> str:
        """What HttpProfile(endpoint=...) wants, with protocol="http"."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
