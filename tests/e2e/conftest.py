"""End-to-end wiring: the emulator stands in for Tencent KMS, our plugin serves a real apiserver."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fixtures.emulator import TEST_REGION
from tests.lab.runtime import short_socket_path

PROVIDER = "tke-kms-plugin"  # the provider name a rollout writes into EncryptionConfiguration


@dataclass
class TencentKMS:
    """The emulator process, its admin API, and a CMK created in it."""

    process: Any
    key_id: str
    region: str = TEST_REGION

    @property
    def admin(self) -> Any:
        return self.process.admin

    def new_key(self, alias: str) -> str:
        return self.admin.create_key(self.region, alias=alias)

    def calls(self, action: str) -> int:
        return self.admin.call_counts().get(action, 0)


@pytest.fixture
def tencent_kms(emulator_process: Any) -> TencentKMS:
    key_id = emulator_process.admin.create_key(TEST_REGION, alias="tke-kms-e2e")
    return TencentKMS(emulator_process, key_id)


class PluginRunner:
    """Our plugin on one fixed socket, restartable (e.g. with a new CMK) without touching the apiserver."""

    def __init__(self, start_plugin: Callable[..., Any], kms: TencentKMS, credentials: tuple[str, str]):
        self._start_plugin = start_plugin
        self.kms = kms
        self.credentials = credentials
        self.socket = short_socket_path("tke-kms-plugin")
        self.handle: Any = None

    def start(self, key_id: str | None = None, extra_args: tuple[str, ...] = ()) -> Any:
        secret_id, secret_key = self.credentials
        self.handle = self._start_plugin(
            str(self.socket),
            key_id=key_id or self.kms.key_id,
            region=self.kms.region,
            endpoint=self.kms.process.endpoint,
            secret_id=secret_id,
            secret_key=secret_key,
            extra_args=extra_args,
        )
        return self.handle

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()

    def kill(self) -> None:
        """SIGKILL: as a crash looks to the apiserver."""
        if self.handle is not None:
            self.handle.signal(signal.SIGKILL)
            self.handle.process.wait(10)


@pytest.fixture
def kms_plugin(start_plugin, tencent_kms, emulator_credentials) -> Iterator[PluginRunner]:
    """Our plugin, started, on a short socket, using the emulator's CMK (stopped by start_plugin)."""
    runner = PluginRunner(start_plugin, tencent_kms, emulator_credentials)
    runner.start()
    yield runner
    runner.socket.unlink(missing_ok=True)  # left behind when a test SIGKILLed the plugin
