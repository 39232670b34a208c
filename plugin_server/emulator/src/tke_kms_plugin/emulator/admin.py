"""Test controls over HTTP under /_emulator/ (not part of the Tencent API), and their Python client.

Every control is `POST /_emulator/<name>` with a JSON object of the keyword arguments of the method of
the same name on `Emulator`, answering `{"result": ...}`; `GET /_emulator/health|calls|faults` read.
Failures answer 400/404 with `{"error": "..."}`. There is no authentication: bind to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from .errors import ApiError
from .service import KmsService, Reply

ADMIN_PREFIX = "/_emulator/"

_Control = Callable[..., Any]


def _controls(service: KmsService) -> dict[tuple[str, str], _Control]:
    return {
        ("GET", "health"): lambda: {"ok": True},
        ("GET", "calls"): service.call_counts,
        ("GET", "faults"): service.faults_config,
        ("POST", "set_latency"): service.set_latency,
        ("POST", "set_error"): service.set_error,
        ("POST", "set_throttle"): service.set_throttle,
        ("POST", "reset_faults"): service.reset_faults,
        ("POST", "reset"): service.reset,
        ("POST", "create_key"): service.create_key,
        ("POST", "set_key_state"): service.set_key_state,
        ("POST", "rotate_key_now"): service.rotate_key_now,
        ("POST", "advance_time"): service.advance_time,
        ("POST", "inspect_ciphertext"): service.inspect_ciphertext,
    }


def _json_reply(status: int, document: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(document).encode())


def handle_admin_request(service: KmsService, method: str, path: str, body: bytes) -> Reply:
    name = path[len(ADMIN_PREFIX) :]
    control = _controls(service).get((method, name))
    if control is None:
        return _json_reply(404, {"error": f"no emulator control {method} {path}"})
    try:
        arguments = json.loads(body) if body.strip() else {}
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        return _json_reply(400, {"error": "the body must be a JSON object of keyword arguments"})
    try:
        result = control(**arguments)
    except ApiError as err:
        return _json_reply(400, {"error": err.message, "code": err.code})
    except (TypeError, ValueError) as err:
        return _json_reply(400, {"error": str(err)})
    return _json_reply(200, {"result": result})


class EmulatorAdminError(Exception):
    """The emulator refused a control; `code` is the Tencent error code when there is one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class EmulatorAdmin:
    """The same controls as `Emulator`, for an emulator in another process, e.g. `EmulatorAdmin(url)`."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        if not url.startswith("http://"):
            raise ValueError(f"the emulator URL must start with http://, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Never through a proxy: the emulator is on loopback.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, name: str, **arguments: Any) -> Any:
        data = json.dumps(arguments).encode() if method == "POST" else None
        request = urllib.request.Request(  # noqa: S310 - http:// checked in __init__
            f"{self.url}{ADMIN_PREFIX}{name}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                failure = json.loads(err.read())
            except ValueError:
                failure = {"error": f"HTTP {err.code}"}
            raise EmulatorAdminError(failure.get("error", f"HTTP {err.code}"), failure.get("code")) from err
        return document.get("result", document)

    def health(self) -> bool:
        return bool(self._call("GET", "health").get("ok"))

    def call_counts(self) -> dict[str, int]:
        return self._call("GET", "calls")

    def faults_config(self) -> dict[str, Any]:
        return self._call("GET", "faults")

    def set_latency(self, action: str = "*", fixed_ms: float = 0, random_ms: float = 0) -> None:
        self._call("POST", "set_latency", action=action, fixed_ms=fixed_ms, random_ms=random_ms)

    def set_error(
        self,
        action: str,
        code: str,
        rate: float = 1.0,
        message: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self._call(
            "POST", "set_error", action=action, code=code, rate=rate, message=message, http_status=http_status
        )

    def set_throttle(self, action: str, qps: float | None) -> None:
        self._call("POST", "set_throttle", action=action, qps=qps)

    def reset_faults(self) -> None:
        self._call("POST", "reset_faults")

    def reset(self) -> None:
        self._call("POST", "reset")

    def create_key(self, region: str, alias: str | None = None, description: str = "", **kw: Any) -> str:
        return self._call("POST", "create_key", region=region, alias=alias, description=description, **kw)

    def set_key_state(self, key_id: str, region: str, state: str) -> None:
        self._call("POST", "set_key_state", key_id=key_id, region=region, state=state)

    def rotate_key_now(self, key_id: str, region: str) -> int:
        return self._call("POST", "rotate_key_now", key_id=key_id, region=region)

    def advance_time(self, seconds: float) -> None:
        self._call("POST", "advance_time", seconds=seconds)

    def inspect_ciphertext(self, ciphertext_blob: str) -> dict[str, Any]:
        return self._call("POST", "inspect_ciphertext", ciphertext_blob=ciphertext_blob)
