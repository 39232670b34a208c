"""Hypothesis throws arbitrary Encrypt/Decrypt inputs at a running plugin (real socket, real SDK, emulator):
every call answers OK or a specific gRPC error, never INTERNAL/UNKNOWN, and the plugin keeps serving.
Requests over the plugin's 64 KiB receive limit are refused by gRPC itself (RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import random

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tke_kms_plugin.protos import kms_v1beta1_pb2 as v1
from tke_kms_plugin.protos import kms_v2_pb2 as v2

from .conftest import PluginUnderTest

MAX_RECEIVE = 64 * 1024  # the plugin's receive limit
MAX_INPUT = MAX_RECEIVE + 8 * 1024
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Small structured bytes, or up to 64 KiB built from a seed (cheap for Hypothesis to shrink)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=512))
    size = draw(st.integers(min_value=0, max_value=MAX_INPUT))
    return random.Random(draw(st.integers(0, 2**32))).randbytes(size)  # noqa: S311 - test data


ascii_junk = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300).map(
    str.encode
)
annotation_keys = st.one_of(
    st.text(max_size=40), st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?", fullmatch=True)
)
key_ids = st.one_of(
    st.text(max_size=60), st.just("tencentcloud:kms:ap-guangzhou:x"), st.text(min_size=1000, max_size=1100)
)


def expected_errors(request) -> set[grpc.StatusCode]:
    if request.ByteSize() > MAX_RECEIVE:
        return {grpc.StatusCode.RESOURCE_EXHAUSTED}
    return {grpc.StatusCode.INVALID_ARGUMENT}


def outcome(call, request):
    try:
        return call(request, timeout=5), None
    except grpc.RpcError as error:
        return None, error.code()


@pytest.fixture(scope="module")
def stubs(module_plugin: PluginUnderTest):
    yield module_plugin.v1(), module_plugin.v2()
    # Whatever came in, the plugin is still up and never hit an unexpected error.
    assert module_plugin.v1().Version(v1.VersionRequest(version="v1beta1"), timeout=3).version == "v1beta1"
    assert module_plugin.plugin.process.poll() is None
    assert not [e for e in module_plugin.plugin.logs() if e.get("msg") == "unexpected error"]


@FUZZ
@given(plaintext=payloads())
def test_v1_encrypt(stubs, plaintext: bytes) -> None:
    v1_stub, _ = stubs
    request = v1.EncryptRequest(version="v1beta1", plain=plaintext)
    answer, code = outcome(v1_stub.Encrypt, request)
    if 1 <= len(plaintext) <= 4096:
        assert code is None
        back, code = outcome(v1_stub.Decrypt, v1.DecryptRequest(version="v1beta1", cipher=answer.cipher))
        assert code is None and back.plain == plaintext
    else:
        assert code in expected_errors(request)


@FUZZ
@given(ciphertext=st.one_of(payloads(), ascii_junk))
def test_v1_decrypt(stubs, ciphertext: bytes) -> None:
    v1_stub, _ = stubs
    request = v1.DecryptRequest(version="v1beta1", cipher=ciphertext)
    _, code = outcome(v1_stub.Decrypt, request)
    assert code in expected_errors(request)


@FUZZ
@given(plaintext=payloads(), uid=st.text(max_size=100))
def test_v2_encrypt(stubs, plaintext: bytes, uid: str) -> None:
    _, v2_stub = stubs
    encrypt = v2.EncryptRequest(plaintext=plaintext, uid=uid)
    answer, code = outcome(v2_stub.Encrypt, encrypt)
    if code is None:
        assert 0 < len(answer.ciphertext) <= 1024 and answer.key_id
        request = v2.DecryptRequest(
            ciphertext=answer.ciphertext, uid=uid, key_id=answer.key_id, annotations=dict(answer.annotations)
        )
        back, code = outcome(v2_stub.Decrypt, request)
        assert code is None and back.plaintext == plaintext
    else:
        assert code in expected_errors(encrypt)


@FUZZ
@given(
    ciphertext=st.one_of(payloads(), ascii_junk),
    key_id=key_ids,
    annotations=st.dictionaries(annotation_keys, st.binary(max_size=64), max_size=4),
    uid=st.text(max_size=100),
)
def test_v2_decrypt(stubs, ciphertext: bytes, key_id: str, annotations: dict[str, bytes], uid: str) -> None:
    _, v2_stub = stubs
    request = v2.DecryptRequest(ciphertext=ciphertext, uid=uid, key_id=key_id, annotations=annotations)
    _, code = outcome(v2_stub.Decrypt, request)
    assert code in expected_errors(request)
