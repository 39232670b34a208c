"""The KMS service interface behind the gRPC layer (encrypt / decrypt / status), like the upstream mock
plugin's, so the gRPC servicers do not know which backend answers.

Both API versions use the same service: the servicers only translate requests (v1 bytes, v2 key_id and
annotations) and turn KmsError into gRPC statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .health import Snapshot


@dataclass(frozen=True)
class EncryptResult:
    ciphertext: bytes
    key_id: str  # the backend's id of the key that encrypted (Tencent KeyId)


@dataclass(frozen=True)
class DecryptResult:
    plaintext: bytes
    key_id: str  # the backend's id of the key that decrypted, as the backend reports it


class KmsService(Protocol):
    key_id: str  # the configured key (Tencent KeyId)

    async def encrypt(self, plaintext: bytes, *, uid: str, deadline: float | None) -> EncryptResult:
        """Encrypt with the configured key. `deadline` is a time.monotonic() value (None: no deadline)."""
        ...

    async def decrypt(self, ciphertext: bytes, *, uid: str, deadline: float | None) -> DecryptResult:
        """Decrypt a ciphertext this service produced (with this key or an earlier one)."""
        ...

    def status(self) -> Snapshot:
        """Cached health; never a remote call."""
        ...
