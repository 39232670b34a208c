"""The command line as the Go plugin's DaemonSet and liveness probe use it, credentials from env and file,
and the health-check subcommand's exit codes."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import grpc
import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.protos import kms_v2_pb2 as v2

from tests.fixtures.emulator import TEST_REGION, TEST_SECRET_ID, TEST_SECRET_KEY
from tests.fixtures.plugin import (
    PluginProcess,
    kms_v2_stub,
    launch_plugin,
    plugin_command,
    plugin_env,
    wait_serving,
)

from .conftest import FAST_HEALTH, status_is_ok, wait_until


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*plugin_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else plugin_env("id", "key"),
        check=False,
    )


def encrypts(socket_path: str) -> bool:
    answer = kms_v2_stub(socket_path).Encrypt(v2.EncryptRequest(plaintext=b"x" * 32, uid="cli"), timeout=3)
    return bool(answer.ciphertext)


def write_credentials(path: Path, secret_key: str, mode: int = 0o600) -> Path:
    path.write_text(f"[default]\nsecret_id = {TEST_SECRET_ID}\nsecret_key = {secret_key}\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region=ap-guangzhou"], "--key-id is required"),
        (["--key-id=k", "--no-such-flag"], "unrecognized arguments"),
        (["--key-id=k", "--decrypt-cache-ttl=soon"], "invalid duration"),
        (["--key-id=k", "--qps=-1"], "must not be negative"),
        (["--key-id=k", "--kms-endpoint=ftp://x"], "invalid --kms-endpoint"),
        (["--key-id=k", "--metrics-address=nowhere"], "invalid --metrics-address"),
    ],
)
def test_bad_flags_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_version_is_the_installed_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tke-kms-plugin {version('tke-kms-plugin')}"


@pytest.mark.parametrize(
    ("flag", "env_region"),
    [
        (None, "ap-shanghai"),  # TENCENTCLOUD_REGION alone, like the other TENCENTCLOUD_* variables
        ("ap-shanghai", "eu-frankfurt"),  # --region wins over the environment
    ],
)
def test_region_from_tencentcloud_region(
    emulator: Emulator, plugin_socket: str, tmp_path: Path, flag: str | None, env_region: str
) -> None:
    """The key lives in ap-shanghai only: the plugin encrypts only if it talks to that region."""
    key_id = emulator.create_key("ap-shanghai")
    args = [f"--unix-socket={plugin_socket}", f"--key-id={key_id}", "--metrics-address="]
    args += [f"--kms-endpoint=http://{emulator.endpoint}"] + ([f"--region={flag}"] if flag else [])
    env = plugin_env(TEST_SECRET_ID, TEST_SECRET_KEY, TENCENTCLOUD_REGION=env_region)
    plugin = launch_plugin(args, env, tmp_path / "plugin.log", plugin_socket)
    try:
        wait_serving(plugin)
        assert plugin.wait_for_log(lambda e: e.get("msg") == "serving")["region"] == "ap-shanghai"
        assert encrypts(plugin_socket)
    finally:
        plugin.stop()


def test_missing_credentials_exit_2(plugin_socket: str) -> None:
    result = run_cli("--key-id=k", f"--unix-socket={plugin_socket}", env=plugin_env())
    assert result.returncode == 2
    assert "no Tencent Cloud credentials" in result.stderr
    assert not os.path.exists(plugin_socket)


def test_credentials_file_must_be_owner_only(plugin_socket: str, tmp_path: Path) -> None:
    credentials = write_credentials(tmp_path / "credentials", TEST_SECRET_KEY, mode=0o644)
    result = run_cli("--key-id=k", f"--unix-socket={plugin_socket}", f"--credentials-file={credentials}")
    assert result.returncode == 2
    assert "mode 0644" in result.stderr and "chmod 600" in result.stderr
    assert TEST_SECRET_KEY not in result.stderr


def test_go_plugin_command_line(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    """The seed DaemonSet's args (--region --key-id --unix-socket --v=2) and SECRET_ID/SECRET_KEY env, with
    the endpoint from TKE_KMS_ENDPOINT."""
    key_id = emulator.create_key(TEST_REGION)
    plugin = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=None,
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
        extra_args=["--v=2"],
        env={"TKE_KMS_ENDPOINT": emulator.url},
    )
    assert encrypts(plugin_socket)
    assert not [e for e in plugin.logs() if e["level"] == "debug"]  # --v=2: no per-call lines


def test_tencentcloud_env_wins_over_go_plugin_env(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    key_id = emulator.create_key(TEST_REGION)
    plugin = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=emulator.endpoint,
        secret_id="AKIDwrong",
        secret_key="wrong",
        env={"TENCENTCLOUD_SECRET_ID": TEST_SECRET_ID, "TENCENTCLOUD_SECRET_KEY": TEST_SECRET_KEY},
    )
    assert encrypts(plugin_socket)
    assert plugin.wait_for_log(lambda e: e.get("msg") == "credentials source")["source"].startswith(
        "environment TENCENTCLOUD_"
    )


def test_credentials_file_is_re_read_when_rotated(
    emulator: Emulator, plugin_socket: str, tmp_path: Path, start_plugin: Callable[..., PluginProcess]
) -> None:
    key_id = emulator.create_key(TEST_REGION)
    credentials = write_credentials(tmp_path / "credentials", "stale-secret-key")
    plugin = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=emulator.endpoint,
        secret_id=None,
        secret_key=None,
        extra_args=[f"--credentials-file={credentials}", *FAST_HEALTH],
    )
    with pytest.raises(grpc.RpcError) as caught:
        encrypts(plugin_socket)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    write_credentials(credentials, TEST_SECRET_KEY)
    wait_until(lambda: status_is_ok(plugin_socket), what="healthy with the rotated credentials")
    assert encrypts(plugin_socket)
    assert "stale-secret-key" not in plugin.log_text() and TEST_SECRET_KEY not in plugin.log_text()


def test_health_check_exit_codes(
    emulator: Emulator, plugin_socket: str, tmp_path: Path, start_plugin: Callable[..., PluginProcess]
) -> None:
    missing = run_cli("health-check", f"--unix-socket={tmp_path / 'missing.sock'}")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    key_id = emulator.create_key(TEST_REGION)
    start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=emulator.endpoint,
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
        extra_args=FAST_HEALTH,
    )
    wait_until(lambda: status_is_ok(plugin_socket), what="healthy")
    before = emulator.call_counts()
    healthy = run_cli("health-check", f"--unix-socket={plugin_socket}")
    assert healthy.returncode == 0, healthy.stderr
    tencent_calls = {k: v - before.get(k, 0) for k, v in emulator.call_counts().items() if k != "DescribeKey"}
    assert not any(tencent_calls.values())  # the default check costs no Tencent call

    deep = run_cli("health-check", f"--unix-socket={plugin_socket}", "--deep")
    assert deep.returncode == 0, deep.stderr
    emulator.set_key_state(key_id, TEST_REGION, "Disabled")
    deep = run_cli("health-check", f"--unix-socket={plugin_socket}", "--deep")
    assert deep.returncode == 1 and deep.stderr.startswith("unhealthy: FAILED_PRECONDITION")
    assert len(deep.stderr.strip().splitlines()) == 1
    # A disabled key is not a liveness problem: restarting the plugin would not help.
    assert run_cli("health-check", f"--unix-socket={plugin_socket}").returncode == 0


def test_health_check_is_bounded_by_its_timeout(plugin_socket: str) -> None:
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # accepts connections, never speaks gRPC
    silent.bind(plugin_socket)
    silent.listen(8)
    try:
        started = time.monotonic()
        result = run_cli("health-check", f"--unix-socket={plugin_socket}", "--timeout=1s")
        assert result.returncode == 1 and "timed out" in result.stderr
        assert time.monotonic() - started < 5
    finally:
        silent.close()
