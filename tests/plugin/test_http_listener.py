"""The HTTP listener (--metrics-address) is optional for the apiserver: a port someone else holds, or clients
that connect and never speak, must not cost the KMS socket anything."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.protos import kms_v1beta1_pb2 as v1
from tke_kms_plugin.protos import kms_v2_pb2 as v2
from tke_kms_plugin.server.health import HealthState
from tke_kms_plugin.server.http_endpoints import ProbeServer
from tke_kms_plugin.server.metrics import Metrics

from tests.fixtures.plugin import PluginProcess, kms_v1_stub, kms_v2_stub

from .conftest import http_get, start_with_new_key, wait_until
from .test_cli import run_cli

HTTP_SERVICE = "tke-kms-plugin.http"  # the grpc.health.v1 service name of the HTTP listener
STALLED_CLIENTS = 300
HTTP_CONNECTION_TIMEOUT = 5.0  # documented per-connection limit of the listener


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """A loopback port held by a plain listening socket: what another process on 9876 looks like."""
    holder = socket.create_server(("127.0.0.1", 0))
    try:
        yield holder
    finally:
        holder.close()


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def grpc_health(socket_path: str, service: str) -> int:
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=3).status


def assert_round_trips(socket_path: str) -> None:
    dek = b"\x07" * 32
    stub = kms_v1_stub(socket_path)
    cipher = stub.Encrypt(v1.EncryptRequest(version="v1beta1", plain=dek), timeout=3).cipher
    assert stub.Decrypt(v1.DecryptRequest(version="v1beta1", cipher=cipher), timeout=3).plain == dek
    stub2 = kms_v2_stub(socket_path)
    answer = stub2.Encrypt(v2.EncryptRequest(plaintext=dek, uid="http"), timeout=3)
    request = v2.DecryptRequest(
        ciphertext=answer.ciphertext, uid="http", key_id=answer.key_id, annotations=dict(answer.annotations)
    )
    assert stub2.Decrypt(request, timeout=3).plaintext == dek


def http_errors(plugin: PluginProcess) -> list[dict]:
    return [e for e in plugin.logs() if e["level"] == "error" and "HTTP listener" in e["msg"]]


def test_taken_metrics_port_keeps_kms_serving_reports_it_and_binds_once_free(
    emulator: Emulator,
    plugin_socket: str,
    start_plugin: Callable[..., PluginProcess],
    held_port: socket.socket,
) -> None:
    port = held_port.getsockname()[1]
    plugin = start_with_new_key(start_plugin, emulator, plugin_socket, f"--metrics-address=127.0.0.1:{port}")
    assert_round_trips(plugin_socket)
    assert grpc_health(plugin_socket, HTTP_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert grpc_health(plugin_socket, "") == health_pb2.HealthCheckResponse.SERVING
    [error] = http_errors(plugin)
    assert f"127.0.0.1:{port}" in error["address"] and "in use" in error["error"]
    assert "Traceback" not in plugin.log_text() and not [e for e in plugin.logs() if "exception" in e]
    check = run_cli("health-check", f"--unix-socket={plugin_socket}")
    assert check.returncode == 0 and "HTTP listener (--metrics-address) not serving" in check.stdout

    held_port.close()  # the other process went away: the plugin takes the port on a later attempt
    wait_until(
        lambda: grpc_health(plugin_socket, HTTP_SERVICE) == health_pb2.HealthCheckResponse.SERVING,
        timeout=20,
        what="HTTP listener bound once the port is free",
    )
    assert http_get(f"http://127.0.0.1:{port}/livez")[0] == 200
    metrics = http_get(f"http://127.0.0.1:{port}/metrics")[1]
    assert "tke_kms_plugin_http_listener_up 1.0" in metrics
    assert "tke_kms_plugin_http_listener_bind_failures_total 0.0" not in metrics
    assert len(http_errors(plugin)) == 1  # retries are quiet: one error line however long it took
    check = run_cli("health-check", f"--unix-socket={plugin_socket}")
    assert check.returncode == 0 and "warning" not in check.stdout
    assert plugin.process.poll() is None


def test_two_plugins_with_the_same_metrics_address_both_serve_kms(
    emulator: Emulator, tmp_path: Path, start_plugin: Callable[..., PluginProcess]
) -> None:
    """A rotation's second plugin (or a pod overlapping a static pod) with the same default address."""
    address = f"--metrics-address=127.0.0.1:{free_port()}"
    sockets = [f"/tmp/kms-{tmp_path.name[-20:]}-{n}.sock" for n in (1, 2)]
    first = start_with_new_key(start_plugin, emulator, sockets[0], address)
    second = start_with_new_key(start_plugin, emulator, sockets[1], address)
    for path in sockets:
        assert_round_trips(path)
    assert grpc_health(sockets[0], HTTP_SERVICE) == health_pb2.HealthCheckResponse.SERVING
    assert grpc_health(sockets[1], HTTP_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert not http_errors(first) and len(http_errors(second)) == 1
    assert first.process.poll() is None and second.process.poll() is None


def thread_count(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for pid {pid}")


def closed_by_peer(connection: socket.socket) -> bool:
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


def test_stalled_http_clients_do_not_block_livez_or_pile_up_threads(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    plugin = start_with_new_key(start_plugin, emulator, plugin_socket)
    assert http_get(plugin.metrics_url + "/livez")[0] == 200
    threads_before = thread_count(plugin.pid)
    host, port = plugin.metrics_url.removeprefix("http://").rsplit(":", 1)
    stalled = [socket.create_connection((host, int(port)), timeout=3) for _ in range(STALLED_CLIENTS)]
    try:
        stalled[-1].sendall(b"GET /livez HTTP/1.1\r\n")  # one slow client starts a request, never ends it
        started = time.monotonic()
        assert http_get(plugin.metrics_url + "/livez", timeout=2)[0] == 200
        assert time.monotonic() - started < 2
        assert thread_count(plugin.pid) <= threads_before + 4
        for connection in stalled:
            connection.setblocking(False)
        deadline = time.monotonic() + HTTP_CONNECTION_TIMEOUT + 5
        wait_until(
            lambda: all(closed_by_peer(c) for c in stalled),
            timeout=max(deadline - time.monotonic(), 0.1),
            what="every stalled connection closed by the plugin",
        )
        assert http_get(plugin.metrics_url + "/livez")[0] == 200
        assert thread_count(plugin.pid) <= threads_before + 4
    finally:
        for connection in stalled:
            connection.close()
    assert_round_trips(plugin_socket)


@pytest.fixture
def probe_server() -> Iterator[ProbeServer]:
    """The listener in-process, in front of a fresh health state (starting: not ready)."""
    server = ProbeServer("127.0.0.1", 0, Metrics(), HealthState().snapshot, time.monotonic)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def exchange(server: ProbeServer, request: bytes) -> bytes:
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=3) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /livez?verbose HTTP/1.0\r\n\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /readyz HTTP/1.1\r\n\r\n", b"HTTP/1.1 503 Service Unavailable"),
        (b"GET /metrics HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /nothing HTTP/1.1\r\n\r\n", b"HTTP/1.1 404 Not Found"),
        (b"POST /livez HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed"),
        (b"\x16\x03\x01 not http\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET /livez HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"HTTP/1.1 431"),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n", b""),  # overlong line: closed without an answer
    ],
)
def test_listener_answers_one_request_per_connection(
    probe_server: ProbeServer, request_bytes: bytes, status_line: bytes
) -> None:
    answer = exchange(probe_server, request_bytes)
    assert answer.startswith(status_line)
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Connection: close" in head and f"Content-Length: {len(body)}".encode() in head
