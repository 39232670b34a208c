"""The API 3.0 wire format: envelope, TC3 signature checks, version/action/region, and bad input.

The SDK is used wherever it can express the request; raw HTTP only for what the SDK cannot send.
"""

from __future__ import annotations

import json
import socket
import time
import types

import pytest
from tencentcloud.common import abstract_client
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.kms.v20190118.kms_client import KmsClient
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.emulator.signing import sign_request, tc3_signature
from tke_kms_plugin.emulator.testing import make_kms_client, raw_request, signed_headers

from tests.emulator.helpers import api_error, call, create_key, raw_call


@pytest.fixture
def signed(emulator, emulator_credentials):
    """POST a body with the headers the SDK would send (tweakable); returns the RawReply."""
    secret_id, secret_key = emulator_credentials

    def post(body: bytes, action: str = "ListKeys", tweak=None, **kw):
        headers = signed_headers(
            emulator.endpoint, body, action=action, secret_id=secret_id, secret_key=secret_key, **kw
        )
        if tweak:
            tweak(headers)
        return raw_request(emulator.url + "/", body, headers)

    return post


def test_official_tc3_vector():
    """Tencent's documented example (docs/tencent-kms-api.md)."""
    payload = b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    signature = tc3_signature(
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        method="POST",
        path="/",
        query="",
        headers={"content-type": "application/json; charset=utf-8", "host": "cvm.tencentcloudapi.com"},
        body=payload,
        signed_headers="content-type;host",
        timestamp="1551113065",
        date="2019-02-25",
        service="cvm",
    )
    assert signature == "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"


def test_success_envelope_and_content_type(signed):
    reply = signed(b"{}")
    assert reply.status == 200
    assert reply.content_type == "application/json"  # exactly: the SDK ignores errors otherwise
    response = reply.json()["Response"]
    assert set(response) == {"Keys", "TotalCount", "RequestId"}
    assert len(response["RequestId"]) == 36


def test_error_envelope(signed):
    reply = signed(b"{}", action="NoSuchAction")
    assert (reply.status, reply.content_type) == (200, "application/json")
    response = reply.json()["Response"]
    assert set(response) == {"Error", "RequestId"}
    assert set(response["Error"]) == {"Code", "Message"}
    assert response["Error"]["Code"] == "InvalidAction"


def test_wrong_secret_key(emulator, emulator_credentials):
    client = make_kms_client(emulator.endpoint, emulator_credentials[0], "not-the-key")
    error = api_error(client, "ListKeys")
    assert error.code == "AuthFailure.SignatureFailure"


def test_unknown_secret_id(emulator, emulator_credentials):
    client = make_kms_client(emulator.endpoint, "AKIDunknown", emulator_credentials[1])
    assert api_error(client, "ListKeys").code == "AuthFailure.SecretIdNotFound"


def test_second_credential_pair_and_token_are_accepted(emulator_credentials):
    with Emulator({emulator_credentials[0]: emulator_credentials[1], "AKIDsecond": "k2"}) as emulator:
        client = make_kms_client(emulator.endpoint, "AKIDsecond", "k2", token="session-token")
        assert call(client, "ListKeys").TotalCount == 0


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_client_clock_skew_beyond_five_minutes(kms_client, monkeypatch, skew):
    """The SDK stamps X-TC-Timestamp from its module's clock; shift only that clock."""
    monkeypatch.setattr(abstract_client, "time", types.SimpleNamespace(time=lambda: time.time() + skew))
    assert api_error(kms_client, "ListKeys").code == "AuthFailure.SignatureExpire"


def test_client_clock_skew_within_five_minutes(kms_client, monkeypatch):
    monkeypatch.setattr(abstract_client, "time", types.SimpleNamespace(time=lambda: time.time() - 240))
    assert call(kms_client, "ListKeys").TotalCount == 0


def test_unsigned_payload_mode(emulator, emulator_credentials):
    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=emulator.endpoint, reqTimeout=5)
    )
    profile.unsignedPayload = True
    client = KmsClient(Credential(*emulator_credentials), "ap-guangzhou", profile)
    assert call(client, "ListKeys").TotalCount == 0


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic dXNlcjpwdw==",
        "TC3-HMAC-SHA256 Credential=AKID/2024-01-01/kms/tc3_request, Signature=abc",
        "HMAC-SHA256 Credential=AKID/2024-01-01/kms/tc3_request, SignedHeaders=content-type;host, Signature="
        + "0" * 64,
    ],
)
def test_malformed_authorization(signed, authorization):
    def tweak(headers):
        headers.pop("Authorization")
        if authorization is not None:
            headers["Authorization"] = authorization

    assert signed(b"{}", tweak=tweak).error_code == "AuthFailure.InvalidAuthorization"


def test_body_changed_after_signing(emulator, emulator_credentials):
    headers = signed_headers(
        emulator.endpoint,
        b'{"Limit": 1}',
        action="ListKeys",
        secret_id=emulator_credentials[0],
        secret_key=emulator_credentials[1],
    )
    reply = raw_request(emulator.url + "/", b'{"Limit": 2}', headers)
    assert reply.error_code == "AuthFailure.SignatureFailure"


def test_signed_for_another_host(signed):
    def tweak(headers):
        headers["Host"] = "kms.tencentcloudapi.com"

    assert signed(b"{}", tweak=tweak).error_code == "AuthFailure.SignatureFailure"


def test_credential_scope_must_match(signed, emulator, emulator_credentials):
    now = int(time.time())

    def other_service(headers):
        headers["Authorization"] = sign_request(
            *emulator_credentials, host=emulator.endpoint, body=b"{}", timestamp=now, service="cvm"
        )

    assert signed(b"{}", tweak=other_service, timestamp=now).error_code == "AuthFailure.SignatureFailure"

    def other_date(headers):
        headers["Authorization"] = headers["Authorization"].replace(
            time.strftime("%Y-%m-%d", time.gmtime(now)), "2001-01-01"
        )

    assert signed(b"{}", tweak=other_date, timestamp=now).error_code == "AuthFailure.SignatureFailure"


def test_timestamp_header_checks(signed):
    def drop(headers):
        del headers["X-TC-Timestamp"]

    def garble(headers):
        headers["X-TC-Timestamp"] = "yesterday"

    assert signed(b"{}", tweak=drop).error_code == "MissingParameter"
    assert signed(b"{}", tweak=garble).error_code == "InvalidParameter"
    assert signed(b"{}", timestamp=int(time.time()) - 400).error_code == "AuthFailure.SignatureExpire"


def test_api_version_must_be_2019_01_18(signed):
    assert signed(b"{}", version="2017-03-12").error_code == "NoSuchVersion"
    assert signed(b"{}", version="").error_code == "NoSuchVersion"


def test_unknown_action(kms_client):
    with pytest.raises(TencentCloudSDKException) as raised:
        kms_client.call("DescribeInstances", {})
    assert raised.value.code == "InvalidAction"


def test_missing_action_header(signed):
    def drop(headers):
        del headers["X-TC-Action"]

    assert signed(b"{}", tweak=drop).error_code == "MissingParameter"


def test_regions(emulator, emulator_credentials):
    assert api_error(
        make_kms_client(emulator.endpoint, *emulator_credentials, region="mars-north-1"), "ListKeys"
    ).code == ("UnsupportedRegion")
    # A falsy region makes the SDK omit X-TC-Region.
    assert api_error(
        make_kms_client(emulator.endpoint, *emulator_credentials, region=""), "ListKeys"
    ).code == ("MissingParameter")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"this is not json", "InvalidParameter"),
        (b'["a", "list"]', "InvalidParameter"),
        (b'"a string"', "InvalidParameter"),
        (b"\xff\xfe\x00garbage", "InvalidParameter"),
        (b"[" * 100_000, "InvalidParameter"),
        (b'{"Limit": "ten"}', "InvalidParameter"),
        (b'{"Limit": true}', "InvalidParameter"),
        (b'{"Limit": 1.5}', "InvalidParameter"),
        (b'{"Offset": null, "Limit": null}', None),
        (b'{"NoSuchField": 1}', "UnknownParameter"),
        (b"", None),
    ],
)
def test_bad_bodies_get_tencent_errors(signed, body, code):
    reply = signed(body)
    assert reply.status == 200
    assert reply.error_code == code


def test_wrong_types_through_the_sdk(kms_client):
    """The SDK validates nothing locally; a careless caller's types reach the server."""
    assert api_error(kms_client, "ListKeys", Limit="10").code == "InvalidParameter"
    assert api_error(kms_client, "DescribeKey", KeyId=123).code == "InvalidParameter"
    assert api_error(kms_client, "DescribeKeys", KeyIds="not-a-list").code == "InvalidParameter"
    assert api_error(kms_client, "CreateKey", Alias="a", Tags=[{"TagKey": 1}]).code == "InvalidParameter"
    error = raw_call_error(kms_client, "Encrypt", {"KeyId": "k", "Plaintext": "YQ==", "Extra": 1})
    assert error == "UnknownParameter"


def raw_call_error(client, action, params):
    with pytest.raises(TencentCloudSDKException) as raised:
        raw_call(client, action, params)
    return raised.value.code


def test_huge_body_is_refused_without_hanging(signed, emulator, kms_client):
    body = json.dumps({"Plaintext": "A" * (11 * 1024 * 1024)}).encode()
    began = time.monotonic()
    reply = signed(body, action="Encrypt")
    assert reply.error_code == "RequestSizeLimitExceeded"
    assert time.monotonic() - began < 30
    assert call(kms_client, "ListKeys").TotalCount == 0  # still serving


def test_plaintext_over_limit_within_body_limit(kms_client):
    key_id = create_key(kms_client, "big")
    error = api_error(kms_client, "Encrypt", KeyId=key_id, Plaintext="A" * (1024 * 1024))
    assert error.code == "InvalidParameterValue.InvalidPlaintext"


def test_get_and_other_paths(emulator, emulator_credentials, signed):
    get_client = make_kms_client(emulator.endpoint, *emulator_credentials)
    get_client.profile.httpProfile.reqMethod = "GET"
    assert api_error(get_client, "ListKeys").code == "UnsupportedProtocol"
    reply = raw_request(emulator.url + "/v2/", b"{}", {"Content-Type": "application/json"})
    assert reply.error_code == "InvalidRequest"


def send_raw_bytes(emulator, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nNo colon in this header line\r\n\r\n",
        b"POST / HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n",
        b"POST / HTTP/9.9\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
)
def test_malformed_http_gets_json_error_and_server_survives(emulator, kms_client, request_bytes):
    answer = send_raw_bytes(emulator, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["Response"]["Error"]["Code"]
    assert call(kms_client, "ListKeys").TotalCount == 0


def test_expect_100_continue_like_curl(emulator, emulator_credentials):
    body = b"{}"
    headers = signed_headers(
        emulator.endpoint,
        body,
        action="ListKeys",
        secret_id=emulator_credentials[0],
        secret_key=emulator_credentials[1],
    )
    headers.update({"Expect": "100-continue", "Connection": "close", "Content-Length": str(len(body))})
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    answer = send_raw_bytes(emulator, f"POST / HTTP/1.1\r\n{head}\r\n".encode() + body)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert json.loads(answer.rsplit(b"\r\n\r\n", 1)[1])["Response"]["TotalCount"] == 0


def test_client_disconnect_mid_body_does_not_break_server(emulator, kms_client):
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
        sock.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"partial')
    assert call(kms_client, "ListKeys").TotalCount == 0


def test_keep_alive_serves_many_requests_on_one_connection(kms_client, emulator):
    for _ in range(20):
        call(kms_client, "ListKeys")
    assert emulator.call_counts()["ListKeys"] == 20
