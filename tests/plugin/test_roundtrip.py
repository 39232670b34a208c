"""Round trips through a real plugin subprocess, a real gRPC client on its unix socket, and the real SDK
talking to the emulator subprocess."""

from __future__ import annotations

import base64
import concurrent.futures
import os
import re

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tencentcloud.kms.v20190118 import models
from tke_kms_plugin.emulator.testing import make_kms_client
from tke_kms_plugin.protos import kms_v1beta1_pb2 as v1
from tke_kms_plugin.protos import kms_v2_pb2 as v2

from tests.fixtures.emulator import TEST_REGION, TEST_SECRET_ID, TEST_SECRET_KEY

from .conftest import PluginUnderTest, http_get

DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SEED = os.urandom(32)  # what kube-apiserver encrypts: a 32-byte DEK (v1) or DEK seed (v2)
PROBE = b"ping"  # kube-apiserver's v1 health probe


def sdk_client(plugin: PluginUnderTest):
    return make_kms_client(
        plugin.emulator.endpoint, TEST_SECRET_ID, TEST_SECRET_KEY, region=TEST_REGION, timeout=5
    )


@pytest.mark.parametrize("plaintext", [SEED, PROBE, b"\x00" * 4096], ids=["dek-32", "probe-4", "max-4096"])
def test_v1_round_trip(module_plugin: PluginUnderTest, plaintext: bytes) -> None:
    stub = module_plugin.v1()
    version = stub.Version(v1.VersionRequest(version="v1beta1"), timeout=3)
    assert (version.version, version.runtime_name) == ("v1beta1", "Tencent Cloud KMS")
    cipher = stub.Encrypt(v1.EncryptRequest(version="v1beta1", plain=plaintext), timeout=3).cipher
    assert plaintext not in cipher
    assert stub.Decrypt(v1.DecryptRequest(version="v1beta1", cipher=cipher), timeout=3).plain == plaintext


def test_v1_ciphertext_is_the_ascii_ciphertext_blob(module_plugin: PluginUnderTest) -> None:
    """What the Go plugin stored: the CiphertextBlob string's bytes, decryptable by Tencent as-is, with no
    EncryptionContext."""
    cipher = module_plugin.v1().Encrypt(v1.EncryptRequest(version="v1beta1", plain=SEED), timeout=3).cipher
    assert cipher.isascii() and b"-k-" in cipher  # the emulator's blob shape; not base64 as a whole
    request = models.DecryptRequest()
    request.CiphertextBlob = cipher.decode("ascii")
    answer = sdk_client(module_plugin).Decrypt(request)
    assert base64.b64decode(answer.Plaintext) == SEED
    assert answer.KeyId == module_plugin.key_id


def test_v1_reads_ciphertexts_written_by_the_go_plugin(module_plugin: PluginUnderTest) -> None:
    """The Go plugin called Encrypt{KeyId, Plaintext} and stored []byte(CiphertextBlob)."""
    request = models.EncryptRequest()
    request.from_json_string(
        '{"KeyId":"%s","Plaintext":"%s"}' % (module_plugin.key_id, base64.b64encode(SEED).decode())  # noqa: UP031
    )
    go_cipher = sdk_client(module_plugin).Encrypt(request).CiphertextBlob.encode()
    plain = (
        module_plugin.v1().Decrypt(v1.DecryptRequest(version="v1beta1", cipher=go_cipher), timeout=3).plain
    )
    assert plain == SEED


@pytest.mark.parametrize("plaintext", [SEED, PROBE], ids=["seed-32", "probe-4"])
def test_v2_round_trip_and_contract(module_plugin: PluginUnderTest, plaintext: bytes) -> None:
    stub = module_plugin.v2()
    status = stub.Status(v2.StatusRequest(), timeout=3)
    assert (status.version, status.healthz) == ("v2", "ok")
    assert 0 < len(status.key_id.encode()) <= 1024
    assert module_plugin.key_id in status.key_id and TEST_REGION in status.key_id

    encrypted = stub.Encrypt(v2.EncryptRequest(plaintext=plaintext, uid="uid-encrypt"), timeout=3)
    assert encrypted.key_id == status.key_id
    assert 0 < len(encrypted.ciphertext) <= 1024
    assert encrypted.annotations and all(DNS1123_SUBDOMAIN.fullmatch(k) for k in encrypted.annotations)

    decrypted = stub.Decrypt(
        v2.DecryptRequest(
            ciphertext=encrypted.ciphertext,
            uid="uid-decrypt",
            key_id=encrypted.key_id,
            annotations=dict(encrypted.annotations),
        ),
        timeout=3,
    )
    assert decrypted.plaintext == plaintext
    assert stub.Status(v2.StatusRequest(), timeout=3).key_id == status.key_id  # stable


def test_v2_decrypt_rejects_a_foreign_key_id(module_plugin: PluginUnderTest) -> None:
    stub = module_plugin.v2()
    encrypted = stub.Encrypt(v2.EncryptRequest(plaintext=SEED, uid="u"), timeout=3)
    for key_id in ("", "other-plugin-key", f"tencentcloud:kms:{TEST_REGION}:not-the-key"):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Decrypt(
                v2.DecryptRequest(ciphertext=encrypted.ciphertext, uid="u", key_id=key_id), timeout=3
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_restarted_apiserver_gets_known_deks_without_tencent_calls(module_plugin: PluginUnderTest) -> None:
    """A kube-apiserver restart re-reads every Secret's DEK: the plugin answers those it has seen from memory,
    and joins identical concurrent requests into one Tencent call."""
    stub = module_plugin.v1()
    deks = [os.urandom(32) for _ in range(40)]
    ciphers = [stub.Encrypt(v1.EncryptRequest(version="v1beta1", plain=d), timeout=3).cipher for d in deks]
    before = module_plugin.emulator.admin.call_counts().get("Decrypt", 0)

    restarted = module_plugin.v1()  # a new connection, as from a restarted apiserver
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        plains = list(
            pool.map(
                lambda c: restarted.Decrypt(v1.DecryptRequest(version="v1beta1", cipher=c), timeout=3).plain,
                ciphers * 2,
            )
        )
    assert plains == deks * 2
    assert module_plugin.emulator.admin.call_counts().get("Decrypt", 0) == before

    # A DEK the plugin never saw costs exactly one Tencent call, however many ask for it at once.
    request = models.EncryptRequest()
    request.KeyId, request.Plaintext = module_plugin.key_id, base64.b64encode(SEED).decode()
    unseen = sdk_client(module_plugin).Encrypt(request).CiphertextBlob.encode()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        plains = list(
            pool.map(
                lambda c: restarted.Decrypt(v1.DecryptRequest(version="v1beta1", cipher=c), timeout=3).plain,
                [unseen] * 16,
            )
        )
    assert plains == [SEED] * 16
    assert module_plugin.emulator.admin.call_counts().get("Decrypt", 0) == before + 1


def test_grpc_health_and_http_probes(module_plugin: PluginUnderTest) -> None:
    health = health_pb2_grpc.HealthStub(module_plugin.v1().channel)
    for service in ("", "v1beta1.KeyManagementService", "v2.KeyManagementService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    url = module_plugin.plugin.metrics_url
    assert url and url.startswith("http://127.0.0.1:")
    for path in ("/livez", "/readyz", "/healthz"):
        assert http_get(url + path) == (200, "ok\n"), path
    assert http_get(url + "/nope")[0] == 404


def test_metrics_count_calls_by_version_method_and_code(module_plugin: PluginUnderTest) -> None:
    module_plugin.v1().Version(v1.VersionRequest(version="v1beta1"), timeout=3)
    stub = module_plugin.v2()
    with pytest.raises(grpc.RpcError):
        stub.Encrypt(v2.EncryptRequest(plaintext=b"", uid="empty"), timeout=3)
    _, text = http_get(module_plugin.plugin.metrics_url + "/metrics")
    assert (
        'tke_kms_plugin_grpc_request_duration_seconds_count{api_version="v2",code="INVALID_ARGUMENT",method="Encrypt"}'
        in text
    )
    assert re.search(
        r'tke_kms_plugin_grpc_request_duration_seconds_bucket\{api_version="v1beta1",code="OK",le="[^"]+",'
        r'method="Version"\} [1-9]',
        text,
    )
    assert 'tke_kms_plugin_tencent_requests_total{action="DescribeKey",outcome="Success"}' in text
    assert 'tke_kms_plugin_health_state{state="ok"} 1.0' in text
    assert "tke_kms_plugin_limiter_wait_seconds_count" in text
    assert "tke_kms_plugin_credentials_expiry_timestamp_seconds 0.0" in text
    assert "process_resident_memory_bytes" in text


def test_logs_are_json_with_uid_and_request_id_but_no_secrets(module_plugin: PluginUnderTest) -> None:
    marker = os.urandom(16)
    stub = module_plugin.v2()
    encrypted = stub.Encrypt(v2.EncryptRequest(plaintext=marker, uid="uid-log-check"), timeout=3)
    module_plugin.plugin.wait_for_log(lambda e: e.get("uid") == "uid-log-check" and e.get("request_id"))
    text = module_plugin.plugin.log_text()
    for secret in (
        TEST_SECRET_KEY,
        TEST_SECRET_ID,
        base64.b64encode(marker).decode(),
        encrypted.ciphertext.decode(),
        marker.hex(),
    ):
        assert secret not in text
