"""Socket safety and shutdown, with the real console script. Most cases need no Tencent at all: the plugin
serves (and reports unhealthy) even when its KMS endpoint is unreachable."""

from __future__ import annotations

import grp
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.protos import kms_v1beta1_pb2 as v1

from tests.fixtures.emulator import TEST_REGION, TEST_SECRET_ID, TEST_SECRET_KEY
from tests.fixtures.plugin import PluginProcess, kms_v1_stub, launch_plugin, plugin_args, plugin_env

from .conftest import http_get, status_is_ok, wait_until

UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: the plugin must serve anyway


def start_offline(start_plugin: Callable[..., PluginProcess], socket_path: str, *extra: str) -> PluginProcess:
    return start_plugin(
        socket_path, key_id="kid", endpoint=UNREACHABLE, secret_id="id", secret_key="key", extra_args=extra
    )


def run_to_exit(socket_path: str, tmp_path: Path, timeout: float = 20.0) -> tuple[int, str]:
    """Run a plugin that is expected to refuse to start; its exit status and log."""
    args = plugin_args(socket_path, key_id="kid", region=TEST_REGION, endpoint=UNREACHABLE)
    plugin = launch_plugin(args, plugin_env("id", "key"), tmp_path / "refused.log", socket_path)
    try:
        code = plugin.process.wait(timeout)
    finally:
        plugin.stop()
    return code, plugin.log_text()


def serves(socket_path: str) -> bool:
    try:
        kms_v1_stub(socket_path).Version(v1.VersionRequest(version="v1beta1"), timeout=2)
    except grpc.RpcError:
        return False
    return True


def test_socket_is_owner_only_in_a_0750_directory_and_removed_on_exit(
    plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    socket_path = os.path.join(os.path.dirname(plugin_socket), "run", "tke-kms-plugin", "server.sock")
    plugin = start_offline(start_plugin, socket_path)
    assert stat.S_IMODE(os.stat(os.path.dirname(socket_path)).st_mode) == 0o750
    st = os.lstat(socket_path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert serves(socket_path)
    assert plugin.stop() == 0
    assert not os.path.exists(socket_path)


def test_socket_group_gives_0660(plugin_socket: str, start_plugin: Callable[..., PluginProcess]) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    start_offline(start_plugin, plugin_socket, f"--socket-group={group}")
    st = os.lstat(plugin_socket)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os.getgid()


@pytest.mark.parametrize("kind", ["file", "symlink", "directory"])
def test_refuses_a_path_that_is_not_a_socket(plugin_socket: str, tmp_path: Path, kind: str) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me")
    if kind == "file":
        Path(plugin_socket).write_text("keep me")
    elif kind == "symlink":
        os.symlink(target, plugin_socket)
    else:
        os.mkdir(plugin_socket)
    code, log = run_to_exit(plugin_socket, tmp_path)
    assert code == 1
    assert "not a unix socket" in log
    assert target.read_text() == "keep me"
    if kind == "file":
        assert Path(plugin_socket).read_text() == "keep me"
    elif kind == "symlink":
        assert os.path.islink(plugin_socket)
    else:
        assert os.path.isdir(plugin_socket)


def test_refuses_to_take_over_a_live_socket(
    plugin_socket: str, tmp_path: Path, start_plugin: Callable[..., PluginProcess]
) -> None:
    first = start_offline(start_plugin, plugin_socket)
    inode = os.lstat(plugin_socket).st_ino
    code, log = run_to_exit(plugin_socket, tmp_path)
    assert code == 1 and f"another tke-kms-plugin (pid {first.pid}) holds {plugin_socket}.lock" in log
    assert os.lstat(plugin_socket).st_ino == inode
    assert serves(plugin_socket) and first.process.poll() is None


def test_refuses_to_take_over_a_socket_another_program_listens_on(plugin_socket: str, tmp_path: Path) -> None:
    """No lock file there (the Go plugin, a plugin of an older version): the socket answers, so it is live."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(plugin_socket)
    listener.listen(8)
    try:
        inode = os.lstat(plugin_socket).st_ino
        code, log = run_to_exit(plugin_socket, tmp_path)
        assert code == 1 and "already listening" in log
        assert os.lstat(plugin_socket).st_ino == inode
        assert not os.path.exists(f"{plugin_socket}.lock")
    finally:
        listener.close()


def test_replaces_a_stale_socket(plugin_socket: str, start_plugin: Callable[..., PluginProcess]) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(plugin_socket)  # bound, never listening, then closed: what a killed process leaves behind
    stale.close()
    assert stat.S_ISSOCK(os.lstat(plugin_socket).st_mode)
    start_offline(start_plugin, plugin_socket)
    assert serves(plugin_socket)


def test_sigterm_finishes_in_flight_calls_then_exits_0(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    key_id = emulator.create_key(TEST_REGION)
    plugin = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=emulator.endpoint,
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
    )
    # The start-up DescribeKey probe is a Tencent call in flight too: let it finish first.
    wait_until(lambda: status_is_ok(plugin_socket), what="first probe done")
    emulator.set_latency("Encrypt", fixed_ms=800)
    call = kms_v1_stub(plugin_socket).Encrypt.future(
        v1.EncryptRequest(version="v1beta1", plain=b"\x01" * 32), timeout=3
    )
    wait_until(
        lambda: (
            "tke_kms_plugin_tencent_inflight_requests 1.0" in http_get(plugin.metrics_url + "/metrics")[1]
        ),
        what="call in flight",
    )
    plugin.signal(15)
    assert call.result().cipher  # the in-flight call completed
    assert plugin.process.wait(10) == 0
    assert not os.path.exists(plugin_socket)
    assert any(entry.get("msg") == "stopped" for entry in plugin.logs())


def test_sigterm_is_bounded_by_the_grace_period(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    key_id = emulator.create_key(TEST_REGION)
    plugin = start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=emulator.endpoint,
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
        extra_args=["--shutdown-grace=300ms"],
    )
    wait_until(lambda: status_is_ok(plugin_socket), what="first probe done")
    emulator.set_latency("Encrypt", fixed_ms=20_000)
    call = kms_v1_stub(plugin_socket).Encrypt.future(v1.EncryptRequest(version="v1beta1", plain=b"\x01" * 32))
    wait_until(
        lambda: (
            "tke_kms_plugin_tencent_inflight_requests 1.0" in http_get(plugin.metrics_url + "/metrics")[1]
        ),
        what="call in flight",
    )
    started = time.monotonic()
    plugin.signal(15)
    assert plugin.process.wait(10) == 0
    assert time.monotonic() - started < 3
    with pytest.raises(grpc.RpcError):
        call.result(timeout=5)
