"""Requests that used to get the wrong answer: a Decrypt joining a shorter caller's Tencent call, malformed
protobuf, oversized messages, and v2 key_ids that name another region."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.protos import kms_v1beta1_pb2 as v1
from tke_kms_plugin.protos import kms_v2_pb2 as v2

from tests.fixtures.emulator import TEST_REGION
from tests.fixtures.plugin import PluginProcess, kms_v1_stub

from .conftest import PluginUnderTest, http_get, start_with_new_key, wait_until

MAX_RECEIVE = 64 * 1024  # the plugin's documented receive limit
ANNOTATIONS_LIMIT = 32 * 1024  # kube-apiserver: all annotations of a v2 ciphertext together
V2_LIMIT = 1024  # kube-apiserver: v2 key_id and ciphertext


def metric(plugin: PluginProcess, sample: str) -> float:
    for line in http_get(plugin.metrics_url + "/metrics")[1].splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_decrypt_joining_a_shorter_callers_call_still_gets_its_answer(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    """kube-apiserver callers with different deadlines ask for the same DEK: the one with time left must
    not inherit the DEADLINE_EXCEEDED of the one that joined first."""
    # Cache off: every Decrypt goes to Tencent.
    plugin = start_with_new_key(start_plugin, emulator, plugin_socket, "--decrypt-cache-size=0")
    stub = kms_v1_stub(plugin_socket)
    dek = b"\x42" * 32
    request = v1.DecryptRequest(
        version="v1beta1",
        cipher=stub.Encrypt(v1.EncryptRequest(version="v1beta1", plain=dek), timeout=3).cipher,
    )
    emulator.set_latency("Decrypt", fixed_ms=1000)
    short = stub.Decrypt.future(request, timeout=0.3)
    wait_until(
        lambda: metric(plugin, "tke_kms_plugin_tencent_inflight_requests") == 1, what="short call in flight"
    )
    long = stub.Decrypt.future(request, timeout=3)
    assert long.result().plain == dek
    assert short.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert metric(plugin, 'tke_kms_plugin_decrypt_cache_lookups_total{result="joined"}') == 1


def raw_call(module_plugin: PluginUnderTest, method: str, payload: bytes) -> grpc.StatusCode:
    with grpc.insecure_channel(f"unix:{module_plugin.socket}") as channel:
        call = channel.unary_unary(method)  # no serializers: the bytes go out as they are
        try:
            call(payload, timeout=3)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("method", "payload"),
    [
        ("/v1beta1.KeyManagementService/Decrypt", b"\x12\xff\xff"),  # truncated length-delimited field
        ("/v1beta1.KeyManagementService/Encrypt", b"\xff"),  # a tag that is not a tag
        ("/v2.KeyManagementService/Decrypt", b"\x12\x01\xff"),  # uid (a string) that is not UTF-8
        ("/v2.KeyManagementService/Encrypt", b"\x0a\x05ab"),  # length past the end
        ("/v2.KeyManagementService/Status", b"\x08"),  # varint with no value
    ],
)
def test_malformed_protobuf_is_invalid_argument_without_a_traceback(
    module_plugin: PluginUnderTest, method: str, payload: bytes
) -> None:
    assert raw_call(module_plugin, method, payload) is grpc.StatusCode.INVALID_ARGUMENT
    log = module_plugin.plugin.log_text()
    assert "Traceback" not in log and not [e for e in module_plugin.plugin.logs() if e["level"] == "error"]
    assert module_plugin.v1().Version(v1.VersionRequest(version="v1beta1"), timeout=3).version == "v1beta1"


def test_messages_over_the_receive_limit_are_refused_before_parsing(module_plugin: PluginUnderTest) -> None:
    oversized = v1.EncryptRequest(version="v1beta1", plain=b"\x00" * (MAX_RECEIVE + 1))
    with pytest.raises(grpc.RpcError) as caught:
        module_plugin.v1().Encrypt(oversized, timeout=3)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_the_largest_request_kube_apiserver_can_send_is_accepted(module_plugin: PluginUnderTest) -> None:
    """v2 Decrypt with the 32 KiB of annotations, 1 KiB key_id and 1 KiB ciphertext kube-apiserver allows:
    the receive limit must never refuse it (here the key_id is the real one and the rest is padding)."""
    stub = module_plugin.v2()
    answer = stub.Encrypt(v2.EncryptRequest(plaintext=b"\x01" * 32, uid="big"), timeout=3)
    annotations = dict(answer.annotations)
    used = sum(len(k) + len(v) for k, v in annotations.items())
    names = [f"pad-{n:02d}.example.com" for n in range(32)]
    per_value = (ANNOTATIONS_LIMIT - used - sum(map(len, names))) // len(names)
    annotations.update({name: b"\x00" * per_value for name in names})
    total = sum(len(k) + len(v) for k, v in annotations.items())
    assert ANNOTATIONS_LIMIT - len(names) < total <= ANNOTATIONS_LIMIT
    request = v2.DecryptRequest(
        ciphertext=answer.ciphertext, uid="u" * V2_LIMIT, key_id=answer.key_id, annotations=annotations
    )
    assert request.ByteSize() > ANNOTATIONS_LIMIT
    assert stub.Decrypt(request, timeout=3).plaintext == b"\x01" * 32


def test_v2_key_id_of_another_region_is_refused(module_plugin: PluginUnderTest) -> None:
    stub = module_plugin.v2()
    answer = stub.Encrypt(v2.EncryptRequest(plaintext=b"\x02" * 32, uid="region"), timeout=3)
    assert answer.key_id == f"tencentcloud:kms:{TEST_REGION}:{module_plugin.key_id}"
    other = answer.key_id.replace(f":{TEST_REGION}:", ":ap-beijing:")
    request = v2.DecryptRequest(
        ciphertext=answer.ciphertext, uid="region", key_id=other, annotations=dict(answer.annotations)
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Decrypt(request, timeout=3)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "ap-beijing" in caught.value.details() and TEST_REGION in caught.value.details()
    request.key_id = answer.key_id
    assert stub.Decrypt(request, timeout=3).plaintext == b"\x02" * 32
