"""Start-up: one plugin per socket even when two start at the same moment (a lock file next to the socket),
and every start-up error is one clear line with no traceback, leaving no socket behind."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.emulator import TEST_REGION
from tests.fixtures.plugin import PluginProcess, launch_plugin, plugin_args, plugin_command, plugin_env

from .test_socket import UNREACHABLE, serves

ROUNDS = 4


def lock_path(socket_path: str) -> str:
    return socket_path + ".lock"


def launch(socket_path: str, log_path: Path, *extra: str) -> PluginProcess:
    args = plugin_args(socket_path, key_id="kid", region=TEST_REGION, endpoint=UNREACHABLE, extra_args=extra)
    return launch_plugin(args, plugin_env("id", "key"), log_path, socket_path)


def serving_or_exited(plugin: PluginProcess) -> bool:
    return plugin.process.poll() is not None or any(e.get("msg") == "serving" for e in plugin.logs())


@pytest.fixture
def launched() -> Iterator[list[PluginProcess]]:
    plugins: list[PluginProcess] = []
    yield plugins
    for plugin in plugins:
        plugin.stop()


def assert_one_clear_line(stderr: str) -> str:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("tke-kms-plugin: error:")]
    return line


def test_refuses_to_start_while_another_plugin_holds_the_socket_lock(
    plugin_socket: str, tmp_path: Path, launched: list[PluginProcess]
) -> None:
    """The lock is what makes "is the socket stale?" and gRPC's bind one step: a plugin between the two
    (simulated here by holding the lock) must never see its socket replaced."""
    with open(lock_path(plugin_socket), "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        plugin = launch(plugin_socket, tmp_path / "second.log")
        launched.append(plugin)
        deadline = time.monotonic() + 20
        while plugin.process.poll() is None and time.monotonic() < deadline:
            assert not any(e.get("msg") == "serving" for e in plugin.logs()), "started despite the lock"
            time.sleep(0.02)
        assert plugin.process.returncode == 1
    line = assert_one_clear_line(plugin.log_text())
    assert lock_path(plugin_socket) in line and "another tke-kms-plugin" in line
    assert not os.path.exists(plugin_socket)


def test_plugins_started_together_leave_exactly_one_serving(
    plugin_socket: str, tmp_path: Path, launched: list[PluginProcess]
) -> None:
    for round_ in range(ROUNDS):
        pair = [launch(plugin_socket, tmp_path / f"{round_}-{n}.log") for n in (1, 2)]
        launched.extend(pair)
        deadline = time.monotonic() + 20
        while not all(serving_or_exited(p) for p in pair) and time.monotonic() < deadline:
            time.sleep(0.02)
        running = [p for p in pair if p.process.poll() is None]
        assert len(running) == 1, [p.log_text()[-600:] for p in pair]
        [winner] = running
        [loser] = [p for p in pair if p is not winner]
        assert loser.process.wait(10) == 1 and "another tke-kms-plugin" in loser.log_text()
        assert serves(plugin_socket)
        assert winner.stop() == 0
        assert not os.path.exists(plugin_socket) and not os.path.exists(lock_path(plugin_socket))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*plugin_command(), *args],
        capture_output=True,
        text=True,
        timeout=20,
        env=plugin_env("id", "key"),
        check=False,
    )


def test_unknown_socket_group_exits_2_before_binding(plugin_socket: str) -> None:
    result = run_cli("--key-id=k", f"--unix-socket={plugin_socket}", "--socket-group=no-such-group-tke")
    assert result.returncode == 2
    line = assert_one_clear_line(result.stderr)
    assert "--socket-group 'no-such-group-tke': no such group" in line
    assert not os.path.exists(plugin_socket) and not os.path.exists(lock_path(plugin_socket))


def test_unusable_socket_directory_is_one_line_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_cli("--key-id=k", f"--unix-socket={blocker}/sub/plugin.sock", "--metrics-address=")
    assert result.returncode == 1
    assert "cannot create socket directory" in assert_one_clear_line(result.stderr)


def test_taken_metrics_port_is_not_a_start_up_error(plugin_socket: str, tmp_path: Path) -> None:
    """Before the fix this was exit 1 with an asyncio traceback and a stale socket."""
    import socket  # noqa: PLC0415

    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        plugin = launch(plugin_socket, tmp_path / "plugin.log", f"--metrics-address=127.0.0.1:{port}")
        try:
            deadline = time.monotonic() + 20
            while not serving_or_exited(plugin) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert plugin.process.poll() is None, plugin.log_text()
            assert serves(plugin_socket)
        finally:
            assert plugin.stop() == 0
    assert "Traceback" not in plugin.log_text()
    assert not os.path.exists(plugin_socket)
