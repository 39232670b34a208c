"""Every Tencent-side fault, injected in the emulator, answers the right gRPC code inside kube-apiserver's
3 s deadline, never crashes the plugin, and heals once the fault is gone."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import grpc
import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.protos import kms_v1beta1_pb2 as v1
from tke_kms_plugin.protos import kms_v2_pb2 as v2

from tests.fixtures.emulator import TEST_REGION, TEST_SECRET_ID, TEST_SECRET_KEY
from tests.fixtures.plugin import PluginProcess, kms_v1_stub, kms_v2_stub

from .conftest import FAST_HEALTH, http_get, status_is_ok, v2_status, wait_until

APISERVER_DEADLINE = 3.0
SEED = os.urandom(32)


@pytest.fixture
def key_id(emulator: Emulator) -> str:
    return emulator.create_key(TEST_REGION)


@pytest.fixture
def plugin(
    emulator: Emulator, key_id: str, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> PluginProcess:
    started = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=emulator.endpoint,
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
        extra_args=FAST_HEALTH,
    )
    wait_until(lambda: status_is_ok(plugin_socket), what="plugin healthy")
    return started


def v2_encrypt(socket_path: str) -> v2.EncryptResponse:
    return kms_v2_stub(socket_path).Encrypt(
        v2.EncryptRequest(plaintext=SEED, uid="fault"), timeout=APISERVER_DEADLINE
    )


def failing_code(call: Callable[[], object]) -> grpc.StatusCode:
    """The gRPC code `call` fails with; asserts it failed, and inside the apiserver deadline (+ slack)."""
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert time.monotonic() - started < APISERVER_DEADLINE + 0.5
    return caught.value.code()


def still_serves(socket_path: str) -> None:
    version = kms_v1_stub(socket_path).Version(v1.VersionRequest(version="v1beta1"), timeout=3)
    assert version.version == "v1beta1"


def metric_value(plugin: PluginProcess, sample: str) -> float:
    _, text = http_get(plugin.metrics_url + "/metrics")
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_latency_past_the_deadline_is_deadline_exceeded(emulator: Emulator, plugin: PluginProcess) -> None:
    emulator.set_latency("Encrypt", fixed_ms=5000)
    assert failing_code(lambda: v2_encrypt(plugin.socket)) is grpc.StatusCode.DEADLINE_EXCEEDED
    # The plugin itself answered DEADLINE_EXCEEDED: it derives Tencent timeouts from the caller's deadline.
    sample = (
        "tke_kms_plugin_grpc_request_duration_seconds_count"
        '{api_version="v2",code="DEADLINE_EXCEEDED",method="Encrypt"}'
    )
    wait_until(lambda: metric_value(plugin, sample) == 1, what="plugin-side DEADLINE_EXCEEDED")
    emulator.reset_faults()
    still_serves(plugin.socket)
    assert v2_encrypt(plugin.socket).ciphertext


@pytest.mark.parametrize(
    ("code", "http_status", "expected"),
    [
        ("RequestLimitExceeded", None, grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("InternalError", 503, grpc.StatusCode.UNAVAILABLE),  # 5xx: the SDK's ServerNetworkError
        ("InternalError", None, grpc.StatusCode.UNAVAILABLE),
    ],
    ids=["throttled", "http-503", "internal-error"],
)
def test_transient_errors_are_retried_then_mapped(
    emulator: Emulator, plugin: PluginProcess, code: str, http_status: int | None, expected: grpc.StatusCode
) -> None:
    before = emulator.call_counts().get("Encrypt", 0)
    emulator.set_error("Encrypt", code, http_status=http_status)
    assert failing_code(lambda: v2_encrypt(plugin.socket)) is expected
    assert emulator.call_counts().get("Encrypt", 0) - before > 1  # bounded retries within the deadline
    emulator.reset_faults()
    assert v2_encrypt(plugin.socket).ciphertext
    wait_until(lambda: status_is_ok(plugin.socket), what="healthy again")


def test_outage_is_unavailable_and_heals(emulator: Emulator, plugin: PluginProcess) -> None:
    port = emulator.port
    emulator.stop()
    assert failing_code(lambda: v2_encrypt(plugin.socket)) is grpc.StatusCode.UNAVAILABLE
    wait_until(lambda: not status_is_ok(plugin.socket), what="Status reports the outage")
    status = v2_status(plugin.socket)
    assert not isinstance(status, grpc.RpcError)  # transient: healthz says why, key_id unchanged, no error
    assert status.healthz != "ok" and status.key_id
    assert http_get(plugin.metrics_url + "/readyz")[0] == 503
    assert http_get(plugin.metrics_url + "/livez")[0] == 200  # liveness never depends on Tencent
    emulator.start(port=port)
    wait_until(lambda: status_is_ok(plugin.socket), what="healthy after the outage")
    assert v2_encrypt(plugin.socket).ciphertext


@pytest.mark.parametrize("state", ["Disabled", "PendingDelete"])
def test_unusable_key_fences_status_drops_cache_and_heals(
    emulator: Emulator, plugin: PluginProcess, key_id: str, state: str
) -> None:
    v1_stub = kms_v1_stub(plugin.socket)
    cached = v1_stub.Encrypt(v1.EncryptRequest(version="v1beta1", plain=SEED), timeout=3).cipher
    emulator.set_key_state(key_id, TEST_REGION, state)

    assert failing_code(lambda: v2_encrypt(plugin.socket)) is grpc.StatusCode.FAILED_PRECONDITION
    # Status is a gRPC error now, so kube-apiserver stops extending its write DEK (kubernetes#138950).
    status = v2_status(plugin.socket)
    assert isinstance(status, grpc.RpcError) and status.code() is grpc.StatusCode.FAILED_PRECONDITION
    # The decrypted-DEK cache was dropped: the cached ciphertext is not answered from memory any more.
    decrypt = lambda: v1_stub.Decrypt(v1.DecryptRequest(version="v1beta1", cipher=cached), timeout=3)  # noqa: E731
    assert failing_code(decrypt) is grpc.StatusCode.FAILED_PRECONDITION
    still_serves(plugin.socket)

    emulator.set_key_state(key_id, TEST_REGION, "Enabled")
    wait_until(lambda: status_is_ok(plugin.socket), what="healthy after re-enabling the key")
    assert decrypt().plain == SEED


def test_key_disabled_while_idle_is_found_by_the_background_probe(
    emulator: Emulator, plugin: PluginProcess, key_id: str
) -> None:
    emulator.set_key_state(key_id, TEST_REGION, "Disabled")
    wait_until(lambda: isinstance(v2_status(plugin.socket), grpc.RpcError), what="Status fenced")
    assert http_get(plugin.metrics_url + "/readyz")[0] == 503
    emulator.set_key_state(key_id, TEST_REGION, "Enabled")
    wait_until(lambda: status_is_ok(plugin.socket), what="healthy again")


def test_wrong_credentials_are_permission_denied(
    emulator: Emulator, key_id: str, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    plugin = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=emulator.endpoint,
        secret_id=TEST_SECRET_ID,
        secret_key="not-the-secret-key",
        extra_args=FAST_HEALTH,
    )
    assert failing_code(lambda: v2_encrypt(plugin.socket)) is grpc.StatusCode.PERMISSION_DENIED
    wait_until(lambda: isinstance(v2_status(plugin.socket), grpc.RpcError), what="Status fenced")
    assert v2_status(plugin.socket).code() is grpc.StatusCode.PERMISSION_DENIED
    assert "not-the-secret-key" not in plugin.log_text()
    still_serves(plugin.socket)


def test_unreachable_at_start_keeps_serving_then_heals(
    emulator: Emulator, key_id: str, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    """kube-apiserver may start before the network: the plugin serves, says unhealthy, retries."""
    port = emulator.port
    emulator.stop()
    plugin = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=f"127.0.0.1:{port}",
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
        extra_args=FAST_HEALTH,
    )
    status = v2_status(plugin.socket)
    assert not isinstance(status, grpc.RpcError) and status.healthz != "ok" and status.key_id
    assert failing_code(lambda: v2_encrypt(plugin.socket)) is grpc.StatusCode.UNAVAILABLE
    emulator.start(port=port)
    wait_until(lambda: status_is_ok(plugin.socket), what="healthy once Tencent is reachable")
    assert v2_encrypt(plugin.socket).ciphertext


def test_client_side_limiter_prevents_throttling(
    emulator: Emulator, key_id: str, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    """A burst far above the quota: the plugin paces itself, Tencent never answers RequestLimitExceeded."""
    emulator.set_throttle("Encrypt", 50)
    plugin = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=emulator.endpoint,
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
        extra_args=["--qps=50"],
    )
    stub = kms_v1_stub(plugin.socket)
    futures = [
        stub.Encrypt.future(v1.EncryptRequest(version="v1beta1", plain=SEED), timeout=APISERVER_DEADLINE)
        for _ in range(200)
    ]
    codes = [f.code() for f in futures]
    ok = codes.count(grpc.StatusCode.OK)
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert ok >= 100  # ~3 s of 50/s slots were used
    assert (
        metric_value(
            plugin, 'tke_kms_plugin_tencent_errors_total{action="Encrypt",code="RequestLimitExceeded"}'
        )
        == 0
    )
    assert 'outcome="RequestLimitExceeded"' not in http_get(plugin.metrics_url + "/metrics")[1]
