"""The emulated service without its HTTP server: request pipeline, keys, faults and test controls.

`KmsService.handle_api_request` takes one Tencent API request as received and returns the reply: TC3
signature, API version, action, region, faults, then the action itself. Every answer is HTTP 200 with
`Content-Type: application/json` and a `{"Response": {..., "RequestId"}}` body, as Tencent answers.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import blobs
from .actions import ACTIONS, check_alias, check_unique_alias
from .errors import ApiError
from .faults import Faults
from .signing import verify_request
from .store import KEY_STATES, SECONDS_PER_DAY, KeyStore

logger = logging.getLogger(__name__)

API_VERSION = "2019-01-18"
MAX_BODY_BYTES = 10 * 1024 * 1024  # TC3 POST limit
DEFAULT_PENDING_WINDOW_DAYS = 7
# Region names of the Go SDK's regions.go; anything else is UnsupportedRegion, as from the real service.
REGIONS = frozenset(
    {
        "ap-bangkok",
        "ap-beijing",
        "ap-chengdu",
        "ap-chongqing",
        "ap-guangzhou",
        "ap-guangzhou-open",
        "ap-hongkong",
        "ap-jakarta",
        "ap-mumbai",
        "ap-nanjing",
        "ap-seoul",
        "ap-shanghai",
        "ap-shanghai-fsi",
        "ap-shenzhen-fsi",
        "ap-singapore",
        "ap-tokyo",
        "eu-frankfurt",
        "eu-moscow",
        "na-ashburn",
        "na-siliconvalley",
        "na-toronto",
        "sa-saopaulo",
    }
)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    close: bool = False  # close the connection after answering (the request body was not fully read)
    content_type: str = "application/json"  # exactly this: the SDK ignores errors under any other value


def envelope(fields: dict[str, Any]) -> bytes:
    return json.dumps({"Response": fields}, separators=(",", ":")).encode()


def error_reply(code: str, message: str, *, status: int = 200, close: bool = False) -> Reply:
    return Reply(
        status, envelope({"Error": {"Code": code, "Message": message}, "RequestId": str(uuid.uuid4())}), close
    )


def check_region(region: str) -> str:
    if not region:
        raise ApiError("MissingParameter", "The X-TC-Region header is missing; KMS keys are regional.")
    if region not in REGIONS:
        raise ApiError("UnsupportedRegion", f"KMS is not available in region {region!r}.")
    return region


def parse_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        params = json.loads(body)
    except (ValueError, RecursionError):
        params = None
    if not isinstance(params, dict):
        raise ApiError("InvalidParameter", "The request body must be a JSON object of action parameters.")
    return params


class KmsService:
    """One emulated Tencent Cloud KMS account: its API keys, its CMKs in every region, and test controls."""

    def __init__(self, credentials: Mapping[str, str], state_file: str | Path | None = None) -> None:
        self.credentials = dict(credentials)
        self.store = KeyStore(state_file)
        self.faults = Faults()

    # -- the Tencent API ---------------------------------------------------------------------------------

    def handle_api_request(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        """`headers` has lower-cased names. Never raises: every failure is a Tencent error reply."""
        action_name = headers.get("x-tc-action", "")
        if action_name:
            self.faults.count(action_name)
        try:
            response = self._run(
                action_name, method=method, path=path, query=query, headers=headers, body=body
            )
        except ApiError as err:
            if action_name:
                self.faults.count(f"{action_name}:{err.code}")  # lets a test prove a fault did fire
            return error_reply(err.code, err.message)
        except _HttpFault as fault:
            return fault.reply
        except Exception:
            logger.exception(
                "internal error while handling %s", action_name or "a request without X-TC-Action"
            )
            return error_reply("InternalError", "The emulator failed internally; see its log.")
        response["RequestId"] = str(uuid.uuid4())
        return Reply(200, envelope(response))

    def _run(
        self, action_name: str, *, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, Any]:
        if path != "/":
            raise ApiError("InvalidRequest", f"The Tencent Cloud API is served at POST /, not {path!r}.")
        if not action_name:
            raise ApiError("MissingParameter", "The X-TC-Action header is missing.")
        verify_request(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            credentials=self.credentials,
            now=time.time(),
        )
        version = headers.get("x-tc-version", "")
        if version != API_VERSION:
            raise ApiError("NoSuchVersion", f"KMS has no API version {version!r}; use {API_VERSION}.")
        action = ACTIONS.get(action_name)
        if action is None:
            raise ApiError("InvalidAction", f"KMS has no action {action_name!r} (or the emulator lacks it).")
        region = check_region(headers.get("x-tc-region", ""))
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if method != "POST" or content_type != "application/json":
            raise ApiError(
                "UnsupportedProtocol",
                "The emulator implements POST with Content-Type: application/json only (the SDK's default).",
            )
        self._apply_faults(action_name)
        return action.run(action_name, self.store, region, parse_body(body))

    def _apply_faults(self, action_name: str) -> None:
        delay = self.faults.delay_seconds(action_name)
        if delay:
            time.sleep(delay)  # injected latency: the behaviour under test, not synchronisation
        if self.faults.throttled(action_name):
            raise ApiError(
                "RequestLimitExceeded",
                f"The request frequency of {action_name} is over the configured limit.",
            )
        injected = self.faults.injected_error(action_name)
        if injected is None:
            return
        if injected.http_status is not None:
            raise _HttpFault(
                Reply(injected.http_status, injected.message.encode(), content_type="text/plain")
            )
        raise ApiError(injected.code, injected.message)

    # -- test controls (also served on /_emulator/ by admin.py) -----------------------------------------

    def set_latency(self, action: str = "*", fixed_ms: float = 0, random_ms: float = 0) -> None:
        self.faults.set_latency(action, fixed_ms, random_ms)

    def set_error(
        self,
        action: str,
        code: str,
        rate: float = 1.0,
        message: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.faults.set_error(action, code, rate, message, http_status)

    def set_throttle(self, action: str, qps: float | None) -> None:
        self.faults.set_throttle(action, qps)

    def reset_faults(self) -> None:
        self.faults.reset()

    def reset(self) -> None:
        """Faults, every key in every region, call counters and the life-cycle clock."""
        self.faults.reset()
        self.faults.reset_counts()
        self.store.reset()

    def call_counts(self) -> dict[str, int]:
        """Requests per X-TC-Action received, whatever their outcome."""
        return self.faults.call_counts()

    def faults_config(self) -> dict[str, Any]:
        return self.faults.describe()

    def create_key(
        self,
        region: str,
        alias: str | None = None,
        description: str = "",
        *,
        key_state: str = "Enabled",
        rotate_days: int | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Create a CMK without the API (test set-up); returns its KeyId. rotate_days turns rotation on."""
        check_region(region)
        alias = check_alias(alias if alias is not None else f"emulator-{uuid.uuid4().hex[:12]}")
        with self.store.transaction():
            check_unique_alias(self.store, region, alias)
            key = self.store.create(region, alias=alias, description=description, tags=tags)
            if rotate_days is not None:
                key.rotation_enabled = True
                key.rotate_days = rotate_days
                key.next_rotate_time = self.store.now() + rotate_days * SECONDS_PER_DAY
            self.set_key_state(key.key_id, region, key_state)
        return key.key_id

    def set_key_state(self, key_id: str, region: str, state: str) -> None:
        """Enabled, Disabled or PendingDelete (deletion in 7 days), bypassing the API's transition rules."""
        if state not in KEY_STATES:
            raise ValueError(f"state must be one of {', '.join(KEY_STATES)}, got {state!r}")
        with self.store.transaction():
            key = self.store.get(region, key_id)
            key.key_state = state
            key.deletion_date = (
                self.store.now() + DEFAULT_PENDING_WINDOW_DAYS * SECONDS_PER_DAY
                if state == "PendingDelete"
                else 0
            )

    def rotate_key_now(self, key_id: str, region: str) -> int:
        """Add a key material version now; returns it. New blobs use it, old blobs still decrypt."""
        return self.store.rotate(self.store.get(region, key_id))

    def advance_time(self, seconds: float) -> None:
        """Move the key life-cycle clock (rotation schedule, deletion dates); signatures keep real time."""
        self.store.advance_time(seconds)

    @staticmethod
    def inspect_ciphertext(ciphertext_blob: str) -> dict[str, Any]:
        """The key id and material version a blob was made with (tests cannot read them from the blob)."""
        try:
            sealed = blobs.parse(ciphertext_blob)
        except blobs.BlobError as err:
            raise ValueError(f"not a ciphertext blob of this emulator: {err}") from err
        return {"key_id": sealed.key_id, "material_version": sealed.material_version}


class _HttpFault(Exception):
    """An injected non-200 answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply
