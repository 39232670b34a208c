"""Helpers for tests and benchmarks: an SDK client pointed at an emulator, raw signed requests, and the
console script as a subprocess."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tencentcloud.common.credential import Credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.kms.v20190118.kms_client import KmsClient

from .admin import EmulatorAdmin
from .cli import CREDENTIALS_ENV
from .service import API_VERSION
from .signing import sign_request

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


def make_kms_client(  # noqa: PLR0917 - positional order is the fixtures' published contract
    endpoint: str,
    secret_id: str,
    secret_key: str,
    region: str = "ap-guangzhou",
    token: str | None = None,
    timeout: int = 5,
) -> KmsClient:
    """The real SDK client for an emulator at `endpoint` ("127.0.0.1:PORT"), over plain HTTP.

    The SDK sends loopback traffic to $HTTP_PROXY when set (docs/tencent-kms-api.md): unset it in tests.
    """
    http_profile = HttpProfile(protocol="http", endpoint=endpoint, reqTimeout=timeout)
    return KmsClient(
        Credential(secret_id, secret_key, token), region, ClientProfile(httpProfile=http_profile)
    )


@dataclass
class RawReply:
    status: int
    content_type: str | None
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str | None:
        return self.json()["Response"].get("Error", {}).get("Code")


def raw_request(
    url: str, body: bytes, headers: dict[str, str], method: str = "POST", timeout: float = 10
) -> RawReply:
    """One HTTP request exactly as given (urllib adds Host and Content-Length), without proxies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(  # noqa: S310 - tests pass http:// URLs of the emulator
        url, data=body if method != "GET" else None, headers=headers, method=method
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            return RawReply(response.status, response.headers.get("Content-Type"), response.read())
    except urllib.error.HTTPError as err:
        return RawReply(err.code, err.headers.get("Content-Type"), err.read())


def signed_headers(
    endpoint: str,
    body: bytes,
    *,
    action: str,
    secret_id: str,
    secret_key: str,
    region: str | None = "ap-guangzhou",
    version: str = API_VERSION,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The headers the Python SDK sends for a POST of `body` (docs/tencent-kms-api.md), to tweak in tests."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "Host": endpoint,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": version,
        "Authorization": sign_request(secret_id, secret_key, host=endpoint, body=body, timestamp=timestamp),
    }
    if region is not None:
        headers["X-TC-Region"] = region
    return headers


@dataclass
class EmulatorProcess:
    """A `tke-kms-emulator` subprocess; stop it with `stop()` (by its PID)."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    _stderr: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.url)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()
        return self.process.returncode


def emulator_command() -> list[str]:
    script = Path(sys.executable).parent / "tke-kms-emulator"
    if script.exists():
        return [str(script)]
    found = shutil.which("tke-kms-emulator")
    return [found] if found else [sys.executable, "-m", "tke_kms_plugin.emulator"]


def start_emulator_process(
    credentials: dict[str, str],
    *,
    state_file: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    extra_args: list[str] | None = None,
    startup_timeout: float = 30,
) -> EmulatorProcess:
    """Run the console script with `--port 0` (by default) and wait for the line announcing its port.

    Credentials travel in the environment, not on the command line.
    """
    command = [*emulator_command(), "--host", host, "--port", str(port), *(extra_args or [])]
    if state_file is not None:
        command += ["--state", str(state_file)]
    env = {key: value for key, value in os.environ.items() if key not in PROXY_VARIABLES}
    env[CREDENTIALS_ENV] = ",".join(
        f"{secret_id}:{secret_key}" for secret_id, secret_key in credentials.items()
    )
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by EmulatorProcess.stop()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + startup_timeout
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n") and process.poll() is None and time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
    try:
        announced = json.loads(line)
        return EmulatorProcess(process, announced["host"], int(announced["port"]), stderr)
    except (ValueError, KeyError, TypeError):
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        stderr.seek(0)
        details = stderr.read().decode(errors="replace")
        stderr.close()
        raise RuntimeError(
            f"tke-kms-emulator did not announce its port within {startup_timeout} s "
            f"(exit status {process.returncode}); stdout {line!r}; stderr:\n{details}"
        ) from None
