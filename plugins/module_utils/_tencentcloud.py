# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The one Tencent Cloud KMS client of the collection: options, credentials, endpoint, retries, errors.

Modules build it through TencentKmsModule (a TkeKmsModule), which adds the shared options (doc fragment
tke.kms.tencentcloud), reports a missing SDK the standard way and turns every Tencent error into one failure
with code, message, RequestId and a hint on what to fix.

PRIVATE to the collection.
"""

from __future__ import annotations

import traceback
import typing as t

from ansible.module_utils.basic import env_fallback
from ansible_collections.tke.kms.plugins.module_utils._errors import InvalidValue, TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._module import (
    Library,
    TkeKmsModule,
    merge_argument_specs,
)
from ansible_collections.tke.kms.plugins.module_utils._retries import backoff_delays, call_with_retries

SDK_IMPORT_ERROR: t.Optional[str] = None
try:
    from tencentcloud.common.common_client import CommonClient
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
except ImportError:
    SDK_IMPORT_ERROR = traceback.format_exc()

SDK_PACKAGE = "tencentcloud-sdk-python-kms"
TENCENTCLOUD_SDK = Library(SDK_PACKAGE, SDK_IMPORT_ERROR)
KMS_SERVICE = "kms"
KMS_API_VERSION = "2019-01-18"
REQUEST_TIMEOUT = 15

# Codes worth another attempt: throttling, transport failures and transient server trouble. Rotation
# throttling (RequestLimitExceeded.RotateRateLimited) is a quota on rotations, not a transient condition.
RETRYABLE_CODES = frozenset(
    (
        "ClientNetworkError",
        "ServerNetworkError",
        "InternalError",
        "UnsupportedOperation.ServiceTemporaryUnavailable",
    )
)
NOT_RETRYABLE_CODES = frozenset(("RequestLimitExceeded.RotateRateLimited",))

HINTS = (
    (
        "AuthFailure",
        "check secret_id/secret_key/security_token (or TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY,"
        " TENCENTCLOUD_SECURITY_TOKEN) and that the key pair is enabled",
    ),
    ("UnauthorizedOperation", "grant the CAM user or role the KMS permission for this action"),
    ("UnsupportedRegion", "check region (or TENCENTCLOUD_REGION)"),
    (
        "ClientNetworkError",
        "check that endpoint (or the default kms.tencentcloudapi.com) is reachable from this host",
    ),
    ("RequestLimitExceeded", "the API kept throttling; raise api_retries or run fewer requests in parallel"),
)


def tencentcloud_argument_spec() -> t.Dict[str, t.Any]:
    """Options shared by every Tencent Cloud module of the collection (doc fragment tke.kms.tencentcloud)."""
    return dict(
        secret_id=dict(
            type="str", no_log=True, fallback=(env_fallback, ["TENCENTCLOUD_SECRET_ID", "SECRET_ID"])
        ),
        secret_key=dict(
            type="str", no_log=True, fallback=(env_fallback, ["TENCENTCLOUD_SECRET_KEY", "SECRET_KEY"])
        ),
        security_token=dict(
            type="str",
            no_log=True,
            aliases=["token"],
            fallback=(env_fallback, ["TENCENTCLOUD_SECURITY_TOKEN"]),
        ),
        region=dict(type="str", required=True, fallback=(env_fallback, ["TENCENTCLOUD_REGION"])),
        endpoint=dict(type="str", fallback=(env_fallback, ["TENCENTCLOUD_KMS_ENDPOINT"])),
        api_retries=dict(type="int", default=5),
    )


class TencentCloudError(TkeKmsError):
    """A failed Tencent Cloud API call, as reported by the service or by the SDK's transport."""

    def __init__(self, action: str, code: str, message: str, request_id: t.Optional[str] = None) -> None:
        super().__init__("%s: %s" % (code, message))
        self.action = action
        self.code = code or "Unknown"
        self.message = message or ""
        self.request_id = request_id

    @property
    def hint(self) -> t.Optional[str]:
        for prefix, hint in HINTS:
            if self.code == prefix or self.code.startswith(prefix + "."):
                return hint
        return None

    def describe(self) -> str:
        text = "Tencent Cloud KMS %s failed: %s: %s" % (self.action, self.code, self.message)
        if self.request_id:
            text += " (RequestId: %s)" % self.request_id
        if self.hint:
            text += "; %s" % self.hint
        return text

    def details(self) -> t.Dict[str, t.Any]:
        return dict(action=self.action, code=self.code, message=self.message, request_id=self.request_id)


def is_retryable(error: Exception) -> bool:
    if not isinstance(error, TencentCloudError) or error.code in NOT_RETRYABLE_CODES:
        return False
    return error.code in RETRYABLE_CODES or error.code.split(".")[0] == "RequestLimitExceeded"


def parse_endpoint(endpoint: str) -> t.Tuple[str, str]:
    """'http://127.0.0.1:9000' -> ('http', '127.0.0.1:9000'); a bare host means https.

    The SDK signs the Host header with whatever endpoint it is given, so the scheme must not stay in it.
    """
    value = endpoint.strip()
    protocol = "https"
    if "://" in value:
        protocol, value = value.split("://", 1)
        protocol = protocol.lower()
        if protocol not in ("http", "https"):
            raise InvalidValue("endpoint %r: the scheme must be http or https" % endpoint)
    value = value.rstrip("/")
    if not value or "/" in value:
        raise InvalidValue(
            "endpoint %r: give a host[:port] with an optional http:// or https:// scheme" % endpoint
        )
    return protocol, value


class KmsClient:
    """Calls KMS actions by name (dict in, dict out), with retries and TencentCloudError for every failure."""

    def __init__(
        self,
        secret_id: str,
        secret_key: str,
        region: str,
        *,
        security_token: t.Optional[str] = None,
        endpoint: t.Optional[str] = None,
        retries: int = 5,
        on_retry: t.Optional[t.Callable[[Exception, int], None]] = None,
    ) -> None:
        if not secret_id or not secret_key:
            raise InvalidValue(
                "Tencent Cloud credentials are missing: set secret_id and secret_key"
                " (or TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY)"
            )
        if secret_id != secret_id.strip() or secret_key != secret_key.strip():
            raise InvalidValue("secret_id and secret_key must not start or end with white space")
        # HttpProfile copies protocol into .scheme at construction, which is what the SDK reads.
        protocol, host = parse_endpoint(endpoint) if endpoint else ("https", None)
        http_profile = HttpProfile(protocol=protocol, endpoint=host, reqTimeout=REQUEST_TIMEOUT)
        profile = ClientProfile(httpProfile=http_profile, language="en-US")
        credential = Credential(secret_id, secret_key, security_token or None)
        self._client = CommonClient(KMS_SERVICE, KMS_API_VERSION, credential, region, profile=profile)
        self._retries = max(0, retries)
        self._on_retry = on_retry

    def call(self, action: str, params: t.Optional[t.Dict[str, t.Any]] = None) -> t.Dict[str, t.Any]:
        """Run one action and return its Response object (RequestId included)."""

        def once() -> t.Dict[str, t.Any]:
            try:
                return self._client.call_json(action, params or {})["Response"]
            except TencentCloudSDKException as exc:
                raise TencentCloudError(
                    action, exc.get_code(), exc.get_message(), exc.get_request_id()
                ) from None

        return call_with_retries(once, is_retryable, backoff_delays(self._retries), on_retry=self._on_retry)


class TencentKmsModule(TkeKmsModule):
    """TkeKmsModule with the shared Tencent Cloud options, the SDK check and a lazily built KmsClient."""

    def __init__(self, argument_spec: t.Optional[t.Dict[str, t.Any]] = None, **kwargs: t.Any) -> None:
        super().__init__(
            merge_argument_specs(tencentcloud_argument_spec(), argument_spec or {}),
            libraries=[TENCENTCLOUD_SDK],
            **kwargs,
        )
        self._kms: t.Optional[KmsClient] = None
        self.retried: t.List[str] = []

    @property
    def kms(self) -> KmsClient:
        if self._kms is None:
            try:
                self._kms = KmsClient(
                    secret_id=self.params["secret_id"],
                    secret_key=self.params["secret_key"],
                    security_token=self.params["security_token"],
                    region=self.params["region"],
                    endpoint=self.params["endpoint"],
                    retries=self.params["api_retries"],
                    on_retry=self._record_retry,
                )
            except ValueError as exc:
                self.fail_from_exception(exc)
        return self._kms

    def _record_retry(self, error: Exception, attempt: int) -> None:
        if isinstance(error, TencentCloudError):
            self.retried.append("%s attempt %d: %s" % (error.action, attempt, error.code))

    def fail_from_exception(
        self, error: BaseException, prefix: t.Optional[str] = None, **result: t.Any
    ) -> t.NoReturn:
        """Also lists the retries made before the failure: throttling shows up as such."""
        if self.retried:
            result["retries"] = self.retried
        super().fail_from_exception(error, prefix, **result)
