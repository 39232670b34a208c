"""TC3-HMAC-SHA256, computed exactly as tencentcloud-sdk-python does (docs/tencent-kms-api.md).

The server side (`verify_request`) hashes the raw body bytes it received; it never re-serialises JSON.
`sign_request` is the client side, for tests that send raw HTTP the SDK would refuse to build.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from .errors import ApiError

ALGORITHM = "TC3-HMAC-SHA256"
MAX_CLOCK_SKEW_SECONDS = 300
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[^/\s]+)"
    r"/tc3_request, SignedHeaders=(?P<signed_headers>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def utc_date(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, service: str) -> bytes:
    return _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")


def tc3_signature(
    secret_key: str,
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    signed_headers: str,
    timestamp: str,
    date: str,
    service: str,
) -> str:
    """Hex signature. `headers` has lower-cased names and the values as sent."""
    canonical_headers = "".join(
        f"{name}:{headers.get(name, '').strip().lower()}\n" for name in signed_headers.split(";")
    )
    if headers.get("x-tc-content-sha256") == UNSIGNED_PAYLOAD:
        body = UNSIGNED_PAYLOAD.encode()
    canonical_request = "\n".join(
        [
            method,
            path,
            query if method == "GET" else "",
            canonical_headers,
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            timestamp,
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = signing_key(secret_key, date, service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify_request(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Mapping[str, str],
    now: float,
    service: str = "kms",
) -> str:
    """Check the Authorization header; return the SecretId it was signed with, or raise ApiError."""
    match = _AUTHORIZATION.match(headers.get("authorization", ""))
    if match is None:
        raise ApiError(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is missing or malformed; the emulator accepts only 'TC3-HMAC-SHA256 "
            "Credential=<SecretId>/<date>/kms/tc3_request, SignedHeaders=..., Signature=...'.",
        )
    raw_timestamp = headers.get("x-tc-timestamp", "")
    if not raw_timestamp:
        raise ApiError("MissingParameter", "The X-TC-Timestamp header is missing.")
    if not raw_timestamp.isdigit():
        raise ApiError("InvalidParameter", f"X-TC-Timestamp must be unix seconds, got {raw_timestamp!r}.")
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > MAX_CLOCK_SKEW_SECONDS:
        raise ApiError(
            "AuthFailure.SignatureExpire",
            f"Signature expired: X-TC-Timestamp {timestamp} is more than {MAX_CLOCK_SKEW_SECONDS} s "
            f"away from the server time {int(now)}.",
        )
    signed_headers = match["signed_headers"]
    if "content-type" not in signed_headers.split(";") or "host" not in signed_headers.split(";"):
        raise ApiError(
            "AuthFailure.SignatureFailure", "SignedHeaders must include at least content-type and host."
        )
    if match["service"] != service or match["date"] != utc_date(timestamp):
        raise ApiError(
            "AuthFailure.SignatureFailure",
            f"Credential scope {match['date']}/{match['service']} does not match "
            f"{utc_date(timestamp)}/{service} (date of X-TC-Timestamp, service name).",
        )
    secret_key = credentials.get(match["secret_id"])
    if secret_key is None:
        raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found; check that it exists.")
    expected = tc3_signature(
        secret_key,
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        signed_headers=signed_headers,
        timestamp=raw_timestamp,
        date=match["date"],
        service=match["service"],
    )
    if not hmac.compare_digest(expected, match["signature"]):
        raise ApiError(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        )
    return match["secret_id"]


def sign_request(
    secret_id: str,
    secret_key: str,
    *,
    host: str,
    body: bytes,
    timestamp: int,
    content_type: str = "application/json",
    service: str = "kms",
) -> str:
    """The Authorization header value the Python SDK would send for a POST / with this body."""
    date = utc_date(timestamp)
    signature = tc3_signature(
        secret_key,
        method="POST",
        path="/",
        query="",
        headers={"content-type": content_type, "host": host},
        body=body,
        signed_headers="content-type;host",
        timestamp=str(timestamp),
        date=date,
        service=service,
    )
    return (
        f"{ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )
