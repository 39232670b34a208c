"""Temporary credentials: a CVM CAM role and TKE OIDC.

The CVM metadata service and Tencent STS cannot exist here, so each is faked at the narrowest seam: a small
loopback HTTP server answering the one document the plugin fetches. The temporary keys they hand out are the
ones the emulator accepts, so the plugin's real Tencent calls prove the credentials were used.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.protos import kms_v2_pb2 as v2

from tests.fixtures.plugin import PluginProcess, kms_v2_stub

from .conftest import FAST_HEALTH, http_get, status_is_ok, v2_status, wait_until

TMP_SECRET_ID = "AKIDtemporaryRoleCredentials000000000"
TMP_SECRET_KEY = "temporary-role-secret-key-0000000000"
ROLE = "tke-kms-role"
REGION = "ap-guangzhou"


class FakeTencentService:
    """Serves the CVM role document (GET) and STS AssumeRoleWithWebIdentity (POST); can be made to fail."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.failing = False
        self.requests: list[tuple[str, str, bytes]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, b""))
                if fake.failing or self.path != f"/latest/meta-data/cam/security-credentials/{ROLE}":
                    self._reply(500, {"error": "unavailable"})
                    return
                self._reply(
                    200,
                    {
                        "TmpSecretId": TMP_SECRET_ID,
                        "TmpSecretKey": TMP_SECRET_KEY,
                        "Token": "session-token",
                        "ExpiredTime": int(time.time() + fake.lifetime),
                        "Expiration": "",
                        "Code": "Success",
                    },
                )

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fake.requests.append(("POST", self.headers.get("X-TC-Action", ""), body))
                credentials = {
                    "Token": "oidc-token",
                    "TmpSecretId": TMP_SECRET_ID,
                    "TmpSecretKey": TMP_SECRET_KEY,
                }
                expiry = int(time.time() + fake.lifetime)
                self._reply(
                    200, {"Response": {"Credentials": credentials, "ExpiredTime": expiry, "RequestId": "r"}}
                )

            def _reply(self, status: int, document: dict) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fetches(self) -> int:
        return len(self.requests)


@pytest.fixture
def fake_tencent() -> Iterator[FakeTencentService]:
    fake = FakeTencentService(lifetime=3600)
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def role_emulator() -> Iterator[Emulator]:
    """An emulator that accepts exactly the temporary role credentials."""
    with Emulator({TMP_SECRET_ID: TMP_SECRET_KEY}).start() as running:
        yield running


def encrypts(socket_path: str) -> bool:
    return bool(
        kms_v2_stub(socket_path)
        .Encrypt(v2.EncryptRequest(plaintext=b"k" * 32, uid="c"), timeout=3)
        .ciphertext
    )


def expiry_metric(plugin: PluginProcess) -> float:
    for line in http_get(plugin.metrics_url + "/metrics")[1].splitlines():
        if line.startswith("tke_kms_plugin_credentials_expiry_timestamp_seconds "):
            return float(line.split()[1])
    return 0.0


def test_cvm_role_credentials_are_refreshed_and_failures_surface(
    role_emulator: Emulator,
    fake_tencent: FakeTencentService,
    plugin_socket: str,
    start_plugin: Callable[..., PluginProcess],
) -> None:
    fake_tencent.lifetime = 3  # refreshed at half-life: every ~1.5 s
    plugin = start_plugin(
        plugin_socket,
        key_id=role_emulator.create_key(REGION),
        endpoint=role_emulator.endpoint,
        secret_id=None,
        secret_key=None,
        extra_args=[
            f"--cvm-role={ROLE}",
            f"--cvm-metadata-url={fake_tencent.url}/latest/meta-data/cam/security-credentials/",
            *FAST_HEALTH,
        ],
    )
    wait_until(lambda: status_is_ok(plugin_socket), what="healthy with role credentials")
    assert encrypts(plugin_socket)
    assert expiry_metric(plugin) > time.time()
    first = fake_tencent.fetches()
    wait_until(lambda: fake_tencent.fetches() > first, timeout=5, what="refresh before expiry")

    fake_tencent.failing = True
    wait_until(lambda: not status_is_ok(plugin_socket), timeout=6, what="refresh failure in Status")
    assert http_get(plugin.metrics_url + "/readyz")[0] == 503
    plugin.wait_for_log(lambda e: e.get("msg") == "credential refresh failed")
    # Once they have expired Status fences writes.
    wait_until(
        lambda: isinstance(v2_status(plugin_socket), grpc.RpcError), timeout=8, what="expired credentials"
    )

    fake_tencent.failing = False
    wait_until(
        lambda: status_is_ok(plugin_socket), timeout=20, what="healthy after the metadata service is back"
    )
    assert TMP_SECRET_KEY not in plugin.log_text() and "session-token" not in plugin.log_text()


def test_tke_oidc_credentials(
    role_emulator: Emulator,
    fake_tencent: FakeTencentService,
    plugin_socket: str,
    tmp_path: Path,
    start_plugin: Callable[..., PluginProcess],
) -> None:
    token_file = tmp_path / "web-identity-token"
    token_file.write_text("projected-service-account-jwt")
    plugin = start_plugin(
        plugin_socket,
        key_id=role_emulator.create_key(REGION),
        endpoint=role_emulator.endpoint,
        secret_id=None,
        secret_key=None,
        extra_args=[f"--sts-endpoint={fake_tencent.url}", *FAST_HEALTH],
        env={
            "TKE_REGION": REGION,
            "TKE_PROVIDER_ID": "provider",
            "TKE_WEB_IDENTITY_TOKEN_FILE": str(token_file),
            "TKE_ROLE_ARN": "qcs::cam::uin/100000:roleName/kms",
        },
    )
    wait_until(lambda: status_is_ok(plugin_socket), what="healthy with OIDC credentials")
    assert encrypts(plugin_socket)
    method, action, body = fake_tencent.requests[0]
    assert (method, action) == ("POST", "AssumeRoleWithWebIdentity")
    assert json.loads(body)["WebIdentityToken"] == "projected-service-account-jwt"
    assert "projected-service-account-jwt" not in plugin.log_text()
