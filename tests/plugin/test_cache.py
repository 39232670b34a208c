"""The decrypted-DEK cache flags: 0 turns it off, entries expire after the TTL."""

from __future__ import annotations

import os
from collections.abc import Callable

from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.protos import kms_v1beta1_pb2 as v1

from tests.fixtures.plugin import PluginProcess, kms_v1_stub

from .conftest import start_with_new_key, wait_until


def decrypt_calls(emulator: Emulator) -> int:
    return emulator.call_counts().get("Decrypt", 0)


def test_size_zero_disables_the_cache(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    start_with_new_key(start_plugin, emulator, plugin_socket, "--decrypt-cache-size=0")
    stub = kms_v1_stub(plugin_socket)
    dek = os.urandom(32)
    cipher = stub.Encrypt(v1.EncryptRequest(version="v1beta1", plain=dek), timeout=3).cipher
    before = decrypt_calls(emulator)
    for _ in range(3):
        assert stub.Decrypt(v1.DecryptRequest(version="v1beta1", cipher=cipher), timeout=3).plain == dek
    assert decrypt_calls(emulator) == before + 3


def test_entries_expire_after_the_ttl(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    start_with_new_key(start_plugin, emulator, plugin_socket, "--decrypt-cache-ttl=300ms")
    stub = kms_v1_stub(plugin_socket)
    dek = os.urandom(32)
    cipher = stub.Encrypt(v1.EncryptRequest(version="v1beta1", plain=dek), timeout=3).cipher
    before = decrypt_calls(emulator)
    assert stub.Decrypt(v1.DecryptRequest(version="v1beta1", cipher=cipher), timeout=3).plain == dek
    assert decrypt_calls(emulator) == before  # cached by Encrypt

    def reaches_tencent() -> bool:
        stub.Decrypt(v1.DecryptRequest(version="v1beta1", cipher=cipher), timeout=3)
        return decrypt_calls(emulator) > before

    wait_until(reaches_tencent, timeout=5, what="cache entry expired")
