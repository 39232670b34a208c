"""Plugin-area helpers shared by tests/plugin: a module-wide emulator subprocess with a key, and a plugin
serving it (both stopped by PID at the end of the module)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.emulator.testing import EmulatorProcess, start_emulator_process
from tke_kms_plugin.protos import kms_v2_pb2

from tests.fixtures.emulator import TEST_REGION, TEST_SECRET_ID, TEST_SECRET_KEY
from tests.fixtures.plugin import (
    PluginProcess,
    kms_v1_stub,
    kms_v2_stub,
    launch_plugin,
    plugin_args,
    plugin_env,
    wait_serving,
)

# Quick health probes so recovery shows within a test's patience; production defaults are 60 s / 5 s.
FAST_HEALTH = ("--health-interval=1s", "--health-retry-interval=0.2s")


@dataclass
class PluginUnderTest:
    plugin: PluginProcess
    emulator: EmulatorProcess
    key_id: str

    @property
    def socket(self) -> str:
        return self.plugin.socket

    def v1(self):
        return kms_v1_stub(self.socket)

    def v2(self):
        return kms_v2_stub(self.socket)


def start_with_new_key(
    start_plugin: Callable[..., PluginProcess], emulator: Emulator, socket_path: str, *flags: str
) -> PluginProcess:
    """A plugin on socket_path with a fresh key of the emulator and the given extra flags."""
    return start_plugin(
        socket_path,
        key_id=emulator.create_key(TEST_REGION),
        endpoint=emulator.endpoint,
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
        extra_args=flags,
    )


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback test URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `condition` every 20 ms until true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout}s")


def v2_status(socket_path: str) -> kms_v2_pb2.StatusResponse | grpc.RpcError:
    """Status, or the RpcError it answered."""
    try:
        return kms_v2_stub(socket_path).Status(kms_v2_pb2.StatusRequest(), timeout=3)
    except grpc.RpcError as error:
        return error


def status_is_ok(socket_path: str) -> bool:
    status = v2_status(socket_path)
    return not isinstance(status, grpc.RpcError) and status.healthz == "ok"


@pytest.fixture(scope="module")
def module_emulator() -> Iterator[EmulatorProcess]:
    process = start_emulator_process({TEST_SECRET_ID: TEST_SECRET_KEY})
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def module_plugin(
    module_emulator: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PluginUnderTest]:
    """One plugin (subprocess) on a real socket, in front of the module's emulator subprocess."""
    key_id = module_emulator.admin.create_key(TEST_REGION)
    directory = tmp_path_factory.mktemp("plugin")
    socket_path = f"/tmp/kms-{directory.name}-{int(time.time() * 1000) % 100000}.sock"
    args = plugin_args(
        socket_path,
        key_id=key_id,
        region=TEST_REGION,
        endpoint=module_emulator.endpoint,
        extra_args=FAST_HEALTH,
    )
    plugin = launch_plugin(
        args, plugin_env(TEST_SECRET_ID, TEST_SECRET_KEY), directory / "plugin.log", socket_path
    )
    try:
        wait_serving(plugin)
        wait_until(lambda: status_is_ok(socket_path), what="plugin healthy")
        yield PluginUnderTest(plugin, module_emulator, key_id)
    finally:
        plugin.stop()
