"""KmsError and the mapping of Tencent KMS / SDK error codes to gRPC status codes.

Every failure the plugin can answer with is a KmsError: the gRPC layer turns it into a status, the health
state reads its `kind`, the retry loop its `retryable` flag. Nothing here ever raises past the gRPC layer.
"""

from __future__ import annotations

import enum

import grpc


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"  # network, 5xx, throttling: retried, health degraded
    KEY_UNUSABLE = "key_unusable"  # disabled / deleted / unknown key: health failed, cache dropped
    AUTH = "auth"  # credentials rejected or missing permission: health failed
    CONFIG = "config"  # region or key id the service rejects: health failed
    BAD_INPUT = "bad_input"  # the caller's data is wrong: no effect on health
    DEADLINE = "deadline"  # the caller's deadline ran out
    INTERNAL = "internal"  # anything unexpected

    @property
    def definitive(self) -> bool:
        """Retrying or waiting will not fix it; an operator has to."""
        return self in (ErrorKind.KEY_UNUSABLE, ErrorKind.AUTH, ErrorKind.CONFIG)


class KmsError(Exception):
    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        kind: ErrorKind,
        *,
        tencent_code: str | None = None,
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = kind
        self.tencent_code = tencent_code
        self.request_id = request_id
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


def bad_input(message: str) -> KmsError:
    return KmsError(grpc.StatusCode.INVALID_ARGUMENT, message, ErrorKind.BAD_INPUT)


def deadline_exceeded(message: str = "deadline exceeded before Tencent KMS answered") -> KmsError:
    return KmsError(grpc.StatusCode.DEADLINE_EXCEEDED, message, ErrorKind.DEADLINE)


# Exact codes first, then the longest matching dotted prefix ("AuthFailure.SignatureFailure": "AuthFailure").
_S = grpc.StatusCode
_K = ErrorKind
_EXACT: dict[str, tuple[grpc.StatusCode, ErrorKind, bool]] = {
    "ClientNetworkError": (_S.UNAVAILABLE, _K.TRANSIENT, True),
    "ServerNetworkError": (_S.UNAVAILABLE, _K.TRANSIENT, True),  # non-200 answer (5xx, proxy errors)
    "JSONDecodeError": (_S.UNAVAILABLE, _K.TRANSIENT, True),  # garbled 200 answer
    "KeyError": (_S.UNAVAILABLE, _K.TRANSIENT, True),
    "InternalError": (_S.UNAVAILABLE, _K.TRANSIENT, True),
    "ServiceUnavailable": (_S.UNAVAILABLE, _K.TRANSIENT, True),
    "UnsupportedOperation.ServiceTemporaryUnavailable": (_S.UNAVAILABLE, _K.TRANSIENT, True),
    "ResourceUnavailable.CmkDisabled": (_S.FAILED_PRECONDITION, _K.KEY_UNUSABLE, False),
    "ResourceUnavailable.CmkArchived": (_S.FAILED_PRECONDITION, _K.KEY_UNUSABLE, False),
    "ResourceUnavailable.CmkNotFound": (_S.FAILED_PRECONDITION, _K.KEY_UNUSABLE, False),
    "ResourceUnavailable.KeyDisabled": (_S.FAILED_PRECONDITION, _K.KEY_UNUSABLE, False),
    "ResourceUnavailable.KeyPendingDelete": (_S.FAILED_PRECONDITION, _K.KEY_UNUSABLE, False),
    "ResourceUnavailable.CmkStateNotSupport": (_S.FAILED_PRECONDITION, _K.KEY_UNUSABLE, False),
    "ResourceUnavailable.NotPurchased": (_S.FAILED_PRECONDITION, _K.CONFIG, False),
    "ResourceUnavailable.TokenExpired": (_S.PERMISSION_DENIED, _K.AUTH, False),
    "InvalidParameterValue.InvalidKeyId": (_S.FAILED_PRECONDITION, _K.CONFIG, False),
    "InvalidParameterValue.InvalidCiphertext": (_S.INVALID_ARGUMENT, _K.BAD_INPUT, False),
    "InvalidParameter.DecryptMaterialError": (_S.INVALID_ARGUMENT, _K.BAD_INPUT, False),
    "FailedOperation.DecryptError": (_S.INVALID_ARGUMENT, _K.BAD_INPUT, False),
    "UnsupportedRegion": (_S.FAILED_PRECONDITION, _K.CONFIG, False),
    "InvalidAction": (_S.FAILED_PRECONDITION, _K.CONFIG, False),
    "NoSuchVersion": (_S.FAILED_PRECONDITION, _K.CONFIG, False),
    "ClientSideError": (_S.UNAVAILABLE, _K.TRANSIENT, False),  # SDK: no usable credentials
}
_PREFIX: dict[str, tuple[grpc.StatusCode, ErrorKind, bool]] = {
    "RequestLimitExceeded": (_S.RESOURCE_EXHAUSTED, _K.TRANSIENT, True),
    "AuthFailure": (_S.PERMISSION_DENIED, _K.AUTH, False),
    "UnauthorizedOperation": (_S.PERMISSION_DENIED, _K.AUTH, False),
    "InvalidParameterValue": (_S.INVALID_ARGUMENT, _K.BAD_INPUT, False),
    "InvalidParameter": (_S.INVALID_ARGUMENT, _K.BAD_INPUT, False),
    "MissingParameter": (_S.INVALID_ARGUMENT, _K.BAD_INPUT, False),
    "UnknownParameter": (_S.INVALID_ARGUMENT, _K.BAD_INPUT, False),
    "ResourceUnavailable": (_S.FAILED_PRECONDITION, _K.KEY_UNUSABLE, False),
    "LimitExceeded": (_S.RESOURCE_EXHAUSTED, _K.TRANSIENT, False),
}


def classify(tencent_code: str) -> tuple[grpc.StatusCode, ErrorKind, bool]:
    """(gRPC code, kind, retryable) for a Tencent error code or an SDK pseudo-code."""
    if tencent_code in _EXACT:
        return _EXACT[tencent_code]
    prefix = tencent_code
    while prefix:
        if prefix in _PREFIX:
            return _PREFIX[prefix]
        prefix = prefix.rpartition(".")[0]
    return (_S.INTERNAL, _K.INTERNAL, False)


def from_tencent(action: str, code: str, message: str, request_id: str | None) -> KmsError:
    """A KmsError for an error answer (or SDK failure) of one Tencent call."""
    grpc_code, kind, retryable = classify(code)
    # The SDK puts raw response bodies and exception texts in `message`: keep it short and single-line.
    detail = " ".join(str(message).split())[:300]
    return KmsError(
        grpc_code,
        f"Tencent KMS {action} failed: {code}: {detail}",
        kind,
        tencent_code=code,
        request_id=request_id,
        retryable=retryable,
    )


def is_timeout(error: KmsError) -> bool:
    """A network error caused by our own per-attempt timeout (derived from the caller's deadline)."""
    return error.tencent_code == "ClientNetworkError" and "timed out" in error.message.lower()
