"""Fault injection and test controls, in-process (Emulator) and over HTTP (EmulatorAdmin)."""

from __future__ import annotations

import time

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tke_kms_plugin.emulator import EmulatorAdmin, EmulatorAdminError
from tke_kms_plugin.emulator.testing import make_kms_client, raw_request

from tests.emulator.helpers import api_error, b64, call, create_key, decrypt, encrypt

REGION = "ap-guangzhou"


@pytest.fixture(params=["in_process", "admin_http"])
def controls(request, emulator):
    """The same control API, either on the Emulator object or through /_emulator/ over HTTP."""
    return emulator if request.param == "in_process" else EmulatorAdmin(emulator.url)


def test_fixed_latency_is_a_lower_bound(controls, kms_client):
    controls.set_latency("ListKeys", fixed_ms=300)
    began = time.monotonic()
    call(kms_client, "ListKeys")
    assert time.monotonic() - began >= 0.3


def test_random_latency_adds_to_fixed(controls, kms_client):
    controls.set_latency("*", fixed_ms=100, random_ms=50)
    began = time.monotonic()
    for _ in range(3):
        call(kms_client, "ListKeys")
    assert time.monotonic() - began >= 0.3


def test_latency_beyond_client_timeout_is_a_client_network_error(emulator, emulator_credentials, controls):
    client = make_kms_client(emulator.endpoint, *emulator_credentials, timeout=1)
    controls.set_latency("ListKeys", fixed_ms=1500)
    with pytest.raises(TencentCloudSDKException) as raised:
        call(client, "ListKeys")
    assert raised.value.code == "ClientNetworkError"
    controls.set_latency("ListKeys")  # zeros remove the rule
    assert call(client, "ListKeys").TotalCount == 0


def test_error_injection_always(controls, kms_client):
    key_id = create_key(kms_client, "faulty")
    blob = encrypt(kms_client, key_id, b"x")
    controls.set_error("Decrypt", "InternalError", message="backend exploded")
    error = api_error(kms_client, "Decrypt", CiphertextBlob=blob)
    assert (error.code, error.message) == ("InternalError", "backend exploded")
    assert encrypt(kms_client, key_id, b"other actions unaffected")
    controls.reset_faults()
    assert decrypt(kms_client, blob) == b"x"


def test_error_injection_rate(controls, kms_client):
    controls.set_error("*", "ResourceUnavailable.CmkDisabled", rate=0.5)
    outcomes = []
    for _ in range(60):
        try:
            call(kms_client, "ListKeys")
            outcomes.append("ok")
        except TencentCloudSDKException as err:
            outcomes.append(err.code)
    assert set(outcomes) == {"ok", "ResourceUnavailable.CmkDisabled"}  # P(all one way) = 2**-59
    controls.set_error("*", "InternalError", rate=0.0)
    assert all(call(kms_client, "ListKeys").TotalCount == 0 for _ in range(10))


def test_error_injection_as_http_status(controls, kms_client):
    controls.set_error("ListKeys", "ServiceUnavailable", http_status=503, message="upstream down")
    error = api_error_any(kms_client)
    assert error.code == "ServerNetworkError"


def api_error_any(client):
    with pytest.raises(TencentCloudSDKException) as raised:
        call(client, "ListKeys")
    return raised.value


def test_throttle(controls, kms_client):
    controls.set_throttle("ListKeys", 5)
    began = time.monotonic()
    outcomes = []
    for _ in range(30):
        try:
            call(kms_client, "ListKeys")
            outcomes.append("ok")
        except TencentCloudSDKException as err:
            outcomes.append(err.code)
    elapsed = time.monotonic() - began
    assert "RequestLimitExceeded" in outcomes
    assert outcomes.count("ok") <= 5 + 5 * elapsed + 1  # burst of one second, then 5/s
    assert call(kms_client, "DescribeKeys", KeyIds=[]).KeyMetadatas == []  # other actions unthrottled
    controls.set_throttle("ListKeys", None)
    assert all(call(kms_client, "ListKeys").TotalCount == 0 for _ in range(20))


def test_call_counts_include_failures(controls, kms_client):
    key_id = create_key(kms_client, "counted")
    blob = encrypt(kms_client, key_id, b"x")
    decrypt(kms_client, blob)
    api_error(kms_client, "Decrypt", CiphertextBlob="broken")
    controls.set_error("Decrypt", "InternalError")
    api_error(kms_client, "Decrypt", CiphertextBlob=blob)
    counts = controls.call_counts()
    assert counts["Decrypt"] == 3
    assert counts["Encrypt"] == 1
    assert counts["CreateKey"] == 1
    assert counts["Decrypt:InternalError"] == 1
    assert "Encrypt:InternalError" not in counts


def test_create_key_and_states_without_the_api(controls, kms_client):
    key_id = controls.create_key(REGION, alias="direct", description="set up by a test")
    metadata = call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata
    assert (metadata.Alias, metadata.Description, metadata.KeyState) == (
        "direct",
        "set up by a test",
        "Enabled",
    )
    generated = controls.create_key(REGION)
    assert call(kms_client, "DescribeKey", KeyId=generated).KeyMetadata.Alias
    controls.set_key_state(key_id, REGION, "Disabled")
    assert api_error(kms_client, "Encrypt", KeyId=key_id, Plaintext=b64(b"x")).code == (
        "ResourceUnavailable.CmkDisabled"
    )
    controls.set_key_state(key_id, REGION, "PendingDelete")
    assert call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata.DeletionDate > 0
    disabled = controls.create_key(REGION, alias="born-disabled", key_state="Disabled", rotate_days=90)
    metadata = call(kms_client, "DescribeKey", KeyId=disabled).KeyMetadata
    assert (metadata.KeyState, metadata.KeyRotationEnabled, metadata.RotateDays) == ("Disabled", True, 90)


def test_rotate_key_now(controls, kms_client):
    key_id = controls.create_key(REGION, alias="rotate-me")
    old = encrypt(kms_client, key_id, b"old")
    assert controls.rotate_key_now(key_id, REGION) == 2
    new = encrypt(kms_client, key_id, b"new")
    assert controls.inspect_ciphertext(old)["material_version"] == 1
    assert controls.inspect_ciphertext(new) == {"key_id": key_id, "material_version": 2}
    assert (decrypt(kms_client, old), decrypt(kms_client, new)) == (b"old", b"new")


def test_reset_clears_keys_faults_and_counts(controls, kms_client):
    create_key(kms_client, "gone-after-reset")
    controls.set_latency("*", fixed_ms=1)
    controls.set_throttle("Encrypt", 300)
    controls.set_error("Decrypt", "InternalError", rate=0.1)
    assert controls.faults_config()["throttles"] == {"Encrypt": 300}
    controls.reset()
    assert controls.faults_config() == {"latency": {}, "errors": {}, "throttles": {}}
    assert controls.call_counts() == {}
    assert call(kms_client, "ListKeys").TotalCount == 0
    assert call(kms_client, "CreateKey", Alias="gone-after-reset").Alias == "gone-after-reset"


@pytest.mark.parametrize(
    ("method", "args", "kwargs"),
    [
        ("set_latency", ("*",), {"fixed_ms": -1}),
        ("set_error", ("Decrypt", "InternalError"), {"rate": 2}),
        ("set_error", ("Decrypt", ""), {}),
        ("set_error", ("Decrypt", "InternalError"), {"http_status": 200}),
        ("set_throttle", ("",), {"qps": 5}),
        ("set_key_state", ("00000000-1111-11e9-b129-5cb9019b4b01", REGION, "Enabled"), {}),
        ("create_key", ("mars-1",), {}),
        ("create_key", (REGION,), {"alias": "kms-reserved"}),
        ("inspect_ciphertext", ("not-a-blob",), {}),
    ],
)
def test_bad_control_arguments_are_refused(controls, method, args, kwargs):
    expected = EmulatorAdminError if isinstance(controls, EmulatorAdmin) else Exception
    with pytest.raises(expected):
        getattr(controls, method)(*args, **kwargs)


def test_admin_http_errors(emulator):
    assert raw_request(emulator.url + "/_emulator/nope", b"{}", {}).status == 404
    reply = raw_request(emulator.url + "/_emulator/set_latency", b"[1]", {"Content-Type": "application/json"})
    assert reply.status == 400
    reply = raw_request(emulator.url + "/_emulator/set_latency", b'{"bogus": 1}', {})
    assert reply.status == 400
    assert EmulatorAdmin(emulator.url).health() is True
