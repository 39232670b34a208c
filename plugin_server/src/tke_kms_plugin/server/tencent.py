"""Blocking Tencent KMS calls through tencentcloud-sdk-python, run on worker threads.

Each worker thread owns one KmsClient (and so one HTTP keep-alive connection): the SDK reads its timeout
from the client's connection object on every request, so a per-thread client can take a fresh timeout,
derived from the caller's deadline, for each call without affecting the other threads. All threads share
one CredentialManager, so refreshed temporary credentials apply to the next request of every client.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from .config import Endpoint
from .credentials import CredentialManager
from .errors import ErrorKind, KmsError, from_tencent
from .metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncryptAnswer:
    ciphertext_blob: str
    key_id: str
    request_id: str | None


@dataclass(frozen=True)
class DecryptAnswer:
    plaintext: bytes
    key_id: str
    request_id: str | None


@dataclass(frozen=True)
class KeyAnswer:
    key_state: str
    key_usage: str
    request_id: str | None


def _garbled(action: str, what: str, request_id: str | None) -> KmsError:
    error = from_tencent(action, "InvalidResponse", f"answer without a valid {what}", request_id)
    error.kind, error.retryable = ErrorKind.TRANSIENT, True
    return error


class TencentClient:
    def __init__(
        self, credentials: CredentialManager, region: str, endpoint: Endpoint, metrics: Metrics
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.endpoint = endpoint
        self.metrics = metrics
        self._local = threading.local()

    def _client(self, timeout: float) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: PLC0415  (slow import)
            from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: PLC0415
            from tencentcloud.kms.v20190118.kms_client import KmsClient  # noqa: PLC0415

            http = HttpProfile(
                protocol=self.endpoint.protocol, endpoint=self.endpoint.host, reqTimeout=timeout
            )
            # en-US: Tencent's error messages end up in gRPC statuses and logs read by operators.
            client = KmsClient(
                self.credentials, self.region, ClientProfile(httpProfile=http, language="en-US")
            )
            self._local.client = client
        client.request.conn.timeout = timeout
        return client

    def _call(self, action: str, request: Any, timeout: float) -> Any:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # noqa: PLC0415
            TencentCloudSDKException,
        )

        client = self._client(timeout)
        started = time.monotonic()
        try:
            answer = getattr(client, action)(request)
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "UnknownError")
            self._record(action, code, started)
            raise from_tencent(action, code, exc.get_message() or "", exc.get_request_id()) from None
        except Exception as exc:  # the SDK wraps most failures, but never let one escape unmapped
            self._record(action, type(exc).__name__, started)
            raise from_tencent(action, type(exc).__name__, str(exc), None) from None
        self._record(action, "Success", started)
        return answer

    def _record(self, action: str, outcome: str, started: float) -> None:
        self.metrics.tencent_latency.labels(action).observe(time.monotonic() - started)
        self.metrics.tencent_requests.labels(action, outcome).inc()
        if outcome != "Success":
            self.metrics.tencent_errors.labels(action, outcome).inc()

    def encrypt(self, key_id: str, plaintext: bytes, timeout: float) -> EncryptAnswer:
        from tencentcloud.kms.v20190118 import models  # noqa: PLC0415

        request = models.EncryptRequest()
        request.KeyId = key_id
        request.Plaintext = base64.b64encode(plaintext).decode("ascii")
        # No EncryptionContext: ciphertexts stay byte-compatible with the Go tke-kms-plugin.
        answer = self._call("Encrypt", request, timeout)
        blob = answer.CiphertextBlob
        if not isinstance(blob, str) or not blob or not blob.isascii():
            raise _garbled("Encrypt", "CiphertextBlob", answer.RequestId)
        return EncryptAnswer(blob, answer.KeyId or key_id, answer.RequestId)

    def decrypt(self, ciphertext_blob: str, timeout: float) -> DecryptAnswer:
        from tencentcloud.kms.v20190118 import models  # noqa: PLC0415

        request = models.DecryptRequest()
        request.CiphertextBlob = ciphertext_blob  # opaque: never decoded, exactly the bytes Encrypt returned
        answer = self._call("Decrypt", request, timeout)
        try:
            plaintext = base64.b64decode(answer.Plaintext, validate=True)
        except (TypeError, ValueError):
            raise _garbled("Decrypt", "Plaintext", answer.RequestId) from None
        return DecryptAnswer(plaintext, answer.KeyId or "", answer.RequestId)

    def describe_key(self, key_id: str, timeout: float) -> KeyAnswer:
        from tencentcloud.kms.v20190118 import models  # noqa: PLC0415

        request = models.DescribeKeyRequest()
        request.KeyId = key_id
        answer = self._call("DescribeKey", request, timeout)
        metadata = answer.KeyMetadata
        if metadata is None:
            raise _garbled("DescribeKey", "KeyMetadata", answer.RequestId)
        return KeyAnswer(metadata.KeyState or "", metadata.KeyUsage or "", answer.RequestId)
